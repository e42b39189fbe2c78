"""The download meter runs only around a load that downloads, and its time left waits for the weights
(review findings: a polling thread around every load, cached models' too; a time left estimated from
the few bytes of the config files before the weights came).

The cached loads are in-process, on the session's tiny models, watching which threads start
(threading.settrace). The download is real: a fresh Hugging Face cache, huggingface_hub and
transformers in a subprocess, and a loopback Hub that sends the small files one by one, then pauses
before sending the weights slowly.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from jarvis.config import load_config
from jarvis.execution.downloads import RepoSize, progress_line
from jarvis.execution.local import LocalExecutor
from jarvis.llm.backend import Usage
from jarvis.llm.embedded import DEFAULT_MODEL, EmbeddedLLM, model_home
from jarvis.runners.base import Device, RunContext, TaskInputs
from tests.fakes.loopback import HandlerThread
from tests.tiny import snapshot_dir

ROOT = Path(__file__).resolve().parent.parent
SST2 = "distilbert/distilbert-base-uncased-finetuned-sst-2-english"
METER = "jarvis-download-meter"
SMALL_FILE_SECONDS = 0.4   # the loopback Hub's wait before each small file: they arrive a few looks of the meter apart
WEIGHTS_PAUSE = 3.0        # its wait before the weights: longer than the meter's 2 s between lines
WEIGHTS_SECONDS = 6.0      # how long the weights take to send
PADDING = 24 * 2 ** 20     # blank safetensors header the weights are sent with (huggingface_hub writes 10 MB pieces)


@pytest.fixture(scope="module")
def tiny(hub_cache):
    from tests.tiny import build_all
    build_all(hub_cache, only={SST2, DEFAULT_MODEL})


@contextmanager
def threads_started() -> Iterator[list[str]]:
    """The names of the threads started inside the with-block."""
    names: list[str] = []
    previous = threading.gettrace()

    def first_call(frame: Any, event: str, arg: Any) -> None:
        names.append(threading.current_thread().name)
        sys.settrace(None)       # one look per thread
        return None

    threading.settrace(first_call)
    try:
        yield names
    finally:
        threading.settrace(previous)  # type: ignore[arg-type]


def test_a_cached_task_model_loads_without_a_download_meter(tiny, tmp_path):
    executor = LocalExecutor(device="cpu", memory_budget_gb=1)
    lines: list[str] = []
    ctx = RunContext(Device(), lambda stem, suffix: tmp_path / f"{stem}{suffix}", progress=lines.append)
    with threads_started() as names:
        out = executor.run("text-classification", SST2, TaskInputs(text=["I love this film"]), ctx)
    executor.close()
    assert out.detail and out.detail["labels"]
    assert METER not in names, names
    assert lines[0] == f"loading {SST2} on cpu, from the local cache"
    assert len(lines) == 2 and re.fullmatch(rf"loaded {re.escape(SST2)} in [\d.]+ s", lines[1]), lines


def test_a_cached_embedded_llm_loads_without_a_download_meter_and_notes_milestones(tiny):
    cfg = load_config(env={}).with_overrides(local={"device": "cpu"})
    executor = LocalExecutor("cpu", 4)
    usage = Usage()
    with threads_started() as names:
        EmbeddedLLM(cfg, model_home(executor, cfg.local)).complete([{"role": "user", "content": "hi"}], usage,
                                                                  max_tokens=2)
    executor.close()
    assert METER not in names, names
    notes = usage.take_notes()
    assert [(n.kind, n.source) for n in notes] == [("milestone", DEFAULT_MODEL)] * 2
    assert notes[0].text == f"loading {DEFAULT_MODEL} on cpu, from the local cache"
    assert re.fullmatch(rf"loaded {re.escape(DEFAULT_MODEL)} in [\d.]+ s", notes[1].text), notes


def test_the_time_left_waits_for_the_weights():
    """Before more bytes arrived than the repo's other files weigh, a speed says nothing of the weights'."""
    size = RepoSize(total=25_000_000, other=600_000)
    assert progress_line("a/b", 400_000, size, 2_000.0) == "downloading a/b: 400 KB of 25.0 MB (1%), 2 KB/s"
    assert progress_line("a/b", 600_000, size, 2_000.0) == "downloading a/b: 600 KB of 25.0 MB (2%), 2 KB/s"
    assert progress_line("a/b", 5_600_000, size, 1_940_000.0) == \
        "downloading a/b: 5.6 MB of 25.0 MB (22%), 1.9 MB/s, about 10 s left"
    assert progress_line("a/b", 25_000_000, size, 1_940_000.0) == "downloading a/b: 25.0 MB of 25.0 MB (100%), 1.9 MB/s"


def padded(safetensors: bytes, pad: int) -> bytes:
    """The same safetensors file with `pad` more spaces in its JSON header, which the format allows."""
    size = int.from_bytes(safetensors[:8], "little")
    header = safetensors[8:8 + size] + b" " * pad
    return len(header).to_bytes(8, "little") + header + safetensors[8 + size:]


class PausingHub(BaseHTTPRequestHandler):
    """The Hub's routes a first load uses, for one repo served from a snapshot folder: model info with
    file sizes, HEAD/GET resolve. Small files come after SMALL_FILE_SECONDS each; the weights after
    WEIGHTS_PAUSE, over WEIGHTS_SECONDS. `weights_began` is when their first byte went out."""
    repo = ""
    snapshot = Path()
    weights_began: list[float] = []
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str], weights: bool = False) -> None:
        if self.command == "GET" and status == 200:
            time.sleep(WEIGHTS_PAUSE if weights else SMALL_FILE_SECONDS)
        self.send_response(status)
        for key, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command == "HEAD":
            return
        pieces = 60 if weights else 1
        if weights:
            PausingHub.weights_began.append(time.monotonic())
        size = -(-len(body) // pieces)
        for i in range(0, len(body), size):
            self.wfile.write(body[i:i + size])
            self.wfile.flush()
            if weights:
                time.sleep(WEIGHTS_SECONDS / pieces)

    def do_GET(self) -> None:
        parts = self.path.split("?")[0].strip("/").split("/")
        commit = hashlib.sha1(self.repo.encode()).hexdigest()
        files = {p.relative_to(self.snapshot).as_posix(): p for p in self.snapshot.rglob("*") if p.is_file()}
        if parts[:2] == ["api", "models"] and "/".join(parts[2:4]) == self.repo and len(parts) == 4:
            siblings = [{"rfilename": name, "size": path.stat().st_size + (PADDING if name.endswith(".safetensors") else 0)}
                        for name, path in sorted(files.items())]
            return self._send(200, json.dumps({"id": self.repo, "sha": commit, "siblings": siblings}).encode(),
                              {"Content-Type": "application/json"})
        if "/".join(parts[:2]) == self.repo and len(parts) >= 5 and parts[2] == "resolve":
            name = "/".join(parts[4:])
            if name in files:
                data = files[name].read_bytes()
                weights = name.endswith(".safetensors")
                if weights:
                    data = padded(data, PADDING)
                return self._send(200, data, {"X-Repo-Commit": commit, "ETag": f'"{hashlib.sha1(data).hexdigest()}"'},
                                  weights=weights)
        return self._send(404, b'{"error": "Entry not found"}', {"X-Error-Code": "EntryNotFound"})

    do_HEAD = do_GET


LOAD_ONCE = """
import sys, time
from pathlib import Path
from jarvis.execution.local import LocalExecutor
from jarvis.runners.base import Device, RunContext, TaskInputs
ctx = RunContext(Device(), lambda stem, suffix: Path(stem + suffix),
                 progress=lambda line: print(f"{time.monotonic():.3f} {line}", flush=True))
