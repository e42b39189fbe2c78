"""Every LLM call streams, and its time limits measure silence, not total time (issue 12): the time
to the first token, the gap between chunks, a ceiling. Retries happen only before the first token.
The real `openai` SDK against the scripted server over HTTP; the whole request through the controller."""
from __future__ import annotations

import io
import json
import time

import pytest

from jarvis.config import load_config
from jarvis.errors import LLMError
from jarvis.events import Done, Failed, LLMProgress, PlanReady, TaskPlanned
from jarvis.frontends.cli import Progress
from jarvis.frontends.http.openai_routes import step_line
from jarvis.frontends.web.render import TurnRenderer
from jarvis.llm.client import LLM, Usage
from jarvis.llm.plan_schema import ChoiceSchema
from jarvis.pipeline.controller import Controller
from jarvis.session import Session
from tests.fakes.fake_executor import FakeExecutor
from tests.fakes.llm_server import Fault, ScriptedLLM
from tests.helpers import config_for

pytestmark = pytest.mark.timeout(60)
MSG = [{"role": "user", "content": "hi"}]
WORDS = [f"word{i} " for i in range(12)]
PLAN = [{"task": "summarization", "id": 0, "dep": [-1], "args": {"text": "a long text about cats"}},
        {"task": "translation", "id": 1, "dep": [0], "args": {"text": "<GENERATED>-0"}}]


def llm_for(url: str, **llm) -> LLM:
    cfg = load_config(env={"OPENAI_BASE_URL": url, "OPENAI_API_KEY": "sk-test"})
    return LLM(cfg.with_overrides(llm={"max_retries": 3, **llm}))


