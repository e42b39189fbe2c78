"""`python -m jarvis catalog verify`, offline on the tiny replicas: each listed model is loaded by its
runner and given its task's canned input; a broken entry is reported failed and the exit code is 1."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from jarvis.catalog.entries import Catalog
from jarvis.catalog.verify import targets
from tests.fakes.loopback import HandlerThread
from tests.tiny import snapshot_dir

ROOT = Path(__file__).resolve().parent.parent
GOOD = {"distilbert/distilbert-base-uncased-finetuned-sst-2-english": "text-classification",
        "google/vit-base-patch16-224": "image-classification", "openai/whisper-tiny": "automatic-speech-recognition",
        "facebook/mms-tts-eng": "text-to-speech", "scikit-learn/tabular-playground": "tabular-classification"}
BROKEN = "acme/half-uploaded-classifier"


@pytest.fixture(scope="module")
def small_catalog(tiny_models, hub_cache, tmp_path_factory):
    snap = snapshot_dir(hub_cache, BROKEN)
    (snap / "config.json").write_text('{"model_type": "distilbert", "architectures": [')
    (snap / "model.safetensors").write_bytes(b"\0" * 64)
    rows = [{"id": model, "task": task, "description": "replica"} for model, task in GOOD.items()]
    rows.insert(1, {"id": BROKEN, "task": "text-classification", "description": "broken"})
    path = tmp_path_factory.mktemp("verify") / "catalog.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def verify_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    env = env or {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "jarvis", "catalog", "verify", "--device", "cpu", *args],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_verify_reports_each_model_and_fails_on_the_broken_one(small_catalog):
    result = verify_cli("--catalog", str(small_catalog), "--json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)  # stdout holds the JSON alone: load messages go to stderr
    assert [(r["task"], r["id"]) for r in report] == sorted([(t, m) for m, t in [*GOOD.items(),
                                                             (BROKEN, "text-classification")]],
                                                            key=lambda p: _task_order(p[0]))
    by_id = {r["id"]: r for r in report}
    for model in GOOD:
        r = by_id[model]
        assert set(r) == {"id", "task", "status", "error", "load_s", "run_s", "peak_mb"}
        assert r["status"] == "ok" and r["error"] is None, r
        assert r["load_s"] >= 0 and r["run_s"] >= 0 and r["peak_mb"] >= 0
    broken = by_id[BROKEN]
    assert broken["status"] == "failed" and broken["run_s"] is None and broken["load_s"] >= 0
    assert "json" in broken["error"].lower() or "config" in broken["error"].lower(), broken["error"]


def _task_order(task: str) -> int:
    from jarvis.runners.registry import TASK_TYPES
    return list(TASK_TYPES).index(task)


def test_verify_one_model_in_words_and_bad_requests(small_catalog):
    result = verify_cli("--catalog", str(small_catalog), "--model", "facebook/mms-tts-eng")
    assert result.returncode == 0, result.stderr
    line, summary = result.stdout.strip().splitlines()
    assert line.startswith("ok") and "text-to-speech" in line and "facebook/mms-tts-eng" in line
    assert " load " in line and " run " in line and "peak +" in line
    assert summary == "1 ok, 0 failed"
    unknown = verify_cli("--catalog", str(small_catalog), "--model", "nobody/absent")
    assert unknown.returncode == 2 and unknown.stdout == ""
    assert unknown.stderr.startswith("error: nobody/absent is not in the catalog") and "--task" in unknown.stderr


def test_targets_follow_local_eligibility(small_catalog):
    catalog = Catalog.load(small_catalog)
    assert targets(catalog, task="text-to-speech") == [("text-to-speech", "facebook/mms-tts-eng")]
    assert targets(catalog, task="depth-control") == []  # it borrows depth-estimation's models: none listed here
    assert targets(catalog, model="nobody/else", task="tts") == [("text-to-speech", "nobody/else")]
    assert len(targets(catalog)) == len(GOOD) + 1


class ReplicaHub(BaseHTTPRequestHandler):
    """The Hub's file routes for one repo, served from a replica's snapshot: model info, HEAD/GET resolve."""
    repo = ""
    snapshot = Path()
    fetched: list[str] = []

    def log_message(self, *args):
        pass

    def _send(self, status: int, body: bytes, headers: dict) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):
        parts = self.path.split("?")[0].strip("/").split("/")
        commit = hashlib.sha1(self.repo.encode()).hexdigest()
        if parts[:2] == ["api", "models"] and "/".join(parts[2:4]) == self.repo and len(parts) == 4:
            files = sorted(p.relative_to(self.snapshot).as_posix() for p in self.snapshot.rglob("*") if p.is_file())
            body = json.dumps({"id": self.repo, "sha": commit, "siblings": [{"rfilename": f} for f in files]})
            return self._send(200, body.encode(), {"Content-Type": "application/json"})
        if "/".join(parts[:2]) == self.repo and len(parts) >= 5 and parts[2] == "resolve":
            path = self.snapshot / "/".join(parts[4:])
            if path.is_file():
                data = path.read_bytes()
                if self.command == "GET":
                    ReplicaHub.fetched.append(path.name)
                return self._send(200, data, {"X-Repo-Commit": commit, "ETag": f'"{hashlib.sha1(data).hexdigest()}"'})
        return self._send(404, b'{"error": "Entry not found"}', {"X-Error-Code": "EntryNotFound"})

    do_HEAD = do_GET


def test_verify_downloads_a_model_that_is_not_cached(tiny_models, hub_cache, tmp_path):
    """Online, a model missing from the cache is downloaded first (here from a loopback Hub)."""
    repo = "distilbert/distilbert-base-uncased-finetuned-sst-2-english"
    ReplicaHub.repo, ReplicaHub.snapshot, ReplicaHub.fetched = repo, snapshot_dir(hub_cache, repo), []
    fresh = tmp_path / "empty-cache"
    with HandlerThread(ReplicaHub) as server:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_ENDPOINT": server.url,
               "HF_HOME": str(tmp_path / "home"), "HF_HUB_CACHE": str(fresh)}
        env.pop("HF_HUB_OFFLINE")
        result = verify_cli("--model", repo, "--json", env=env)
    assert result.returncode == 0, result.stderr
    (report,) = json.loads(result.stdout)
    assert report["status"] == "ok" and report["task"] == "text-classification"
    assert {"config.json", "model.safetensors"} <= set(ReplicaHub.fetched)
    assert list(fresh.glob("models--distilbert--*/snapshots/*/model.safetensors"))
