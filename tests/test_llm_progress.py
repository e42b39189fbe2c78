"""The embedded LLM's first download and its load show as progress (issue 12): bytes, speed and time
left while huggingface_hub downloads it (jarvis.execution.downloads, the same meter as the task
models'), then where it loads and how long that took, on the CLI's stderr and in the web app's steps.
And torch's CPU threads follow local.threads.

The download is real: a fresh Hugging Face cache, huggingface_hub and transformers in a `jarvis run`
subprocess, and a loopback Hub that serves the tiny replica of the default model slowly enough to be
watched (tests/tiny/llm.py).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from jarvis.catalog.entries import Catalog
from jarvis.config import load_config
from jarvis.events import Done, LLMProgress, PlanReady
from jarvis.execution.downloads import RepoSize, progress_line
from jarvis.frontends.web.render import TurnRenderer
from jarvis.llm.embedded import DEFAULT_MODEL
from jarvis.pipeline.controller import Controller
from jarvis.session import Session
from tests.fakes.fake_executor import FakeExecutor
from tests.fakes.loopback import HandlerThread
from tests.tiny import snapshot_dir

ROOT = Path(__file__).resolve().parent.parent
SLOW_SECONDS = 6.0       # how long the loopback Hub takes to send the weights
PADDING = 24 * 2 ** 20   # bytes of blank header the weights are sent with: huggingface_hub writes a download
                         # to the cache in 10 MB pieces, so a few of them show the bytes growing


def padded(safetensors: bytes, pad: int) -> bytes:
    """The same safetensors file with `pad` more spaces in its JSON header, which the format allows."""
    size = int.from_bytes(safetensors[:8], "little")
    header = safetensors[8:8 + size] + b" " * pad
    return len(header).to_bytes(8, "little") + header + safetensors[8 + size:]


@pytest.fixture(scope="module")
def tiny_llm(hub_cache):
    from tests.tiny import build_all
    build_all(hub_cache, only={DEFAULT_MODEL})
    return DEFAULT_MODEL


class SlowHub(BaseHTTPRequestHandler):
    """The Hub's routes a first load uses, for one repo served from a snapshot folder: model info with
    file sizes, HEAD/GET resolve. The weights trickle out over SLOW_SECONDS."""
    repo = ""
    snapshot = Path()
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, status: int, body: bytes, headers: dict, slow: bool = False) -> None:
        self.send_response(status)
        for key, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command == "HEAD":
            return
        pieces = 60 if slow else 1
        size = -(-len(body) // pieces)
        for i in range(0, len(body), size):
            self.wfile.write(body[i:i + size])
            self.wfile.flush()
            if slow:
                time.sleep(SLOW_SECONDS / pieces)

    def do_GET(self):
        parts = self.path.split("?")[0].strip("/").split("/")
        commit = hashlib.sha1(self.repo.encode()).hexdigest()
        files = {p.relative_to(self.snapshot).as_posix(): p for p in self.snapshot.rglob("*") if p.is_file()}
        if parts[:2] == ["api", "models"] and "/".join(parts[2:4]) == self.repo and len(parts) == 4:
            siblings = [{"rfilename": name, "size": path.stat().st_size + (PADDING if name.endswith(".safetensors") else 0)}
                        for name, path in sorted(files.items())]
            body = json.dumps({"id": self.repo, "sha": commit, "siblings": siblings}).encode()
            return self._send(200, body, {"Content-Type": "application/json"})
        if "/".join(parts[:2]) == self.repo and len(parts) >= 5 and parts[2] == "resolve":
            name = "/".join(parts[4:])
            if name in files:
                data = files[name].read_bytes()
                if name.endswith(".safetensors"):
                    data = padded(data, PADDING)
                return self._send(200, data, {"X-Repo-Commit": commit, "ETag": f'"{hashlib.sha1(data).hexdigest()}"'},
                                  slow=name.endswith(".safetensors"))
        return self._send(404, b'{"error": "Entry not found"}', {"X-Error-Code": "EntryNotFound"})

    do_HEAD = do_GET


def test_progress_line_says_bytes_speed_and_time_left():
    assert progress_line("a/b", 312_000_000, RepoSize(988_000_000, 11_000_000), 4_100_000) == \
        "downloading a/b: 312.0 MB of 988.0 MB (31%), 4.1 MB/s, about 2 min 45 s left"
    assert progress_line("a/b", 5_000, None, 2_500.0) == "downloading a/b: 5 KB so far, 2 KB/s"
    assert progress_line("a/b", 5_000, RepoSize(9_000, 1_000), 0.0) == "downloading a/b: 5 KB of 9 KB (55%), waiting"


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_first_download_and_load_of_the_embedded_llm_show_on_the_cli(tiny_llm, hub_cache, tmp_path):
    SlowHub.repo, SlowHub.snapshot = tiny_llm, snapshot_dir(hub_cache, tiny_llm)
    fresh = tmp_path / "empty-cache"
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "HF_TOKEN", "OPENAI_BASE_URL",
                                                            "HF_HUB_OFFLINE")}
    with HandlerThread(SlowHub) as server:
        env.update({"PYTHONPATH": str(ROOT), "HF_ENDPOINT": server.url, "HF_HOME": str(tmp_path / "home"),
                    "HF_HUB_CACHE": str(fresh), "JARVIS_LLM_BACKEND": "local", "HF_HUB_DISABLE_XET": "1"})
        proc = subprocess.run([sys.executable, "-m", "jarvis", "--mode", "remote", "run",
                               "Describe example.jpg, then read the description aloud.", "--json",
                               "--out", str(tmp_path / "out")],
                              capture_output=True, text=True, env=env, timeout=200, cwd=ROOT)
    lines = [line for line in proc.stderr.splitlines() if line.startswith("llm: ") and "tokens," not in line]
    assert lines[0] == f"llm: loading {tiny_llm} on cpu, downloading it first (one time)", proc.stderr[-3000:]
    downloading = [line for line in lines if line.startswith(f"llm: downloading {tiny_llm}: ")]
    assert len(downloading) >= 2, proc.stderr[-3000:]     # one every 2 s over the 5 s the weights take
    total = PADDING + sum(p.stat().st_size for p in SlowHub.snapshot.rglob("*") if p.is_file())
    shown = re.compile(r"llm: downloading \S+: [\d.]+ [KM]?B of ([\d.]+ [KM]?B) \((\d+)%\), "
                       r"(starting|waiting|[\d.]+ [KM]?B/s)(, about (\d+ min )?\d+ s left)?$")
    matches = [shown.match(line) for line in downloading]
    assert all(matches), downloading
    shown_total = progress_line("x", 0, RepoSize(total, 0), 0).split(" of ")[1].split(" (")[0]
    assert {m.group(1) for m in matches if m} == {shown_total}
    percents = [int(m.group(2)) for m in matches if m]
    assert percents == sorted(percents) and percents[0] < percents[-1] and percents[0] < 100, downloading
    assert any(m and m.group(4) for m in matches), "the time left, once the speed is known"
    assert re.fullmatch(rf"llm: loaded {re.escape(tiny_llm)} in [\d.]+ s", lines[len(downloading) + 1]), lines
    assert list(fresh.glob("models--Qwen--*/snapshots/*/model.safetensors"))
    record = json.loads(proc.stdout)
    assert record["usage"]["llm_calls"] >= 2
    print("\n" + "\n".join(lines[:len(downloading) + 2]))


def test_the_embedded_llm_load_shows_in_the_web_steps(tiny_llm, tmp_path):
    cfg = load_config(env={}).with_overrides(llm={"max_answer_tokens": 5}, inference={"mode": "remote"})
    controller = Controller(cfg, Catalog.load(), local=FakeExecutor())   # its own cache: the LLM loads in this run
    renderer = TurnRenderer()
    logs = []
    events = []
    for event in controller.run(Session.create(cfg, root=tmp_path / "s"), "Describe example.jpg"):
        events.append(event)
        renderer.update(event)
        if isinstance(event, LLMProgress) and event.note:
            logs.append(json.dumps(renderer.messages, ensure_ascii=False, default=str))
    notes = [e.note for e in events if isinstance(e, LLMProgress) and e.note]
    assert notes[0] == f"loading {tiny_llm} on cpu, from the local cache", notes
    assert re.fullmatch(rf"loaded {re.escape(tiny_llm)} in [\d.]+ s", notes[-1]), notes
    assert all(e.stage == "plan" for e in events if isinstance(e, LLMProgress) and e.note)
    before_plan = events.index(next(e for e in events if isinstance(e, PlanReady)))
    assert all(events.index(e) < before_plan for e in events if isinstance(e, LLMProgress) and e.note)
    assert f"loading {tiny_llm} on cpu" in logs[0] and f"loaded {tiny_llm} in" in logs[-1]
    assert isinstance(events[-1], Done)


@pytest.mark.timeout(180)    # a fresh process imports torch and transformers: a minute on a busy machine
def test_torch_threads_follow_local_threads(tiny_llm, tmp_path):
    """A fresh process: torch's thread count as set before the first load of a task model and of the
    embedded LLM, from local.threads (0: the physical cores)."""
    script = """
