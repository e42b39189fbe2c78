"""Secrets (issue 6, part 3): canary keys never show up in output, logs, errors, events, results
or files, and each key reaches only the endpoint configured for it. Loopback servers record what
they received; the error paths echo the key back in their bodies on purpose."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jarvis.pipeline.controller import Controller
from tests.corpus.leakscan import SCENARIOS, Artifacts, Canaries, leaks, misrouted, run_scenario
from tests.fakes.llm_server import Fault, ScriptedLLM
from tests.helpers import config_for

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def controller():
    return Controller(config_for("http://127.0.0.1:9/v1"))


def _events(art: Artifacts) -> list[dict]:
    return json.loads(art.texts["events"])


@pytest.mark.parametrize("name", SCENARIOS)
def test_canaries_never_leak(controller, tmp_path, name):
    canaries = Canaries()
    art = run_scenario(name, controller, tmp_path, canaries)
    assert "escaped exception" not in art.texts, art.texts.get("escaped exception")
    assert leaks(art, canaries) == []
    assert misrouted(art, canaries) == []
    events = _events(art)
    last = events[-1]
    llm_requests = dict(art.servers)[f"llm:{name}"]
    if name != "unreachable":  # the OpenAI key did go where it was configured, and only as a header
        assert llm_requests and all(r["headers"]["authorization"] == f"Bearer {canaries.openai}" for r in llm_requests)
    expected_failure = {"plan_401": "rejected the API key", "plan_500_echo": "failed (500)",
                        "plan_400_echo": "refused the request (400)", "unreachable": "cannot reach"}
    if name in expected_failure:
        assert last["event"] == "Failed" and expected_failure[name] in last["message"]
        if name == "plan_400_echo":  # the echoed body is shown, with the key blanked out
            assert "***" in last["message"]
        return
    assert last["event"] == "Done", last
    result = last["result"]
    if name == "answer_500_echo":
        assert "could not write the final answer" in result["answer"]
    if name == "remote_ok":
        assert result["tasks"][0]["status"] == "done"
        hf_requests = dict(art.servers)[f"hf:{name}"]
        assert hf_requests and all(r["headers"]["authorization"] == f"Bearer {canaries.hf}" for r in hf_requests)
    if name.startswith("remote_") and name.endswith("echo"):
        task = result["tasks"][0]
        assert task["status"] == "failed" and task["error"]
        echo_requests = dict(art.servers)[f"hf-echo:{name}"]
        assert echo_requests and all(r["headers"]["authorization"] == f"Bearer {canaries.hf}" for r in echo_requests)


def _cli(args, env_extra, tmp, timeout=120):
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "HF_TOKEN")}
    env.update(env_extra, TMPDIR=str(tmp), OPENAI_LOG="debug")
    if args and args[0] == "run":
        args = [*args, "--out", str(tmp / "out")]   # the run's files land where the scan looks
    return subprocess.run([sys.executable, "-m", "jarvis", "-vv", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_cli_never_prints_the_keys(tmp_path):
    canaries = Canaries()
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    plan = json.dumps([{"task": "image-classification", "id": 0, "dep": [-1], "args": {"image": "nope.png"}}])
    echo = json.dumps({"error": {"message": f"bad key {canaries.openai} / {canaries.hf}"}})
    env = {"OPENAI_API_KEY": canaries.openai, "HF_TOKEN": canaries.hf}
    art = Artifacts(roots=[tmp])
    with ScriptedLLM(plan=plan, answer="ok", key=canaries.openai) as server:
        env["OPENAI_BASE_URL"] = server.url
        # 1. a normal run, the whole record as JSON
        proc = _cli(["run", "classify it", "--json"], env, tmp)
        art.texts["json run stdout"], art.texts["json run stderr"] = proc.stdout, proc.stderr
        assert proc.returncode == 0, proc.stderr
        # 2. the plan call is refused (401) with the key echoed in the body
        server.faults = [Fault(401, body=echo)]
        proc = _cli(["run", "classify it"], env, tmp)
        art.texts["401 stdout"], art.texts["401 stderr"] = proc.stdout, proc.stderr
        assert proc.returncode == 1 and "rejected the API key" in proc.stderr
        # 3. 500 with the key echoed, every retry
        server.faults = [Fault(500, body=echo, headers={"retry-after-ms": "5"}) for _ in range(10)]
        proc = _cli(["run", "classify it"], env, tmp)
        art.texts["500 stdout"], art.texts["500 stderr"] = proc.stdout, proc.stderr
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        requests = list(server.requests)
    art.servers.append(("llm:cli", [{"headers": r["headers"], "body": json.dumps(r["json"])} for r in requests]))
    assert leaks(art, canaries) == []
    assert misrouted(art, canaries) == []
    assert all(r["headers"]["authorization"] == f"Bearer {canaries.openai}" for r in requests)
    # -v really logged: the scan looked at something
    assert "INFO" in art.texts["json run stderr"] or "DEBUG" in art.texts["json run stderr"]


def test_config_and_credentials_reprs_hide_keys():
    canaries = Canaries()
    cfg = config_for("http://127.0.0.1:9/v1", key=canaries.openai).with_overrides(credentials={"hf_token": canaries.hf})
    text = repr(cfg) + str(cfg) + repr(cfg.credentials)
    assert canaries.openai not in text and canaries.hf not in text


def test_the_scan_finds_a_planted_key(tmp_path):
    """The scanner itself: a key cut short in a message, or buried in a file, is found."""
    canaries = Canaries()
    (tmp_path / "deep" / "er").mkdir(parents=True)
    (tmp_path / "deep" / "er" / "trace.log").write_bytes(b"\x00binary " + canaries.hf.encode() + b" tail")
    art = Artifacts(texts={"message": f"bad key {canaries.openai[:30]}..."}, roots=[tmp_path],
                    servers=[("llm:x", [{"headers": {"authorization": f"Bearer {canaries.hf}"}, "body": ""}])])
    assert len(leaks(art, canaries)) == 2
    assert misrouted(art, canaries) == ["hf key sent to llm:x"]
