"""Specification of the controller's four stages with FakeLLM and FakeExecutor: no HTTP, no models.

The wire-level tests (test_controller.py, with a scripted OpenAI server and tiny real models) prove
the same path end to end; these pin what the controller itself decides, in well under a second.
"""
from __future__ import annotations

import json

import pytest

from jarvis.catalog.entries import Catalog
from jarvis.errors import LLMError
from jarvis.events import Done, ModelChosen, PlanReady, TaskFinished
from jarvis.pipeline.controller import Controller
from jarvis.session import Session
from tests.fakes.fake_executor import FakeExecutor
from tests.fakes.fake_llm import FakeLLM
from tests.helpers import config_for, plan_json

PLAN = plan_json(("text-classification", {"text": "I love it"}), ("summarization", {"text": "<GENERATED>-0"}, [0]))


@pytest.fixture(scope="module")
def catalog():
    return Catalog.load()


def run(catalog, tmp_path, llm: FakeLLM, executor: FakeExecutor | None = None):
    cfg = config_for("http://127.0.0.1:9/v1")
    executor = executor or FakeExecutor()
    controller = Controller(cfg, catalog, local=executor, llm=lambda _cfg: llm)
    events = list(controller.run(Session.create(cfg, root=tmp_path / "s"), "classify, then summarize"))
    return controller, executor, events


def test_plan_select_execute_respond(catalog, tmp_path):
    first = catalog.candidates("text-classification", k=5, mode="local")[1].id
    llm = FakeLLM(plan=PLAN, select=json.dumps({"0": {"id": first, "reason": "second is better"}}),
                  respond="It is positive; summary attached.")
    _, executor, events = run(catalog, tmp_path, llm)
    done = events[-1]
    assert isinstance(done, Done)   # both tasks have several candidates: their choice waits for the whole plan
    assert [type(e) for e in events if isinstance(e, (PlanReady, ModelChosen))][0] is PlanReady
    assert llm.stages() == ["plan", "select", "respond"] and done.result.usage.llm_calls == 3
    chosen = {e.task_id: e.model for e in events if isinstance(e, ModelChosen)}
    assert chosen[0] == first and [c[:2] for c in executor.calls][0] == ("text-classification", first)
    assert [r.status for r in done.result.tasks] == ["done", "done"]
    assert done.result.answer == "It is positive; summary attached."
    assert sum(isinstance(e, TaskFinished) for e in events) == 2
    record = done.result.to_dict()["tasks"][1]
    assert record["attempts"][0]["ok"] and record["outputs"]["text"].startswith("summarization by")


def test_no_tasks_is_a_conversation(catalog, tmp_path):
    llm = FakeLLM(plan="[]", chat="Hello! What can I do?")
    _, executor, events = run(catalog, tmp_path, llm)
    assert llm.stages() == ["plan", "chat"] and executor.calls == []
    assert events[-1].result.answer == "Hello! What can I do?" and events[-1].result.tasks == []


def test_a_failed_answer_still_gives_the_results(catalog, tmp_path):
    llm = FakeLLM(plan=PLAN, select="{}", respond=LLMError("the LLM endpoint example.org failed (500)"))
    _, _, events = run(catalog, tmp_path, llm)
    answer = events[-1].result.answer
    assert "could not write the final answer" in answer and "failed (500)" in answer
    assert "task 0 text-classification" in answer and "task 1 summarization" in answer


def test_close_releases_the_local_executor(catalog, tmp_path):
    controller, executor, _ = run(catalog, tmp_path, FakeLLM(plan="[]", chat="hi"))
    assert not executor.closed
    controller.close()
    assert executor.closed
