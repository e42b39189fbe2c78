"""How the model-selection answer is read (jarvis.pipeline.selection), one answer shape at a time:
a mapping of task ids, a list of per-task objects, HuggingGPT's single object with or without a
task id, the id under "id", "model" or "model_id", keys such as "Task 2", an answer cut off at the
length limit. What the selector is asked (one message: the request and every task with its
candidates, the choice schema, a token budget per task) is pinned through the real LLM client
against the scripted server."""
from __future__ import annotations

import json
import logging

import pytest

from jarvis.catalog.entries import ModelInfo
from jarvis.errors import LLMError
from jarvis.llm.client import LLM, Usage
from jarvis.llm.plan_schema import ChoiceSchema
from jarvis.pipeline.plan import Plan, Task
from jarvis.pipeline.plan_reading import parse_plan
from jarvis.pipeline.selection import Choice, only_choice, select_models
from tests.fakes.fake_llm import FakeLLM
from tests.fakes.llm_server import ScriptedLLM
from tests.helpers import config_for, plan_json


def models(task: str, *names: str) -> list[ModelInfo]:
    return [ModelInfo(id=f"org/{name}", task=task, downloads=1000 - i) for i, name in enumerate(names)]


TWO = parse_plan(plan_json(("text-classification", {"text": "I love it"}), ("summarization", {"text": "A story."})))
TWO_CANDIDATES = {0: models("text-classification", "sst2", "roberta"), 1: models("summarization", "bart", "t5")}
ONE = parse_plan(plan_json(("summarization", {"text": "A story."})))
ONE_CANDIDATES = {0: models("summarization", "bart", "t5")}


def picked(answer: str, plan: Plan = TWO, candidates=TWO_CANDIDATES) -> dict[int, tuple[str, str]]:
    choices = select_models(plan, "do it", candidates, FakeLLM(select=answer), Usage())
    assert all(tid == c.task_id for tid, c in choices.items())
    assert all(c.candidates == [m.id for m in candidates[tid]] for tid, c in choices.items())
    return {tid: (c.model, c.reason) for tid, c in choices.items()}


FALLBACK = "the selector gave no choice for this task; used the top-ranked "
BOTH = {0: ("org/roberta", "r0"), 1: ("org/t5", "r1")}


@pytest.mark.parametrize("answer", [
    {"0": {"id": "org/roberta", "reason": "r0"}, "1": {"id": "org/t5", "reason": "r1"}},
    {"0": {"model": "org/roberta", "reason": "r0"}, "1": {"model_id": "org/t5", "reason": "r1"}},
    {"Task 0": {"id": " org/roberta ", "reason": " r0 "}, "task #1": {"id": "org/t5", "reason": "r1"}},
    {"task-0": {"id": "org/roberta", "reason": "r0"}, "TASK1": {"id": "org/t5", "reason": "r1"}},
    [{"task_id": 0, "id": "org/roberta", "reason": "r0"}, {"task_id": "1", "model": "org/t5", "reason": "r1"}],
    [{"task": 0, "model_id": "org/roberta", "reason": "r0"}, {"task": 1.0, "id": "org/t5", "reason": "r1"}],
    [{"task_id": "zero", "id": "org/sst2"}, {"task_id": True, "id": "org/sst2"}, "noise",
     {"task_id": 0, "id": "org/roberta", "reason": "r0"}, {"task_id": 1, "id": "org/t5", "reason": "r1"}],
    {"0": {"id": "org/roberta", "model": "org/sst2", "reason": "r0"}, "1": {"id": "org/t5", "reason": "r1"}},
])
def test_the_usual_answer_shapes_all_choose_the_same(answer):
    assert picked(json.dumps(answer)) == BOTH


def test_a_bare_model_name_per_task_needs_no_reason():
    assert picked(json.dumps({"0": "org/roberta", "1": " org/t5 "})) == {
        0: ("org/roberta", "chosen by the selector"), 1: ("org/t5", "chosen by the selector")}


def test_a_reason_is_kept_to_500_characters_and_must_be_text():
    answer = {"0": {"id": "org/roberta", "reason": "x" * 600}, "1": {"id": "org/t5", "reason": 42}}
    assert picked(json.dumps(answer)) == {0: ("org/roberta", "x" * 500), 1: ("org/t5", "chosen by the selector")}


@pytest.mark.parametrize("single", [
    {"task_id": 1, "id": "org/t5", "reason": "r1"}, {"task": "1", "id": "org/t5", "reason": "r1"},
])
def test_one_object_with_a_task_id_chooses_for_that_task_only(single):
    assert picked(json.dumps(single)) == {0: ("org/sst2", FALLBACK + "org/sst2"), 1: ("org/t5", "r1")}


@pytest.mark.parametrize("bare", [{"id": "org/t5", "reason": "r"}, {"model": "org/t5", "reason": "r"},
                                  {"model_id": "org/t5", "reason": "r"}])
def test_hugginggpts_bare_object_chooses_for_the_only_task_that_asked(bare):
    assert picked(json.dumps(bare), ONE, ONE_CANDIDATES) == {0: ("org/t5", "r")}
    # with two tasks asking, it names none of them
    assert picked(json.dumps(bare)) == {0: ("org/sst2", FALLBACK + "org/sst2"), 1: ("org/bart", FALLBACK + "org/bart")}


