"""Specification of model selection (stage 2) with FakeLLM: no HTTP, no models, a few milliseconds.

One LLM call chooses for every task that has a real choice; a task with a single candidate needs no
call; an answer naming a model that is not a candidate, a malformed answer or a failed call falls
back to the top-ranked candidate, and the reason says so.
"""
from __future__ import annotations

import json

from jarvis.catalog.entries import ModelInfo
from jarvis.errors import LLMError
from jarvis.llm.client import Usage
from jarvis.pipeline.plan_reading import parse_plan
from jarvis.pipeline.selection import select_models
from tests.fakes.fake_llm import FakeLLM
from tests.helpers import plan_json

PLAN = parse_plan(plan_json(("text-classification", {"text": "I love it"}),
                            ("summarization", {"text": "A long story about a cat."}),
                            ("translation", {"text": "<GENERATED>-1"}, [1])))


def models(task: str, *names: str) -> list[ModelInfo]:
    return [ModelInfo(id=f"org/{name}", task=task, downloads=1000 - i) for i, name in enumerate(names)]


CANDIDATES = {0: models("text-classification", "sst2", "roberta"),
              1: models("summarization", "bart", "pegasus", "t5"),
              2: models("translation", "opus-en-fr", "m2m")}


def select(llm: FakeLLM, candidates=CANDIDATES, plan=PLAN):
    usage = Usage()
    return select_models(plan, "do these things", candidates, llm, usage), usage


def test_one_call_chooses_for_every_task_with_a_choice():
    answer = json.dumps({"0": {"id": "org/roberta", "reason": "tweets"}, "1": {"id": "org/t5", "reason": "short"},
                         "2": {"id": "org/m2m", "reason": "many languages"}})
    llm = FakeLLM(select=answer)
    choices, usage = select(llm)
    assert llm.stages() == ["select"] and usage.llm_calls == 1
    assert {tid: (c.model, c.reason) for tid, c in choices.items()} == {
        0: ("org/roberta", "tweets"), 1: ("org/t5", "short"), 2: ("org/m2m", "many languages")}
    prompt = llm.calls[0][1][-1]["content"]
    assert all(f"Task {tid}:" in prompt for tid in (0, 1, 2))
    assert choices[1].candidates == ["org/bart", "org/pegasus", "org/t5"]


def test_single_candidates_need_no_call():
    llm = FakeLLM()   # any call would fail: nothing is queued
    single = {0: models("text-classification", "sst2"), 1: models("summarization", "bart"),
              2: models("translation", "opus-en-fr")}
    choices, usage = select(llm, single)
    assert llm.calls == [] and usage.llm_calls == 0
    assert all(c.reason == "the only candidate for this task" for c in choices.values())
    assert [choices[t].model for t in (0, 1, 2)] == ["org/sst2", "org/bart", "org/opus-en-fr"]


def test_only_tasks_with_a_choice_go_to_the_llm():
    mixed = {0: models("text-classification", "sst2"), 1: CANDIDATES[1], 2: models("translation", "opus-en-fr")}
    llm = FakeLLM(select=json.dumps({"1": {"id": "org/pegasus", "reason": "news"}}))
    choices, _ = select(llm, mixed)
    prompt = llm.calls[0][1][-1]["content"]
    assert "Task 1:" in prompt and "Task 0:" not in prompt and "Task 2:" not in prompt
    assert choices[1].model == "org/pegasus" and choices[0].model == "org/sst2"


def test_a_non_candidate_answer_falls_back_to_the_top_ranked_and_says_so():
    llm = FakeLLM(select=json.dumps({"0": {"id": "someone/invented", "reason": "?"},
                                     "1": {"id": "org/t5", "reason": "short"}}))
    choices, _ = select(llm)
    assert choices[0].model == "org/sst2"
    assert "'someone/invented'" in choices[0].reason and "not a candidate" in choices[0].reason
    assert "top-ranked org/sst2" in choices[0].reason
    assert choices[1].model == "org/t5"
    assert choices[2].model == "org/opus-en-fr" and "gave no choice for this task" in choices[2].reason


def test_a_malformed_answer_falls_back_to_the_top_ranked_for_every_task():
    llm = FakeLLM(select="I would pick the best ones, of course.")
    choices, usage = select(llm)
    assert usage.llm_calls == 1
    for tid, ranked in CANDIDATES.items():
        assert choices[tid].model == ranked[0].id
        assert "not readable" in choices[tid].reason and f"top-ranked {ranked[0].id}" in choices[tid].reason


def test_a_failed_call_falls_back_with_the_error_in_the_reason():
    llm = FakeLLM(select=LLMError("the LLM endpoint example.org did not answer in time"))
    choices, _ = select(llm)
    assert all(c.model == CANDIDATES[tid][0].id for tid, c in choices.items())
    assert all("model selection failed" in c.reason and "did not answer in time" in c.reason
               for c in choices.values())


def test_tasks_with_a_plan_error_or_no_candidate_get_no_choice():
    plan = parse_plan(plan_json(("text-classification", {"text": "fine"}), ("no-such-task", {"text": "x"})))
    llm = FakeLLM()
    choices, _ = select(llm, {0: []}, plan)
    assert choices == {} and llm.calls == []
