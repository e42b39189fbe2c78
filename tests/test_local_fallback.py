"""Local mode falls back like hybrid mode: a model that fails to load or run hands the task to the next
candidate, every attempt is in the task's record, and a model that failed to load is remembered for a
while (process-wide through the shared executor, thread-safe), so later tasks and requests skip it."""
from __future__ import annotations

import json
import threading

import pytest

from jarvis.errors import ModelSkippedError, TaskError
from jarvis.execution.dispatch import Dispatcher
from jarvis.execution.local import LocalExecutor
from jarvis.execution.model_cache import LoadFailures, ModelCache
from jarvis.pipeline.controller import Controller
from jarvis.runners.base import Device, RunContext, TaskInputs, TaskOutputs
from jarvis.session import Session
from tests.fakes.fake_executor import FakeExecutor
from tests.fakes.llm_server import ScriptedLLM
from tests.helpers import config_for, plan_json, run_to_end
from tests.tiny import snapshot_dir

TTS = "facebook/mms-tts-eng"
BROKEN = "acme/broken-voice"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_failed_loads_are_remembered_until_the_ttl():
    clock = Clock()
    cache = ModelCache(10 ** 9, LoadFailures(ttl=60, clock=clock))
    calls = []

    def broken():
        calls.append(1)
        raise TaskError("could not load acme/x: config.json is not valid JSON")

    with pytest.raises(TaskError, match="not valid JSON"):
        cache.get(("t", "acme/x"), broken)
    clock.now += 20
    with pytest.raises(ModelSkippedError) as skipped:
        cache.get(("t", "acme/x"), broken)
    assert str(skipped.value) == ("skipped: acme/x failed to load 20 s ago (could not load acme/x: config.json is "
                                  "not valid JSON); it is tried again after 40 s")
    assert len(calls) == 1
    assert cache.get(("t", "acme/y"), lambda: None).loaded is None   # other models are not affected
    clock.now += 41
    with pytest.raises(TaskError, match="not valid JSON"):
        cache.get(("t", "acme/x"), broken)          # forgotten: tried again
    assert len(calls) == 2
    clock.now += 1
    with pytest.raises(ModelSkippedError):           # the new failure is remembered afresh
        cache.get(("t", "acme/x"), lambda: None)


def test_a_load_that_works_again_is_forgotten_and_threads_agree():
    clock = Clock()
    failures = LoadFailures(ttl=60, clock=clock)
    failures.remember(("t", "m"), "boom")
    seen = []
    threads = [threading.Thread(target=lambda: seen.append(failures.recent(("t", "m")))) for _ in range(16)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert seen == [(0.0, "boom")] * 16
    clock.now += 61
    cache = ModelCache(10 ** 9, failures)
    cache.get(("t", "m"), lambda: None)
    assert failures.recent(("t", "m")) is None


def test_local_mode_tries_the_next_candidate_when_a_model_fails_to_run(tmp_path):
    def handler(task, model_id, inputs, ctx):
        if model_id == "org/first":
            raise TaskError("org/first cannot run this input")
        return TaskOutputs(text=f"done by {model_id}")

    executor = FakeExecutor(handler)
    ctx = RunContext(Device(), lambda stem, suffix: tmp_path / f"{stem}{suffix}")
    run = Dispatcher("local", executor).execute("text-classification", "org/first", ["org/first", "org/second"],
                                                TaskInputs(text=["hi"]), ctx)
    assert run.model == "org/second" and run.outputs.text == "done by org/second"
    assert [(a.executor, a.model, a.ok) for a in run.attempts] == [("local", "org/first", False),
                                                                   ("local", "org/second", True)]
    assert run.attempts[0].error == "org/first cannot run this input"


@pytest.fixture()
def broken_first(tiny_models, hub_cache, tmp_path):
    """A catalog whose first text-to-speech candidate is a repo with a corrupt config.json."""
    snap = snapshot_dir(hub_cache, BROKEN)
    (snap / "config.json").write_text('{"model_type": "vits", "vocab_size": ')  # cut off mid-write
    (snap / "model.safetensors").write_bytes(b"\0" * 64)
    catalog = tmp_path / "catalog.jsonl"
    catalog.write_text("".join(json.dumps(r) + "\n" for r in [
        {"id": BROKEN, "task": "text-to-speech", "downloads": 100, "description": "broken"},
        {"id": TTS, "task": "text-to-speech", "downloads": 10, "description": "works"}]))
    return catalog


def test_broken_first_candidate_falls_back_and_is_skipped_next_time(broken_first, tmp_path):
    plan = plan_json(("text-to-speech", {"text": "hello there"}))
    with ScriptedLLM(plan=plan, answer="Here it is.") as llm:
        cfg = config_for(llm.url, catalog={"path": str(broken_first)}, inference={"mode": "local", "top_k": 2},
                         local={"device": "cpu"})
        controller = Controller(cfg)
        try:
            records = []
            for n in range(2):
                _, result, failed = run_to_end(controller, Session.create(cfg, root=tmp_path / f"s{n}"), "say hello")
                assert failed is None
                records.append(result.tasks[0])
            assert not controller.local.ready("text-to-speech", BROKEN)   # hybrid mode would not count on it
        finally:
            controller.close()
    first, second = records
    for record in records:
        assert record.status == "done" and record.model == TTS and record.outputs["audio"]
        assert [(a.executor, a.model, a.ok) for a in record.attempts] == [("local", BROKEN, False), ("local", TTS, True)]
    assert first.attempts[0].error.startswith(f"could not load {BROKEN}")
    skipped = second.attempts[0]
    assert skipped.error.startswith(f"skipped: {BROKEN} failed to load") and "could not load" in skipped.error
    assert skipped.seconds < 0.5


def test_hybrid_readiness_ignores_a_model_that_failed_to_load(broken_first, tmp_path):
    executor = LocalExecutor(device="cpu", memory_budget_gb=1)
    assert executor.ready("text-to-speech", BROKEN)  # cached and small: it looks ready until it fails
    ctx = RunContext(Device(), lambda stem, suffix: tmp_path / f"{stem}{suffix}")
    with pytest.raises(TaskError, match="could not load"):
        executor.run("text-to-speech", BROKEN, TaskInputs(text=["hi"]), ctx)
    assert not executor.ready("text-to-speech", BROKEN)
    with pytest.raises(ModelSkippedError):
        executor.run("text-to-speech", BROKEN, TaskInputs(text=["hi"]), ctx)
    executor.close()
