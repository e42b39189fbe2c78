"""Specification of the scheduler (stage 3) with FakeExecutor: no HTTP, no models, well under a second.

DAG order, `<GENERATED>-K` resolution, a failure skipping its dependents with the reason, ready
tasks on one model run as one batch, a stop request skipping what has not started, and the
per-task time limit.
"""
from __future__ import annotations

import threading
import time

import pytest

from jarvis.errors import TaskError
from jarvis.events import TaskFailed, TaskFinished, TaskSkipped, TaskStarted
from jarvis.execution.dispatch import Dispatcher
from jarvis.files.store import ResourceStore
from jarvis.pipeline.plan_reading import parse_plan
from jarvis.pipeline.scheduler import Scheduler
from jarvis.pipeline.selection import Choice
from jarvis.runners.base import RunContext, TaskInputs, TaskOutputs
from tests.fakes.fake_executor import FakeExecutor, echo
from tests.helpers import plan_json

pytestmark = pytest.mark.timeout(10)


def run(tmp_path, plan_text: str, executor: FakeExecutor, **options):
    """(events, records) of the plan run on `executor` in local mode, every task on "org/m"."""
    plan = parse_plan(plan_text)
    choices = {t.id: Choice(t.id, "org/m", "test", ["org/m"]) for t in plan.tasks}
    scheduler = Scheduler(Dispatcher("local", executor), ResourceStore(tmp_path / "store"), **options)
    events = list(scheduler.run(plan, choices, time.perf_counter()))
    return events, scheduler.records


def slow(seconds: float):
    def handler(task: str, model_id: str, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        time.sleep(seconds)
        return echo(task, model_id, inputs, ctx)
    return handler


def test_a_task_starts_after_the_tasks_it_needs_and_gets_their_outputs(tmp_path):
    plan = plan_json(("summarization", {"text": "first"}), ("summarization", {"text": "second"}),
                     ("sentence-similarity", {"text": ["<GENERATED>-0", "<GENERATED>-1"]}, [0, 1]))
    events, records = run(tmp_path, plan, FakeExecutor(slow(0.05)))
    assert [r.status for r in records.values()] == ["done"] * 3
    assert records[2].started >= max(records[0].finished, records[1].finished)
    assert records[0].started < records[1].finished and records[1].started < records[0].finished  # in parallel
    assert records[2].outputs["text"] == ("sentence-similarity by org/m: summarization by org/m: first | "
                                          "summarization by org/m: second")
    started = [e.task_id for e in events if isinstance(e, TaskStarted)]
    assert started.index(2) == 2 and all(isinstance(e.record.attempts[0].seconds, float)
                                         for e in events if isinstance(e, TaskFinished))


def test_a_failure_skips_its_dependents_with_the_reason_and_the_rest_goes_on(tmp_path):
    def handler(task, model_id, inputs, ctx):
        if inputs.text == ["broken"]:
            raise TaskError("the model refused this input")
        return echo(task, model_id, inputs, ctx)
    plan = plan_json(("summarization", {"text": "broken"}), ("translation", {"text": "<GENERATED>-0"}, [0]),
                     ("text-classification", {"text": "<GENERATED>-1"}, [1]), ("summarization", {"text": "fine"}))
    events, records = run(tmp_path, plan, FakeExecutor(handler))
    assert records[0].status == "failed" and "the model refused this input" in records[0].error
    assert records[0].attempts[0].ok is False and records[0].attempts[0].model == "org/m"
    assert records[1].status == "skipped"
    assert records[1].error == "skipped: task 0 (summarization) did not finish: the model refused this input"
    assert records[2].status == "skipped" and records[2].error.startswith("skipped: task 1 (translation)")
    assert records[3].status == "done"
    ends = {type(e).__name__: e for e in events if isinstance(e, (TaskFailed, TaskSkipped))}
    assert set(ends) == {"TaskFailed", "TaskSkipped"}


def test_ready_tasks_on_one_model_that_batches_run_as_one_call(tmp_path):
    executor = FakeExecutor(batching={"text-to-image"})
    plan = plan_json(("text-to-image", {"text": "a red fox"}), ("text-to-image", {"text": "a blue bird"}),
                     ("summarization", {"text": "not batched"}))
    _, records = run(tmp_path, plan, executor)
    assert executor.batch_calls == [("text-to-image", "org/m", 2)]
    assert [r.attempts[0].batch for r in records.values()] == [2, 2, None]
    assert records[0].outputs["text"].endswith("a red fox") and records[1].outputs["text"].endswith("a blue bird")


def test_a_failed_batch_runs_its_tasks_one_by_one(tmp_path):
    class BatchFails(FakeExecutor):
        def run_batch(self, task, model_id, batch, ctx):
            raise TaskError("out of memory for a batch")
    executor = BatchFails(batching={"text-to-image"})
    _, records = run(tmp_path, plan_json(("text-to-image", {"text": "a"}), ("text-to-image", {"text": "b"})), executor)
    assert [r.status for r in records.values()] == ["done", "done"] and len(executor.calls) == 2


def test_stop_skips_what_has_not_started(tmp_path):
    cancel = threading.Event()

    def handler(task, model_id, inputs, ctx):
        cancel.set()   # the user presses stop while the first task runs
        return echo(task, model_id, inputs, ctx)
    plan = plan_json(("summarization", {"text": "a"}), ("translation", {"text": "<GENERATED>-0"}, [0]),
                     ("translation", {"text": "<GENERATED>-1"}, [1]))
    events, records = run(tmp_path, plan, FakeExecutor(handler), cancel=cancel)
    assert records[0].status == "done"
    assert [(r.status, r.error) for r in (records[1], records[2])] == [("skipped", "stopped by the user")] * 2
    assert sum(isinstance(e, TaskSkipped) for e in events) == 2


def test_a_task_past_its_time_limit_fails_and_the_others_go_on(tmp_path):
    release = threading.Event()

    def handler(task, model_id, inputs, ctx):
        if inputs.text == ["hang"]:
            release.wait(5)
        return echo(task, model_id, inputs, ctx)
    plan = plan_json(("summarization", {"text": "hang"}), ("summarization", {"text": "quick"}),
                     ("translation", {"text": "<GENERATED>-0"}, [0]))
    start = time.perf_counter()
    _, records = run(tmp_path, plan, FakeExecutor(handler), task_timeout=0.2)
    release.set()
    assert time.perf_counter() - start < 1.0
    assert records[0].status == "failed" and "timed out after" in records[0].error
    assert records[1].status == "done" and records[2].status == "skipped"


def test_a_task_without_a_model_fails_unless_built_in(tmp_path):
    plan = parse_plan(plan_json(("summarization", {"text": "a"}), ("canny-control", {"image": "photo.png"})))
    store = ResourceStore(tmp_path / "store")
    (tmp_path / "photo.png").write_bytes(b"")
    store.add_upload(tmp_path / "photo.png")
    executor = FakeExecutor()
    scheduler = Scheduler(Dispatcher("local", executor), store)
    list(scheduler.run(plan, {}, time.perf_counter()))
    assert scheduler.records[0].status == "failed" and "no model available" in scheduler.records[0].error
    assert scheduler.records[1].status == "done" and executor.calls[0][:2] == ("canny-control", "builtin")
