"""The scheduler's contract where mutation testing found it unpinned (issue 17): how many tasks run at
once, what one step settles, which tasks share a batch, time limits of single tasks and of batches,
what `close` does to queued work, the records' times and states, the context a runner gets, and the
log lines an operator reads. Real DagRun / Scheduler, FakeExecutor handlers; no sleeps racing threads
(events and conditions), each test well under two seconds."""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest

from jarvis.errors import TaskError
from jarvis.events import TaskFailed, TaskFinished, TaskProgress, TaskSkipped
from jarvis.execution.dispatch import Dispatcher
from jarvis.files.store import ResourceStore
from jarvis.pipeline.plan_reading import parse_plan
from jarvis.pipeline.scheduler import DagRun, Scheduler
from jarvis.pipeline.selection import Choice
from jarvis.runners.base import Device, RunContext, TaskInputs, TaskOutputs
from tests.fakes.fake_executor import FakeExecutor, Handler, echo
from tests.helpers import drive_run, plan_json

pytestmark = pytest.mark.timeout(20)

LOGGER = "jarvis.pipeline.scheduler"


def make(tmp_path: Path, handler: Handler = echo, batching: tuple[str, ...] = (), **options) -> tuple[Scheduler, FakeExecutor]:
    executor = FakeExecutor(handler, batching=batching)
    return Scheduler(Dispatcher("local", executor), ResourceStore(tmp_path / "store"), **options), executor


def on(tid: int, model: str = "org/m") -> Choice:
    return Choice(tid, model, "test", [model])


def run_all(scheduler: Scheduler, plan_text: str, choices: dict[int, Choice] | None = None) -> list:
    plan = parse_plan(plan_text)
    if choices is None:
        choices = {t.id: on(t.id) for t in plan.tasks}
    return list(scheduler.run(plan, choices, time.perf_counter()))


def start(scheduler: Scheduler, plan_text: str, choices: dict[int, Choice] | None = None) -> DagRun:
    """A sealed streaming run holding every task of the plan (each on "org/m" unless told)."""
    run = scheduler.begin(time.perf_counter())
    for task in parse_plan(plan_text).tasks:
        run.add(task, on(task.id) if choices is None else choices.get(task.id))
    run.seal()
    return run


def ends(events: list) -> list[tuple[str, int, str, str | None]]:
    """Each end event with the record it carries."""
    return [(type(e).__name__, e.record.id, e.record.status, e.record.error)
            for e in events if isinstance(e, (TaskFinished, TaskFailed, TaskSkipped))]


