"""What a consuming task actually receives, and how a failure travels down a chain: the scheduler
with a recording FakeExecutor, each test pinned to a one-line bug it must catch (see issue 17)."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from jarvis.errors import TaskError
from jarvis.events import TaskProgress, TaskStarted
from jarvis.execution.dispatch import Dispatcher
from jarvis.files.store import ResourceStore
from jarvis.pipeline.plan_reading import parse_plan
from jarvis.pipeline.scheduler import Scheduler
from jarvis.pipeline.selection import Choice
from jarvis.runners.base import RunContext, TaskInputs, TaskOutputs
from tests.fakes.fake_executor import FakeExecutor
from tests.helpers import drive_run, plan_json

pytestmark = pytest.mark.timeout(20)


class Recorder:
    """A FakeExecutor handler: each task's inputs, by the text that identifies the task; answers
    with a text no other task produces, so a consumer's input names its producer exactly."""

    def __init__(self, fail_on: str | None = None):
        self.fail_on = fail_on
        self.inputs: list[TaskInputs] = []
        self.lock = threading.Lock()

    def __call__(self, task: str, model_id: str, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        with self.lock:
            self.inputs.append(inputs)
        if self.fail_on is not None and self.fail_on in inputs.text:
            raise TaskError("the model refused this input")
        return TaskOutputs(text=f"<<{task} of {' + '.join(inputs.text)}>>")


def run_bounded(tmp_path: Path, plan_text: str, handler: Recorder, limit: float = 5.0):
    """Run the plan in a thread; a run still going after `limit` seconds is stopped and reported
    (a scheduler that never settles a task would otherwise hang the suite)."""
    plan = parse_plan(plan_text)
    choices = {t.id: Choice(t.id, "org/m", "test", ["org/m"]) for t in plan.tasks}
    cancel = threading.Event()
    scheduler = Scheduler(Dispatcher("local", FakeExecutor(handler)), ResourceStore(tmp_path / "store"),
                          cancel=cancel)
    events: list = []
    worker = threading.Thread(target=lambda: events.extend(scheduler.run(plan, choices, time.perf_counter())),
                              daemon=True)
    worker.start()
    worker.join(limit)
    hung = worker.is_alive()
    cancel.set()          # lets a stuck loop end: every pending task is then skipped
    worker.join(5)
    assert not hung, f"the scheduler did not finish within {limit} s: {[(r.id, r.status) for r in scheduler.records.values()]}"
    return events, scheduler.records


def test_a_failure_skips_every_task_down_a_four_deep_chain(tmp_path):
    plan = plan_json(("summarization", {"text": "broken"}),
                     ("translation", {"text": "<GENERATED>-0"}, [0]),
                     ("summarization", {"text": "<GENERATED>-1"}, [1]),
                     ("translation", {"text": "<GENERATED>-2"}, [2]),
                     ("text-classification", {"text": "<GENERATED>-3"}, [3]),
                     ("summarization", {"text": "independent"}))
    recorder = Recorder(fail_on="broken")
    start = time.perf_counter()
    _, records = run_bounded(tmp_path, plan, recorder)
    assert time.perf_counter() - start < 5
    assert records[0].status == "failed" and "the model refused this input" in records[0].error
    for tid in (1, 2, 3, 4):
        assert records[tid].status == "skipped", records[tid]
        assert records[tid].error.startswith(f"skipped: task {tid - 1} ({records[tid - 1].task}) did not finish")
    assert records[5].status == "done"
    assert [i.text for i in recorder.inputs] in (
        [["broken"], ["independent"]], [["independent"], ["broken"]])   # nothing downstream ran


@pytest.mark.parametrize("arg, expected", [
    ("<GENERATED>-0", "<<summarization of a long text>>"),
    ("Translate: <GENERATED>-0", "Translate: <<summarization of a long text>>"),
    ("<GENERATED>-0 and <GENERATED>-1", "<<summarization of a long text>> and <<translation of hello>>"),
])
def test_a_consumer_receives_the_producers_text(tmp_path, arg, expected):
    plan = plan_json(("summarization", {"text": "a long text"}), ("translation", {"text": "hello"}),
                     ("text-classification", {"text": arg}, [-1]))
    recorder = Recorder()
    _, records = run_bounded(tmp_path, plan, recorder)
    assert [r.status for r in records.values()] == ["done"] * 3
    consumer = next(i for i in recorder.inputs if i.text != ["a long text"] and i.text != ["hello"])
    assert consumer.text == [expected]
    assert "GENERATED" not in records[2].outputs["text"]
    assert records[2].started >= records[0].finished        # it waited for its producer


def test_a_consumer_waits_for_a_producer_named_inside_its_text(tmp_path):
    """The reference inside text is the dependency: the producer is slow, the consumer must wait."""
    def slow_first(task: str, model_id: str, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        if inputs.text == ["slow"]:
            time.sleep(0.3)
        return TaskOutputs(text=f"<<{task} of {inputs.text[0]}>>")
    plan = parse_plan(plan_json(("summarization", {"text": "slow"}),
                                ("translation", {"text": "Translate: <GENERATED>-0"})))
    choices = {t.id: Choice(t.id, "org/m", "test", ["org/m"]) for t in plan.tasks}
    executor = FakeExecutor(slow_first)
    scheduler = Scheduler(Dispatcher("local", executor), ResourceStore(tmp_path / "store"))
    list(scheduler.run(plan, choices, time.perf_counter()))
    assert [c[2].text for c in executor.calls] == [["slow"], ["Translate: <<summarization of slow>>"]]
    assert scheduler.records[1].started >= scheduler.records[0].finished


def run_plan(tmp_path: Path, plan_text: str, executor: FakeExecutor, choices=None, **options):
    plan = parse_plan(plan_text)
    if choices is None:
        choices = {t.id: Choice(t.id, "org/m", "because", ["org/m"]) for t in plan.tasks}
    scheduler = Scheduler(Dispatcher("local", executor), ResourceStore(tmp_path / "store"), **options)
    return list(scheduler.run(plan, choices, time.perf_counter())), scheduler.records


def test_events_and_records_say_which_model_ran_what_and_its_progress(tmp_path):
    def talks(task: str, model_id: str, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        ctx.progress(f"working on {inputs.text[0]}")
        return TaskOutputs(text="ok")
    plan = plan_json(("summarization", {"text": "first"}), ("translation", {"text": "<GENERATED>-0"}))
    choices = {0: Choice(0, "org/a", "the best", ["org/a", "org/b"]), 1: Choice(1, "org/c", "the only", ["org/c"])}
    events, records = run_plan(tmp_path, plan, FakeExecutor(talks), choices)
    started = [e for e in events if isinstance(e, TaskStarted)]
    assert [(e.task_id, e.task, e.model, e.executor) for e in started] == [
        (0, "summarization", "org/a", "local"), (1, "translation", "org/c", "local")]
    assert all(isinstance(e.started, float) and e.started >= 0 for e in started)
    progress = [(e.task_id, e.message) for e in events if isinstance(e, TaskProgress)]
    assert progress == [(0, "working on first"), (1, "working on ok")]
    assert [(r.model, r.reason, r.dep, r.status) for r in records.values()] == [
        ("org/a", "the best", [-1], "done"), ("org/c", "the only", [0], "done")]
    assert records[0].finished <= records[1].started and round(records[1].finished, 3) == records[1].finished


def test_the_next_candidate_runs_when_the_chosen_model_fails(tmp_path):
    def only_b(task: str, model_id: str, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        if model_id != "org/b":
            raise TaskError(f"{model_id} cannot load")
        return TaskOutputs(text="from b")
    choices = {0: Choice(0, "org/a", "first pick", ["org/a", "org/b"])}
    _, records = run_plan(tmp_path, plan_json(("summarization", {"text": "x"})), FakeExecutor(only_b), choices)
    assert records[0].status == "done" and records[0].model == "org/b" and records[0].outputs == {"text": "from b"}
    assert [(a.model, a.ok) for a in records[0].attempts] == [("org/a", False), ("org/b", True)]


def test_a_runner_bug_fails_its_task_with_the_error_and_the_others_go_on(tmp_path):
    def buggy(task: str, model_id: str, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        if inputs.text == ["bug"]:
            raise KeyError("missing")
        return TaskOutputs(text="fine")
    plan = plan_json(("summarization", {"text": "bug"}), ("summarization", {"text": "ok"}))
    _, records = run_plan(tmp_path, plan, FakeExecutor(buggy))
    assert records[0].status == "failed" and "missing" in records[0].error
    assert records[1].status == "done"


def test_the_media_check_refuses_an_unusable_file_before_the_run(tmp_path):
    from jarvis.errors import ResourceError
    store = ResourceStore(tmp_path / "store")
    (tmp_path / "photo.png").write_bytes(b"not really a picture")
    store.add_upload(tmp_path / "photo.png")
    seen: list[tuple[str, str]] = []

    def check(path: Path, rtype: str) -> None:
        seen.append((path.name, rtype))
        raise ResourceError(f"{path.name} is not an image Jarvis can read")
    plan = parse_plan(plan_json(("image-classification", {"image": "photo.png"})))
    executor = FakeExecutor()
    scheduler = Scheduler(Dispatcher("local", executor), store, check=check)
    list(scheduler.run(plan, {0: Choice(0, "org/m", "r", ["org/m"])}, time.perf_counter()))
    assert seen == [("photo.png", "image")] and executor.calls == []
    assert scheduler.records[0].status == "failed" and "photo.png is not an image" in scheduler.records[0].error


def test_at_most_max_parallel_tasks_run_at_once(tmp_path):
    running, peak, lock = [0], [0], threading.Lock()

    def counted(task: str, model_id: str, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return TaskOutputs(text="ok")
    plan = plan_json(*[("summarization", {"text": f"t{i}"}) for i in range(4)])
    run_plan(tmp_path, plan, FakeExecutor(counted), max_parallel=2)
    assert peak[0] == 2
    peak[0] = 0
    run_plan(tmp_path, plan, FakeExecutor(counted), max_parallel=1)
    assert peak[0] == 1


def test_a_timed_out_task_is_told_to_stop(tmp_path):
    told = threading.Event()

    def loops(task: str, model_id: str, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        if ctx.cancel.wait(3):          # a runner checks its cancel flag between steps
            told.set()
        return TaskOutputs(text="late")
    _, records = run_plan(tmp_path, plan_json(("summarization", {"text": "x"})), FakeExecutor(loops),
                          task_timeout=0.2)
    assert records[0].status == "failed"
    assert records[0].error == "timed out after 0.2 s (inference.task_timeout)"
    assert told.wait(2)


def test_a_streamed_task_whose_producer_never_arrives_fails_once_the_plan_is_sealed(tmp_path):
    """A plan cut off before task 0 arrived: task 1 waits while the plan streams, then fails naming task 0."""
    plan = parse_plan(plan_json(("summarization", {"text": "never sent"}),
                                ("translation", {"text": "<GENERATED>-0"}, [0])))
    recorder = Recorder()
    scheduler = Scheduler(Dispatcher("local", FakeExecutor(recorder)), ResourceStore(tmp_path / "store"))
    run = scheduler.begin(time.perf_counter())
    try:
        run.add(plan.tasks[1], Choice(1, "org/m", "test", ["org/m"]))
        for _ in range(3):                       # not sealed: it waits, nothing fails
            assert list(run.step()) == [] and not run.finished
        run.seal()
        events = drive_run(run)
    finally:
        run.close()
    record = scheduler.records[1]
    assert record.status == "failed" and "it waits for task(s) [0], which did not run" in record.error
    assert record.model == "org/m"              # the record keeps the model chosen for it
    assert [type(e).__name__ for e in events] == ["TaskFailed"] and recorder.inputs == []


def test_the_wake_callback_fires_when_a_task_ends(tmp_path):
    """The controller sleeps until `wake`: a run whose tasks end without waking it would stall the request."""
    woke, release = threading.Event(), threading.Event()

    def held(task: str, model_id: str, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        release.wait(5)
        return TaskOutputs(text="ok")
    scheduler = Scheduler(Dispatcher("local", FakeExecutor(held)), ResourceStore(tmp_path / "store"))
    run = scheduler.begin(time.perf_counter(), wake=woke.set)
    try:
        plan = parse_plan(plan_json(("summarization", {"text": "hello"})))
        run.add(plan.tasks[0], Choice(0, "org/m", "test", ["org/m"]))
        run.seal()
        list(run.step())                         # starts the task
        assert woke.wait(5), "no wake when the task started"
        woke.clear()
        release.set()                            # the task ends now: only its end can wake the run
        assert woke.wait(5), "no wake after the task ended"
        events = drive_run(run)
    finally:
        run.close()
    assert scheduler.records[0].status == "done" and any(type(e).__name__ == "TaskFinished" for e in events)


def test_skipped_dependents_keep_the_model_chosen_for_them(tmp_path):
    plan = plan_json(("summarization", {"text": "broken"}), ("translation", {"text": "<GENERATED>-0"}, [0]))
    _, records = run_bounded(tmp_path, plan, Recorder(fail_on="broken"))
    assert (records[1].status, records[1].model, records[1].reason) == ("skipped", "org/m", "test")
