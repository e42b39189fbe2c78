"""Tasks start while the plan streams (issue 12): a task starts as soon as its JSON object has closed,
the tasks it uses are planned and its model is settled; a task with several candidates waits for the
model choice, which needs the whole plan. The scripted LLM writes one task object a second through
the real `openai` SDK; the times compared are the server's send times and the executor's start times
(one process, one clock)."""
from __future__ import annotations

import json
import threading
import time

import pytest

from jarvis.events import Done, ModelChosen, PlanReady, TaskPlanned, TaskStarted
from jarvis.pipeline.controller import Controller
from jarvis.pipeline.live_plan import join_started
from jarvis.pipeline.plan import Plan, Ref, Task
from jarvis.runners.base import RunContext, TaskInputs, TaskOutputs
from jarvis.session import Session
from tests.fakes.fake_executor import FakeExecutor
from tests.fakes.llm_server import Fault, ScriptedLLM
from tests.helpers import config_for

pytestmark = pytest.mark.timeout(60)

DAG4 = [
    {"task": "text-generation", "id": 0, "dep": [-1], "args": {"text": "Once upon a time"}},
    {"task": "summarization", "id": 1, "dep": [0], "args": {"text": "<GENERATED>-0"}},
    {"task": "translation", "id": 2, "dep": [-1], "args": {"text": "The cat sleeps on the mat."}},
    {"task": "sentence-similarity", "id": 3, "dep": [1, 2], "args": {"text": ["<GENERATED>-1", "<GENERATED>-2"]}},
]


def one_object_per_chunk(tasks: list[dict]) -> list[str]:
    """The plan as the scripted LLM streams it: chunk i closes task object i."""
    last = len(tasks) - 1
    return [("[" if i == 0 else "") + json.dumps(t) + ("]" if i == last else ", ") for i, t in enumerate(tasks)]


class Clocked:
    """An executor handler that notes when each task began and takes `seconds`."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.began: dict[str, float] = {}
        self.lock = threading.Lock()

    def __call__(self, task: str, model_id: str, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        with self.lock:
            self.began[task] = time.perf_counter()
        time.sleep(self.seconds)
        return TaskOutputs(text=f"{task} result", detail={"model": model_id})


def run(server: ScriptedLLM, tmp_path, handler: Clocked, **inference) -> list:
    cfg = config_for(server.url, inference=inference)
    controller = Controller(cfg, local=FakeExecutor(handler))
    return list(controller.run(Session.create(cfg, root=tmp_path / "s"), "write, summarize, translate, compare"))


def test_each_task_starts_as_its_object_closes_long_before_the_plan_ends(tmp_path):
    clock = Clocked(0.3)
    with ScriptedLLM(plan=one_object_per_chunk(DAG4), answer="Done.", chunk_delay=1.0) as server:
        events = run(server, tmp_path, clock, top_k=1)      # one candidate per task: every model is settled
        sent = [at for at, _ in server.requests[0]["sent"]]
    done = events[-1]
    assert isinstance(done, Done) and [r.status for r in done.result.tasks] == ["done"] * 4
    assert server.kinds() == ["plan", "answer"]               # nothing to choose: no model-selection call
    closed_0, closed_2 = sent[0], sent[2]
    assert clock.began["text-generation"] - closed_0 <= 0.2
    assert clock.began["translation"] - closed_2 <= 0.2
    plan_end = done.result.timings.plan
    first = done.result.tasks[0]
    assert first.started is not None and plan_end - first.started > 2.5   # the stream wrote on for 3 s
    ready = next(i for i, e in enumerate(events) if isinstance(e, PlanReady))
    assert {e.task_id for e in events[:ready] if isinstance(e, TaskStarted)} >= {0, 1, 2}
    assert [e.task.id for e in events if isinstance(e, TaskPlanned)] == [0, 1, 2, 3]


def test_a_task_with_several_candidates_waits_for_the_whole_plan(tmp_path):
    clock = Clocked(0.0)
    with ScriptedLLM(plan=one_object_per_chunk(DAG4[:3]), answer="Done.", chunk_delay=0.3) as server:
        events = run(server, tmp_path, clock)                 # top_k 5: the selection call chooses
        assert server.kinds() == ["plan", "select", "answer"]
    ready = next(i for i, e in enumerate(events) if isinstance(e, PlanReady))
    assert not any(isinstance(e, (TaskStarted, ModelChosen)) for e in events[:ready])
    assert isinstance(events[-1], Done) and [r.status for r in events[-1].result.tasks] == ["done"] * 3


def test_a_plan_stream_that_falls_silent_keeps_the_tasks_it_had_written(tmp_path):
    clock = Clocked(0.0)
    with ScriptedLLM(plan=one_object_per_chunk(DAG4), answer="Done.") as server:
        server.faults = [Fault(200, stall_after=2, stall=10.0)]      # the plan only: silent after two objects
        cfg = config_for(server.url, inference={"top_k": 1}, llm={"idle_timeout": 0.5})
        controller = Controller(cfg, local=FakeExecutor(clock))
        events = list(controller.run(Session.create(cfg, root=tmp_path / "s"), "write, summarize"))
    done = events[-1]
    assert isinstance(done, Done) and done.result.answer == "Done."
    assert [(r.task, r.status) for r in done.result.tasks] == [("text-generation", "done"), ("summarization", "done")]
    assert "stopped sending" in done.result.plan_repairs[0] and "kept the tasks it had written" in done.result.plan_repairs[0]


def test_a_started_task_the_whole_plan_reads_differently_runs_as_started():
    ran = Task(0, "summarization", [], {"text": ["a long text"]})
    whole = Plan(tasks=[Task(0, "translation", [], {"text": ["a long text"]}),
                        Task(1, "text-classification", [0], {"text": [Ref(0)]}),
                        Task(2, "text-classification", [], {"text": ["fine"]})])
    plan = join_started(whole, {0: ran})
    assert plan.tasks[0] is ran
    assert any("task 0 started before the plan was whole" in r and "kept it as it runs" in r for r in plan.repairs)
    assert plan.tasks[1].error and "uses task 0" in plan.tasks[1].error
    assert plan.tasks[2].error is None
