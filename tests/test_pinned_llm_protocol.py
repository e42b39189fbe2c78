"""The LLM stages against an endpoint as strict and as quirky as real ones (the scripted LLM through
the real `openai` SDK): a wrong key or an unknown model, a stream that breaks midway, the length
limit, a reasoning model's <think> block, a server that refuses `response_format`."""
from __future__ import annotations

import json

import pytest

from jarvis.config import load_config
from jarvis.errors import LLMError
from jarvis.events import Done, PlanReady, TaskFinished
from jarvis.llm.client import LLM, Usage
from jarvis.pipeline.controller import Controller
from jarvis.session import Session
from tests.fakes.fake_executor import FakeExecutor
from tests.fakes.llm_server import Fault, ScriptedLLM
from tests.helpers import config_for, plan_json

pytestmark = pytest.mark.timeout(30)
MSG = [{"role": "user", "content": "hi"}]
ANSWER = "The first sentence of a long answer. The second sentence, which the broken stream never sends."


def llm_for(url: str, key: str = "sk-test", model: str = "") -> LLM:
    cfg = load_config(env={"OPENAI_BASE_URL": url, "OPENAI_API_KEY": key})
    return LLM(cfg.with_overrides(llm={"max_retries": 0, "timeout": 10, "model": model}))


def run(server: ScriptedLLM, tmp_path, request: str = "do it", executor: FakeExecutor | None = None):
    cfg = config_for(server.url)
    controller = Controller(cfg, local=executor or FakeExecutor())
    return list(controller.run(Session.create(cfg, root=tmp_path / "s"), request))


def test_a_wrong_key_and_an_unknown_model_get_the_real_refusals():
    with ScriptedLLM(chat="hello") as server:
        with pytest.raises(LLMError, match="rejected the API key \\(401\\)"):
            llm_for(server.url, key="sk-wrong").complete(MSG, Usage())
        with pytest.raises(LLMError, match="model 'gpt-5-imaginary' not found .*\\(404\\)"):
            llm_for(server.url, model="gpt-5-imaginary").complete(MSG, Usage())
        assert server.requests == [] and len(server.refused) == 2
        assert llm_for(server.url).complete(MSG, Usage()) == "hello"


def test_a_stream_broken_midway_is_an_error_not_a_shorter_answer():
    with ScriptedLLM(chat=ANSWER) as server:
        server.faults = [Fault(cut_after=2)]
        received: list[str] = []
        with pytest.raises(LLMError, match="broke off"):
            for delta in llm_for(server.url).stream(MSG, Usage()):
                received.append(delta)
        assert "".join(received) == ANSWER[:24]
        server.faults = [Fault(cut_after=2)]
        with pytest.raises(LLMError):
            llm_for(server.url).complete(MSG, Usage())


def test_a_broken_answer_stream_still_shows_the_results(tmp_path):
    plan = plan_json(("summarization", {"text": "a long text"}))
    with ScriptedLLM(plan=plan, answer=ANSWER) as server:
        cfg = config_for(server.url)
        controller = Controller(cfg, local=FakeExecutor())
        events = []
        for event in controller.run(Session.create(cfg, root=tmp_path / "s"), "summarize it"):
            events.append(event)
            if isinstance(event, TaskFinished):      # plan and selection are done: the answer stream breaks
                server.faults = [Fault(cut_after=2)]
    done = events[-1]
    assert isinstance(done, Done) and done.result.tasks[0].status == "done"
    assert done.result.answer.startswith(ANSWER[:24]) and ANSWER not in done.result.answer
    assert "broke off" in done.result.answer and "summarization by" in done.result.answer   # results kept


def test_a_plan_cut_at_the_length_limit_runs_its_complete_tasks(tmp_path):
    long_text = "word " * 700       # each task about 900 tokens: the second one crosses max_tokens (1500)
    plan = plan_json(("summarization", {"text": long_text}), ("translation", {"text": long_text}))
    with ScriptedLLM(plan=plan, answer="ok") as server:
        events = run(server, tmp_path)
        assert server.requests[0]["json"]["max_tokens"] == 1500
    ready = next(e for e in events if isinstance(e, PlanReady))
    assert [t.task for t in ready.tasks] == ["summarization"]
    assert any("cut off" in r for r in ready.repairs)
    assert events[-1].result.tasks[0].status == "done"


THINKING = ('The user wants a summary. I considered [{"task": "translation", "id": 0, "dep": [-1], '
            '"args": {"text": "x"}}] and {"0": {"id": "org/other"}} but no.')


def test_a_reasoning_block_is_neither_planned_nor_shown(tmp_path):
    plan = plan_json(("summarization", {"text": "a long text"}))
    with ScriptedLLM(plan=plan, answer="Here is the summary.", think=THINKING) as server:
        executor = FakeExecutor()
        events = run(server, tmp_path, executor=executor)
    ready = next(e for e in events if isinstance(e, PlanReady))
    assert [t.task for t in ready.tasks] == ["summarization"] and not ready.repairs
    assert [c[0] for c in executor.calls] == ["summarization"]
    done = events[-1]
    assert done.result.answer == "Here is the summary."
    assert "think" not in json.dumps([e.to_dict() for e in events if not isinstance(e, PlanReady)], default=str)


def test_a_reasoning_block_before_a_conversation_answer(tmp_path):
    with ScriptedLLM(plan="[]", chat="Hello! How can I help?", think="The user greets me.") as server:
        events = run(server, tmp_path, request="hi")
    assert events[-1].result.answer == "Hello! How can I help?"


def test_a_server_refusing_response_format_still_serves_every_stage(tmp_path):
    plan = plan_json(("summarization", {"text": "a long text"}))
    with ScriptedLLM(plan=plan, answer="Done.", refuse_response_format=True) as server:
        executor = FakeExecutor()
        events = run(server, tmp_path, executor=executor)
        assert not any("response_format" in r["json"] for r in server.requests)   # what was served had none
        assert all("response_format" in r["json"] for r in server.refused)
    assert isinstance(events[-1], Done) and events[-1].result.answer == "Done."
    assert [c[0] for c in executor.calls] == ["summarization"]


@pytest.mark.parametrize("deltas, shown", [
    (["<th", "ink>\nhmm</thi", "nk>\n\nHel", "lo"], "Hello"),
    (["<think>a</think>", "\n\n", "Hello", " you"], "Hello you"),
    (["<think>a</think>x", "y"], "xy"),
    (["  <think>never closed, cut at the length limit"], ""),
    (["<", "b>bold</b> text"], "<b>bold</b> text"),
    (["An answer that mentions <think> later"], "An answer that mentions <think> later"),
    (["<t"], "<t"),
])
def test_the_answer_stream_drops_only_a_leading_reasoning_block(deltas, shown):
    from jarvis.pipeline.respond import without_reasoning
    assert "".join(without_reasoning(deltas)) == shown