def in_pieces(text: str, n: int) -> list[str]:
    size = -(-len(text) // n)
    return [text[i:i + size] for i in range(0, len(text), size)]


def run(server: ScriptedLLM, tmp_path, **llm) -> list:
    cfg = config_for(server.url, llm=llm)
    controller = Controller(cfg, local=FakeExecutor())
    return list(controller.run(Session.create(cfg, root=tmp_path / "s"), "summarize, then translate"))


def kind_records(server: ScriptedLLM, kind: str) -> list[dict]:
    return [r for r, k in zip(server.requests, server.kinds()) if k == kind]


def test_a_slow_but_steady_answer_is_read_to_its_end():
    # 12 chunks 0.25 s apart: 2.75 s in all, far past the 1 s llm.timeout, but never silent for 1 s
    with ScriptedLLM(chat=WORDS, chunk_delay=0.25) as server:
        start = time.perf_counter()
        usage = Usage()
        assert llm_for(server.url, timeout=1.0).complete(MSG, usage) == "".join(WORDS)
        assert time.perf_counter() - start > 2.5
        assert len(server.requests) == 1 and usage.llm_calls == 1


def test_a_slow_server_answers_a_whole_request_with_progress(tmp_path):
    plan = in_pieces(json.dumps(PLAN), 12)
    with ScriptedLLM(plan=plan, answer=WORDS, chunk_delay=0.2) as server:
        events = run(server, tmp_path, timeout=1.0)
    done = events[-1]
    assert isinstance(done, Done), events[-1]
    assert [r.status for r in done.result.tasks] == ["done", "done"] and done.result.answer == "".join(WORDS)
    assert done.result.timings.plan > 2.0          # the plan alone took twice llm.timeout
    for stage in ("plan", "answer"):
        shown = [e for e in events if isinstance(e, LLMProgress) and e.stage == stage]
        assert len(shown) >= 2, stage              # at the first token, then about once a second
        assert shown[0].tokens >= 1 and shown[-1].tokens > shown[0].tokens and shown[-1].seconds >= 1.0


def test_every_front_end_shows_how_far_the_llm_has_written(tmp_path):
    plan = in_pieces(json.dumps(PLAN), 12)
    with ScriptedLLM(plan=plan, answer="Done.", chunk_delay=0.2) as server:
        events = run(server, tmp_path, timeout=1.0)
    writing = [e for e in events if isinstance(e, LLMProgress) and e.stage == "plan"]
    out = io.StringIO()                       # the CLI's stderr, not a terminal: a line every few seconds
    printer = Progress(out)
    for event in events:
        printer(event)
    assert f"llm: writing the plan: {writing[0].tokens} tokens" in out.getvalue()
    turn = TurnRenderer()                     # the web app: the plan's step line, the tasks as they come
    last = events.index(writing[-1])
    for event in events[:last + 1]:
        turn.update(event)
    plan_step = turn.messages[0]
    assert plan_step["metadata"]["log"] == f"writing: {writing[-1].tokens} tokens, {writing[-1].seconds:.0f} s"
    if any(isinstance(e, TaskPlanned) for e in events[:last]):
        assert "summarization" in plan_step["content"]
    line = step_line(writing[-1], None)       # the OpenAI-compatible stream's step lines
    assert line == f"LLM writing the plan: {writing[-1].tokens} tokens, {writing[-1].seconds:.0f} s\n"


def test_silence_mid_answer_is_a_clear_error_within_the_idle_timeout_and_never_asked_again():
    with ScriptedLLM(chat=WORDS) as server:
        server.faults = [Fault(200, stall_after=3, stall=8.0)]
        llm = llm_for(server.url, timeout=5.0, idle_timeout=0.5)
        got: list[str] = []
        start = time.perf_counter()
        with pytest.raises(LLMError, match=r"stopped sending in the middle.*llm\.idle_timeout"):
            for delta in llm.stream(MSG, Usage()):
                got.append(delta)
        assert got == WORDS[:3]
        assert time.perf_counter() - start < 0.5 + 1.0      # the gap's limit, not the 5 s first-token one
        assert len(server.requests) == 1                      # an answer that has started is not asked again


def test_silence_mid_plan_ends_the_request_with_one_clear_line(tmp_path):
    with ScriptedLLM(plan=in_pieces(json.dumps(PLAN), 12), answer="ok") as server:
        server.faults = [Fault(200, stall_after=4, stall=8.0)]       # no task object is complete by then
        start = time.perf_counter()
        events = run(server, tmp_path, timeout=5.0, idle_timeout=0.5, max_retries=3)
        assert time.perf_counter() - start < 3.0
        assert server.kinds() == ["plan"]
    failed = events[-1]
    assert isinstance(failed, Failed) and "stopped sending" in failed.message
    assert not any(isinstance(e, PlanReady) for e in events)


def test_silence_before_the_first_token_is_not_asked_again():
    with ScriptedLLM(chat="hello") as server:
        server.faults = [Fault(200, delay=4.0)]
        start = time.perf_counter()
        with pytest.raises(LLMError, match=r"did not answer in time.*llm\.timeout"):
            llm_for(server.url, timeout=0.5).complete(MSG, Usage())
        assert time.perf_counter() - start < 2.0
        assert len(server.requests) == 1      # the SDK would have sent it 3 more times, each waiting anew


def test_a_stream_dropped_before_its_first_token_is_retried():
    with ScriptedLLM(chat="hello there") as server:
        server.faults = [Fault(200, cut_after=0)]
        usage = Usage()
        assert llm_for(server.url).complete(MSG, usage) == "hello there"
        assert len(server.requests) == 2 and usage.llm_calls == 1


def test_the_ceiling_stops_an_answer_that_never_ends():
    with ScriptedLLM(chat=WORDS * 10, chunk_delay=0.05) as server:
        start = time.perf_counter()
        with pytest.raises(LLMError, match=r"still answering after 1 s \(llm\.total_timeout\)"):
            llm_for(server.url, total_timeout=1.0).complete(MSG, Usage())
        assert time.perf_counter() - start < 2.0 and len(server.requests) == 1


def test_the_plan_stream_stops_at_the_end_of_its_list(tmp_path):
    ramble = ["\n\nLet me explain ", "each step of ", "this plan in ", "great detail. "] * 10
    plan = in_pieces(json.dumps(PLAN), 4) + ramble
    with ScriptedLLM(plan=plan, answer="Done.", chunk_delay=0.05) as server:
        events = run(server, tmp_path)
        record = kind_records(server, "plan")[0]
        deadline = time.perf_counter() + 3
        while not record["hung_up"] and time.perf_counter() < deadline:   # its next write finds the connection gone
            time.sleep(0.05)
    done = events[-1]
    assert isinstance(done, Done) and done.result.plan_repairs == []
    assert [r.task for r in done.result.tasks] == ["summarization", "translation"]
    assert record["hung_up"] and len(record["sent"]) < 4 + 5      # stopped within the ramble's first chunks
    assert done.result.timings.plan < len(plan) * 0.05 / 2
    assert done.result.usage.llm_calls == len(server.requests)


def test_a_server_refusing_response_format_is_asked_once_without_it():
    schema = ChoiceSchema.for_tasks([(0, ["org/a", "org/b"])])
    with ScriptedLLM(chat='{"0": {"id": "org/a", "reason": "fits"}}', refuse_response_format=True) as server:
        llm = llm_for(server.url, max_retries=0)
        assert llm.complete(MSG, Usage(), schema=schema) == '{"0": {"id": "org/a", "reason": "fits"}}'
        assert llm.complete(MSG, Usage(), schema=schema)              # and not offered a schema again
        assert len(server.refused) == 1 and "response_format" in server.refused[0]["json"]
        assert [("response_format" in r["json"]) for r in server.requests] == [False, False]


def test_a_server_ignoring_max_tokens_is_read_no_further():
    with ScriptedLLM(chat="x" * 50_000, honour_max_tokens=False) as server:     # 12 characters a chunk
        text = llm_for(server.url).complete(MSG, Usage(), max_tokens=10)
    assert 10 * 12 <= len(text) <= 11 * 12


def test_a_choice_cut_off_at_the_length_limit_still_counts(tmp_path):
    from jarvis.catalog.entries import Catalog
    second = Catalog.load().candidates("summarization", k=5, mode="local")[1].id
    choice = json.dumps({"0": {"id": second, "reason": "it reads long texts well " * 60}})
    plan = json.dumps(PLAN[:1])
    with ScriptedLLM(plan=plan, select=choice, answer="Done.") as server:   # it honours max_tokens: cut midway
        events = run(server, tmp_path)
    done = events[-1]
    assert isinstance(done, Done) and done.result.tasks[0].model == second
    assert done.result.tasks[0].reason.startswith("it reads long texts well")