def test_keys_that_name_no_task_are_skipped_not_the_rest():
    forty = "task" + " " * 35 + "0"          # 40 characters: too long to be a task key
    answer = {"model selection": {"id": "org/sst2"}, "0": {"id": "org/roberta", "reason": "r0"},
              "1": {"id": "org/t5", "reason": "r1"}, forty: {"id": "org/sst2"}, forty + " ": {"id": "org/sst2"}}
    assert len(forty) == 40 and picked(json.dumps(answer)) == BOTH
    listed = [{"task_id": 0, "id": "org/roberta", "reason": "r0"}, {"id": "org/sst2"}, {"task": None, "id": "org/sst2"},
              {"task_id": 1, "id": "org/t5", "reason": "r1"}]
    assert picked(json.dumps(listed)) == BOTH


def test_a_model_that_is_no_candidate_falls_back_to_the_top_ranked_and_says_which():
    long_name = "org/" + "n" * 100
    got = picked(json.dumps({"0": {"id": "org/elsewhere", "reason": "r0"}, "1": {"id": long_name}}))
    assert got == {
        0: ("org/sst2", "the selector named 'org/elsewhere', which is not a candidate; used the top-ranked org/sst2"),
        1: ("org/bart", f"the selector named {long_name[:80]!r}, which is not a candidate; used the top-ranked org/bart")}


def test_an_answer_cut_off_in_a_reason_keeps_the_choices_before_it():
    cut = '```json\n{"0": {"id": "org/roberta", "reason": "r0"}, "1": {"id": "org/t5", "reason": "because it is short'
    got = picked(cut)
    assert got[0] == ("org/roberta", "r0") and got[1][0] == "org/t5"


def test_a_task_without_candidates_first_does_not_stop_the_others():
    plan = parse_plan(plan_json(("translation", {"text": "hi"}), ("text-classification", {"text": "I love it"}),
                                ("summarization", {"text": "A story."})))
    candidates = {1: TWO_CANDIDATES[0], 2: TWO_CANDIDATES[1]}
    answer = json.dumps({"1": {"id": "org/roberta", "reason": "r0"}, "2": {"id": "org/t5", "reason": "r1"}})
    assert picked(answer, plan, candidates) == {1: ("org/roberta", "r0"), 2: ("org/t5", "r1")}


def test_the_only_candidate_is_the_choice():
    task = Task(3, "summarization", [], {"text": ["A story."]})
    assert only_choice(task, models("summarization", "bart")) == Choice(
        3, "org/bart", "the only candidate for this task", ["org/bart"])
    assert only_choice(task, []) is None and only_choice(task, models("summarization", "a", "b")) is None


def test_a_failed_call_is_logged_and_named_in_every_reason(caplog):
    with caplog.at_level(logging.WARNING, logger="jarvis.pipeline.selection"):
        got = select_models(TWO, "do it", TWO_CANDIDATES, FakeLLM(select=LLMError("the server hung up")), Usage())
    assert [r.getMessage() for r in caplog.records] == ["model selection failed: the server hung up"]
    assert got[1].reason == "model selection failed (the server hung up); used the top-ranked org/bart"
    assert got[0].task_id == 0 and got[0].candidates == ["org/sst2", "org/roberta"]


def test_the_selector_is_asked_once_with_every_task_its_candidates_the_schema_and_a_budget():
    plan = Plan(tasks=[
        Task(0, "visual-question-answering", [], {"image": ["cat.png"], "text": ["What is it?", "y" * 100]}),
        Task(1, "summarization", [], {"text": ["A story."]}),
    ])
    candidates = {0: models("visual-question-answering", "vilt", "blip"), 1: models("summarization", "bart", "t5")}
    request = "r" * 1499 + "STOP" + "s" * 600
    answer = json.dumps({"0": {"id": "org/blip", "reason": "r0"}, "1": {"id": "org/t5", "reason": "r1"}})
    with ScriptedLLM(select=answer) as server:
        choices = select_models(plan, request, candidates, LLM(config_for(server.url)), Usage())
        body = server.requests[-1]["json"]
    assert {tid: c.model for tid, c in choices.items()} == {0: "org/blip", 1: "org/t5"}
    assert len(server.requests) == 1 and body["max_tokens"] == 120 * 2 + 60
    assert [m["role"] for m in body["messages"]] == ["user"]
    prompt = body["messages"][0]["content"]
    assert "r" * 1499 + "S" in prompt and "ST" not in prompt
    assert ("Task 0: visual-question-answering (image: cat.png; text: What is it?, " + "y" * 80 + ")\n"
            "- org/vilt\n- org/blip\nTask 1: summarization (text: A story.)\n- org/bart\n- org/t5") in prompt
    schema = ChoiceSchema.for_tasks([(0, ["org/vilt", "org/blip"]), (1, ["org/bart", "org/t5"])])
    assert json.dumps(schema.json_schema()) in json.dumps(body.get("response_format"))