class Gate:
    """A handler that holds every task until released, counting the tasks that entered it."""

    def __init__(self) -> None:
        self.entered = 0
        self.cond = threading.Condition()
        self.release = threading.Event()
        self.contexts: list[RunContext] = []
        self.threads: list[str] = []

    def __call__(self, task: str, model_id: str, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        with self.cond:
            self.entered += 1
            self.contexts.append(ctx)
            self.threads.append(threading.current_thread().name)
            self.cond.notify_all()
        self.release.wait(5)
        return echo(task, model_id, inputs, ctx)

    def until(self, count: int, timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: self.entered >= count, timeout)


# -- concurrency and waiting ------------------------------------------------------------------
def test_a_new_scheduler_has_no_records_and_runs_four_tasks_at_once_by_default(tmp_path):
    gate = Gate()
    scheduler, _ = make(tmp_path, gate)
    assert scheduler.records == {}
    run = start(scheduler, plan_json(*[("summarization", {"text": f"t{i}"}) for i in range(5)]))
    try:
        list(run.step())                                  # all five handed to the pool
        assert gate.until(4, 5)
        assert not gate.until(5, 0.3), "a fifth task started while four were running"
        gate.release.set()
        events = drive_run(run)
    finally:
        gate.release.set()
        run.close()
    assert sorted(e[:3] for e in ends(events)) == [("TaskFinished", i, "done") for i in range(5)]


def test_wait_returns_as_soon_as_one_running_task_ends(tmp_path):
    release = threading.Event()

    def one_held(task: str, model_id: str, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        if inputs.text == ["held"]:
            release.wait(5)
        return echo(task, model_id, inputs, ctx)
    scheduler, _ = make(tmp_path, one_held)
    run = start(scheduler, plan_json(("summarization", {"text": "held"}), ("summarization", {"text": "quick"})))
    try:
        list(run.step())
        began = time.perf_counter()
        run.wait(3)
        waited = time.perf_counter() - began
        release.set()
        events = drive_run(run)
    finally:
        release.set()
        run.close()
    assert waited < 1.5, f"wait blocked {waited:.2f} s although the quick task had ended"
    assert sorted(e[:3] for e in ends(events)) == [("TaskFinished", 0, "done"), ("TaskFinished", 1, "done")]


def test_close_never_starts_a_queued_task_and_tells_the_running_one_to_stop(tmp_path):
    told, entered = threading.Event(), threading.Event()

    def stoppable(task: str, model_id: str, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        entered.set()
        if ctx.cancel.wait(5):
            told.set()
        return echo(task, model_id, inputs, ctx)
    scheduler, executor = make(tmp_path, stoppable, max_parallel=1)
    run = start(scheduler, plan_json(("summarization", {"text": "running"}), ("summarization", {"text": "queued"})))
    list(run.step())                                      # one worker: "queued" waits in the pool
    assert entered.wait(5)
    run.close()
    assert told.wait(2), "the running task was not told to stop"
    run.pool.shutdown(wait=True)                          # the pool's thread has ended: nothing more will run
    assert [c[2].text for c in executor.calls] == [["running"]]


# -- what one step settles -----------------------------------------------------------------------
def test_a_stop_before_the_run_skips_every_task_in_one_step(tmp_path):
    cancel = threading.Event()
    cancel.set()
    scheduler, executor = make(tmp_path, cancel=cancel)
    run = start(scheduler, plan_json(*[("summarization", {"text": f"t{i}"}) for i in range(3)]))
    try:
        events = list(run.step())
    finally:
        run.close()
    assert ends(events) == [("TaskSkipped", i, "skipped", "stopped by the user") for i in range(3)]
    assert run.finished and executor.calls == []


def test_every_task_the_plan_marked_as_broken_fails_with_its_own_error_in_one_step(tmp_path):
    scheduler, executor = make(tmp_path)
    run = start(scheduler, plan_json(("summarization", {"text": "<GENERATED>-7"}),
                                     ("translation", {"text": "<GENERATED>-8"})))
    try:
        events = list(run.step())
    finally:
        run.close()
    assert ends(events) == [
        ("TaskFailed", 0, "failed", "task 0 uses the output of task 7, which is not in the plan"),
        ("TaskFailed", 1, "failed", "task 1 uses the output of task 8, which is not in the plan")]
    assert executor.calls == []


def test_every_task_without_a_model_fails_naming_its_task_type(tmp_path):
    scheduler, executor = make(tmp_path)
    run = start(scheduler, plan_json(("summarization", {"text": "a"}), ("translation", {"text": "b"})), choices={})
    try:
        events = list(run.step())
    finally:
        run.close()
    assert ends(events) == [
        ("TaskFailed", 0, "failed", "no model available for summarization in this inference mode"),
        ("TaskFailed", 1, "failed", "no model available for translation in this inference mode")]
    assert executor.calls == []


def test_a_failure_skips_each_dependent_and_the_reason_travels_down_the_chain(tmp_path):
    def refuses(task: str, model_id: str, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        if inputs.text == ["broken"]:
            raise TaskError("the model refused this input")
        return echo(task, model_id, inputs, ctx)
    scheduler, executor = make(tmp_path, refuses)
    events = run_all(scheduler, plan_json(("summarization", {"text": "broken"}),
                                          ("translation", {"text": "<GENERATED>-0"}, [0]),
                                          ("text-classification", {"text": "<GENERATED>-1"}, [1]),
                                          ("summarization", {"text": "<GENERATED>-0"}, [0])))
    first = "skipped: task 0 (summarization) did not finish: the model refused this input"
    assert ends(events)[1:] == [("TaskSkipped", 1, "skipped", first),
                                ("TaskSkipped", 2, "skipped", f"skipped: task 1 (translation) did not finish: {first}"),
                                ("TaskSkipped", 3, "skipped", first)]
    assert ends(events)[0][:3] == ("TaskFailed", 0, "failed") and len(executor.calls) == 1


def test_a_task_added_twice_is_refused(tmp_path):
    scheduler, _ = make(tmp_path)
    run = scheduler.begin(time.perf_counter())
    task = parse_plan(plan_json(("summarization", {"text": "a"}))).tasks[0]
    try:
        run.add(task, on(0))
        with pytest.raises(ValueError, match=r"^task 0 was added twice$"):
            run.add(task, on(0))
    finally:
        run.close()


# -- batches ---------------------------------------------------------------------------------------
def test_only_tasks_of_one_type_on_one_model_share_a_batch(tmp_path):
    scheduler, executor = make(tmp_path, batching=("text-to-image", "text-to-speech"))
    plan = plan_json(("text-to-image", {"text": "a fox"}), ("text-to-image", {"text": "a bird"}),
                     ("text-to-image", {"text": "a cat"}), ("text-to-speech", {"text": "hello"}))
    run_all(scheduler, plan, {0: on(0, "org/a"), 1: on(1, "org/b"), 2: on(2, "org/a"), 3: on(3, "org/a")})
    assert executor.batch_calls == [("text-to-image", "org/a", 2)]
    assert sorted((c[0], c[1], c[2].text[0]) for c in executor.calls) == [
        ("text-to-image", "org/b", "a bird"), ("text-to-speech", "org/a", "hello")]
    assert [(r.status, r.model, r.outputs["text"]) for r in scheduler.records.values()] == [
        ("done", "org/a", "text-to-image by org/a: a fox"), ("done", "org/b", "text-to-image by org/b: a bird"),
        ("done", "org/a", "text-to-image by org/a: a cat"), ("done", "org/a", "text-to-speech by org/a: hello")]


def test_a_batch_reports_its_progress_under_its_first_task(tmp_path):
    def talks(task: str, model_id: str, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        ctx.progress(f"drawing {inputs.text[0]}")
        return echo(task, model_id, inputs, ctx)
    scheduler, executor = make(tmp_path, talks, batching=("text-to-image",))
    events = run_all(scheduler, plan_json(("text-to-image", {"text": "a fox"}), ("text-to-image", {"text": "a bird"})))
    assert executor.batch_calls == [("text-to-image", "org/m", 2)] and executor.calls == []
    assert [(e.task_id, e.message) for e in events if isinstance(e, TaskProgress)] == [
        (0, "drawing a fox"), (0, "drawing a bird")]


def test_a_failed_batch_is_logged_and_its_tasks_run_one_by_one(tmp_path, caplog):
    class BatchFails(FakeExecutor):
        def run_batch(self, task, model_id, batch, ctx):
            raise TaskError("out of memory for a batch")
    executor = BatchFails(batching={"text-to-image"})
    scheduler = Scheduler(Dispatcher("local", executor), ResourceStore(tmp_path / "store"))
    with caplog.at_level(logging.INFO, logger=LOGGER):
        run_all(scheduler, plan_json(("text-to-image", {"text": "a"}), ("text-to-image", {"text": "b"})))
    assert [(r.levelname, r.getMessage()) for r in caplog.records if r.name == LOGGER] == [
        ("INFO", "batch of 2 text-to-image tasks failed (out of memory for a batch); running them one by one")]
    assert sorted(c[2].text[0] for c in executor.calls) == ["a", "b"]
    assert [r.status for r in scheduler.records.values()] == ["done", "done"]


# -- time limits -------------------------------------------------------------------------------------
def test_a_timed_out_task_is_told_to_stop_at_once_not_only_when_the_run_closes(tmp_path):
    told = threading.Event()

    def loops(task: str, model_id: str, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        if ctx.cancel.wait(5):
            told.set()
        return echo(task, model_id, inputs, ctx)
    scheduler, _ = make(tmp_path, loops, task_timeout=0.2)
    run = start(scheduler, plan_json(("summarization", {"text": "x"})))
    try:
        events = drive_run(run)
        assert told.wait(2), "the task timed out but its cancel flag was not set"
    finally:
        run.close()
    assert ends(events) == [("TaskFailed", 0, "failed", "timed out after 0.2 s (inference.task_timeout)")]


def test_a_batch_of_two_has_twice_the_time_limit(tmp_path):
    gate = Gate()
    scheduler, executor = make(tmp_path, gate, batching=("text-to-image",), task_timeout=0.5)
    run = start(scheduler, plan_json(("text-to-image", {"text": "a"}), ("text-to-image", {"text": "b"})))
    try:
        list(run.step())
        time.sleep(0.6)                                   # past one task's limit, within the batch's (1 s)
        early = list(run.step())
        gate.release.set()
        events = early + drive_run(run)
    finally:
        gate.release.set()
        run.close()
    assert executor.batch_calls == [("text-to-image", "org/m", 2)]
    assert [e[:3] for e in ends(events)] == [("TaskFinished", 0, "done"), ("TaskFinished", 1, "done")]


def test_a_batch_past_its_time_limit_fails_every_task_in_it(tmp_path):
    def loops(task: str, model_id: str, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        ctx.cancel.wait(5)
        return echo(task, model_id, inputs, ctx)
    scheduler, executor = make(tmp_path, loops, batching=("text-to-image",), task_timeout=0.1)
    began = time.perf_counter()
    events = run_all(scheduler, plan_json(("text-to-image", {"text": "a"}), ("text-to-image", {"text": "b"})))
    assert time.perf_counter() - began < 2
    message = "timed out after 0.1 s (inference.task_timeout)"
    assert ends(events) == [("TaskFailed", 0, "failed", message), ("TaskFailed", 1, "failed", message)]
    assert executor.batch_calls == [("text-to-image", "org/m", 2)]


# -- records, context and logs ---------------------------------------------------------------------
def test_a_running_task_is_recorded_as_running_and_gets_a_device_on_a_named_thread(tmp_path):
    gate = Gate()
    scheduler, _ = make(tmp_path, gate)
    t0 = time.perf_counter() - 1.0                        # the request began a second ago
    run = scheduler.begin(t0)
    run.add(parse_plan(plan_json(("summarization", {"text": "a"}))).tasks[0], on(0))
    run.seal()
    try:
        list(run.step())
        assert gate.until(1, 5)
        assert scheduler.records[0].status == "running"
        gate.release.set()
        drive_run(run)
    finally:
        gate.release.set()
        run.close()
    elapsed = time.perf_counter() - t0
    record = scheduler.records[0]
    assert record.status == "done" and 1.0 <= record.started <= record.finished <= elapsed + 0.001  # ms rounding
    assert gate.contexts[0].device == Device()
    assert gate.threads[0].startswith("jarvis-task"), gate.threads


def test_an_unexpected_error_fails_its_task_with_its_type_and_first_300_characters_and_is_logged(tmp_path, caplog):
    store = ResourceStore(tmp_path / "store")
    (tmp_path / "photo.png").write_bytes(b"")
    store.add_upload(tmp_path / "photo.png")
    raised: list[BaseException] = []

    def broken_check(path: Path, rtype: str) -> None:
        raised.append(RuntimeError("x" * 400))
        raise raised[0]
    executor = FakeExecutor()
    scheduler = Scheduler(Dispatcher("local", executor), store, check=broken_check)
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        events = run_all(scheduler, plan_json(("image-classification", {"image": "photo.png"}),
                                              ("summarization", {"text": "fine"})))
    assert sorted(ends(events)) == [("TaskFailed", 0, "failed", "RuntimeError: " + "x" * 300),
                                    ("TaskFinished", 1, "done", None)]
    logged = [r for r in caplog.records if r.name == LOGGER]
    assert [(r.levelname, r.getMessage()) for r in logged] == [("ERROR", "task 0 failed unexpectedly")]
    assert logged[0].exc_info is not None and logged[0].exc_info[1] is raised[0]
    assert [c[0] for c in executor.calls] == ["summarization"]


def test_the_time_limit_counts_from_when_a_task_starts_not_while_it_waits_for_a_worker(tmp_path):
    """inference.task_timeout is how long a task may run: a task queued behind a busy worker keeps its full limit."""
    entered = {"a": threading.Event(), "b": threading.Event()}
    release = {"a": threading.Event(), "b": threading.Event()}

    def held(task: str, model_id: str, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        entered[inputs.text[0]].set()
        release[inputs.text[0]].wait(5)
        return echo(task, model_id, inputs, ctx)
    scheduler, _ = make(tmp_path, held, max_parallel=1, task_timeout=0.5)
    run = start(scheduler, plan_json(("summarization", {"text": "a"}), ("summarization", {"text": "b"})))
    try:
        events = list(run.step())                         # one worker: b waits in the pool while a runs
        assert entered["a"].wait(5)
        time.sleep(0.3)
        release["a"].set()                                # a ends after 0.3 s, b starts
        assert entered["b"].wait(5)
        events += run.step()
        time.sleep(0.3)                                   # b has run 0.3 s of its 0.5 s, 0.6 s after it was queued
        events += run.step()
        release["b"].set()
        events += drive_run(run)
    finally:
        for gate in release.values():
            gate.set()
        run.close()
    assert sorted(e[:3] for e in ends(events)) == [("TaskFinished", 0, "done"), ("TaskFinished", 1, "done")]


def test_tasks_waiting_for_a_worker_fail_when_every_worker_is_held_by_a_task_that_ignores_its_stop(tmp_path):
    """A runner that overruns its limit and ignores the stop keeps its worker: with every worker so held,
    the queued tasks are failed (saying why) instead of waiting for ever."""
    entered, release = threading.Event(), threading.Event()

    def stubborn(task: str, model_id: str, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        if inputs.text[0] == "a":
            entered.set()
            release.wait(10)                      # never looks at ctx.cancel
        return echo(task, model_id, inputs, ctx)
    scheduler, executor = make(tmp_path, stubborn, max_parallel=1, task_timeout=0.2)
    run = start(scheduler, plan_json(("summarization", {"text": "a"}), ("summarization", {"text": "b"})))
    try:
        events = list(run.step())
        assert entered.wait(5)
        events += drive_run(run)
    finally:
        release.set()
        run.close()
    assert sorted(e[:3] for e in ends(events)) == [("TaskFailed", 0, "failed"), ("TaskFailed", 1, "failed")]
    assert scheduler.records[0].error == "timed out after 0.2 s (inference.task_timeout)"
    assert scheduler.records[1].error == ("no worker is free: 1 timed-out task(s) have not stopped yet; "
                                          "try again later")
    assert [c[2].text for c in executor.calls] == [["a"]]          # b never ran