out = LocalExecutor("cpu", 1).run("text-generation", sys.argv[1], TaskInputs(text=["Once upon a time"]), ctx)
print("text", repr(out.text), flush=True)
"""


def timed_lines(stdout: str) -> list[tuple[float, str]]:
    found = [line.split(" ", 1) for line in stdout.splitlines() if re.match(r"\d+\.\d+ ", line)]
    return [(float(at), text) for at, text in found]


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_task_models_first_download_shows_bytes_and_a_time_left_only_once_the_weights_come(tiny, hub_cache, tmp_path):
    """The tiny replica of the default LLM as a text-generation model: its tokenizer's files and its config
    come first, then the weights."""
    model = DEFAULT_MODEL
    PausingHub.repo, PausingHub.snapshot, PausingHub.weights_began = model, snapshot_dir(hub_cache, model), []
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_TOKEN")}
    with HandlerThread(PausingHub) as server:
        env.update({"PYTHONPATH": str(ROOT), "HF_ENDPOINT": server.url, "HF_HOME": str(tmp_path / "home"),
                    "HF_HUB_CACHE": str(tmp_path / "empty-cache"), "HF_HUB_DISABLE_XET": "1"})
        proc = subprocess.run([sys.executable, "-c", LOAD_ONCE, model], capture_output=True, text=True, env=env,
                              timeout=200, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = timed_lines(proc.stdout)
    assert lines[0][1] == f"loading {model} on cpu, downloading it first (one time)", proc.stdout
    assert re.fullmatch(rf"loaded {re.escape(model)} in [\d.]+ s", lines[-1][1]), proc.stdout
    downloading = lines[1:-1]
    shown = re.compile(rf"downloading {re.escape(model)}: [\d.]+ [KM]?B of [\d.]+ MB \(\d+%\), "
                       r"(waiting|[\d.]+ [KM]?B/s)(, about (\d+ min )?\d+ s left)?$")
    assert downloading and all(shown.match(text) for _, text in downloading), proc.stdout
    (began,) = PausingHub.weights_began
    before = [text for at, text in downloading if at < began]
    after = [text for at, text in downloading if at > began + 0.5]
    assert before, f"no line while the weights were held back: {proc.stdout}"
    assert not [text for text in before if "left" in text], proc.stdout
    assert [text for text in after if "left" in text], proc.stdout
    print("\n" + "\n".join(f"{at - began:+.1f} s {text}" for at, text in lines))