import sys, torch
from jarvis.config import load_config
from jarvis.execution.local import LocalExecutor
from jarvis.execution.model_cache import machine_threads
from jarvis.llm.backend import Usage
from jarvis.llm.embedded import EmbeddedLLM, model_home
from tests.fakes.fake_executor import FakeExecutor
seen = []
for threads in (1, 0):
    cfg = load_config(env={}).with_overrides(local={"threads": threads, "device": "cpu"})
    for executor in (LocalExecutor.from_config(cfg.local), FakeExecutor()):   # the task models' cache, its own
        torch.set_num_threads(3)
        EmbeddedLLM(cfg, model_home(executor, cfg.local)).complete([{"role": "user", "content": "hi"}], Usage(),
                                                                    max_tokens=2)
        seen.append(torch.get_num_threads())
print(*seen, machine_threads())
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=150, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    *seen, cores = map(int, proc.stdout.split()[-5:])
    assert seen == [1, 1, cores, cores], proc.stdout


def test_the_embedded_llm_load_notes_reach_the_api_stream_and_mcp_progress():
    """The OpenAI route's step lines (markdown: markup escaped) and the MCP progress lines (plain text) carry
    the note, not "0 tokens"."""
    from jarvis.events import LLMProgress
    from jarvis.frontends.http.openai_routes import step_line
    from jarvis.frontends.mcp.content import progress_line
    note = LLMProgress("plan", 0, 3.0, note="downloading Qwen/Qwen2.5-0.5B-Instruct: 10.5 MB of 25.3 MB (41%) <b>")
    line = step_line(note, None)  # type: ignore[arg-type]  # a note needs no run
    assert line is not None and "10.5 MB of 25.3 MB" in line and "0 tokens" not in line and "<b>" not in line
    assert progress_line(note) == "llm: downloading Qwen/Qwen2.5-0.5B-Instruct: 10.5 MB of 25.3 MB (41%) <b>"  # plain text
    writing = progress_line(LLMProgress("plan", 12, 3.0))
    assert writing is None  # the MCP stream does not tell each token


def test_notes_given_between_two_looks_are_all_shown_and_download_figures_collapse():
    """A fast load gives "loading" and "loaded" before the run looks: both are shown, in order."""
    from jarvis.llm.backend import Usage
    usage = Usage()
    for text, kind in (("loading m on cpu, downloading it first (one time)", "milestone"),
                       ("downloading m: 1 MB of 9 MB (11%)", "progress"), ("downloading m: 5 MB of 9 MB (55%)", "progress"),
                       ("loaded m in 0.1 s", "milestone")):
        usage.note(text, kind, source="m")
    assert [n.text for n in usage.take_notes()] == ["loading m on cpu, downloading it first (one time)",
                                                    "downloading m: 5 MB of 9 MB (55%)", "loaded m in 0.1 s"]
    assert usage.take_notes() == []
