"""Faults (issue 6, part 4): the LLM failing at each stage (401, 429, 5xx, timeout, refused
connection, malformed body), a model that cannot load, out-of-memory on load, remote 503 and
timeouts. Each ends in a retry, a fallback or one clear message, within its configured time."""
from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from jarvis.events import ModelChosen, PlanReady, TaskFailed, TaskSkipped
from jarvis.execution.dispatch import Dispatcher
from jarvis.files.store import ResourceStore
from jarvis.pipeline.controller import Controller
from jarvis.pipeline.plan_reading import parse_plan
from jarvis.pipeline.scheduler import Scheduler
from jarvis.pipeline.selection import Choice
from jarvis.session import Session
from tests.corpus.leakscan import free_port
from tests.fakes.fake_executor import FakeExecutor
from tests.fakes.inference_server import InferenceServer
from tests.fakes.llm_server import Fault, ScriptedLLM
from tests.helpers import config_for, plan_json

pytestmark = pytest.mark.timeout(120)

LLM_TIMEOUT = 0.6
# two image tasks that fail fast (no such file) and need a model choice: every stage calls the LLM
PLAN = plan_json(("image-classification", {"image": "missing.png"}), ("object-detection", {"image": "gone.jpg"}))
FAULTS = {
    "401": lambda: Fault(401, body='{"error": {"message": "Incorrect API key"}}'),
    "429": lambda: Fault(429, headers={"retry-after-ms": "10"}),
    "500": lambda: Fault(500, headers={"retry-after-ms": "10"}),
    "503": lambda: Fault(503, headers={"retry-after-ms": "10"}),
    "timeout": lambda: Fault(200, delay=LLM_TIMEOUT * 4),
    "malformed": lambda: Fault(200, body='{"choices": [{"message": "not an object"}]}'),
}
MESSAGES = {"401": "rejected the API key", "429": "rate-limiting", "500": "failed (500)", "503": "failed (503)",
            "timeout": "did not answer in time", "malformed": "without choices|no readable answer stream",
            "refused": "cannot reach"}


def says(text: str, fault: str) -> bool:
    return any(words in text for words in MESSAGES[fault].split("|"))


class Cutoff:
    """A TCP relay in front of the scripted LLM; cut() drops every connection and refuses new ones,
    so a stage after the cut meets a refused connection (keep-alive sockets included)."""

    def __init__(self, port: int):
        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}/v1"

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            with self.lock:
                self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self):
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(); close alone does not
        except OSError:
            pass
        self.listener.close()
        with self.lock:
            for s in self.sockets:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                    s.close()
                except OSError:
                    pass
RETRIES = 1
# worst case: every attempt waits out the timeout, plus backoff and slack
BOUND = (RETRIES + 1) * LLM_TIMEOUT + 4.0


@pytest.fixture(scope="module")
def controller():
    return Controller(config_for("http://127.0.0.1:9/v1"))


def run(controller, server, tmp_path, stage: str, fault: str, **sections):
    """Run PLAN with `fault` injected at `stage` (plan, select, answer); (events, seconds)."""
    sections.setdefault("llm", {}).update(max_retries=RETRIES, timeout=LLM_TIMEOUT)
    relay = Cutoff(int(server.url.rsplit(":", 1)[1].split("/")[0]))
    session = Session.create(config_for(relay.url, **sections), root=tmp_path / "s")

    def arm():
        if fault == "refused":
            relay.cut()
        else:
            server.faults = [FAULTS[fault]() for _ in range(RETRIES + 1)]
    if stage == "plan":
        arm()
    events, start = [], time.perf_counter()
    for event in controller.run(session, "look at these"):
        events.append(event)
        if (stage == "select" and isinstance(event, PlanReady)) or (
                stage == "answer" and isinstance(event, (TaskFailed, TaskSkipped)) and not any(
                    isinstance(e, (TaskFailed, TaskSkipped)) for e in events[:-1])):
            arm()
    return events, time.perf_counter() - start


@pytest.mark.parametrize("fault", list(FAULTS) + ["refused"])
def test_plan_stage_fault_is_one_clear_message(controller, tmp_path, fault):
    with ScriptedLLM(plan=PLAN, answer="ok") as server:
        events, seconds = run(controller, server, tmp_path, "plan", fault)
    assert seconds < BOUND
    assert [type(e).__name__ for e in events] == ["Failed"]
    assert says(events[0].message, fault)


@pytest.mark.parametrize("fault", ["429", "500", "503"])
def test_plan_stage_transient_fault_is_retried(controller, tmp_path, fault):
    with ScriptedLLM(plan=PLAN, answer="ok") as server:
        server.faults = [FAULTS[fault]()]        # once: the retry succeeds
        session = Session.create(config_for(server.url, llm={"max_retries": 2, "timeout": LLM_TIMEOUT}),
                                 root=tmp_path / "s")
        events = list(controller.run(session, "look"))
    assert type(events[-1]).__name__ == "Done" and len(events[-1].result.tasks) == 2
    assert server.kinds()[:2] == ["plan", "plan"]


@pytest.mark.parametrize("fault", list(FAULTS) + ["refused"])
def test_select_stage_fault_falls_back_to_top_ranked(controller, tmp_path, fault):
    with ScriptedLLM(plan=PLAN, answer="ok") as server:
        events, seconds = run(controller, server, tmp_path, "select", fault)
    assert seconds < BOUND * 2  # the answer call may fail the same way afterwards
    chosen = [e for e in events if isinstance(e, ModelChosen)]
    assert len(chosen) == 2
    for e in chosen:
        assert e.model == e.candidates[0] and "top-ranked" in e.reason and says(e.reason, fault)
    assert type(events[-1]).__name__ == "Done"          # results still answered (from the fallback if needed)
    assert events[-1].result.answer


@pytest.mark.parametrize("fault", list(FAULTS) + ["refused"])
def test_answer_stage_fault_gives_results_only_answer(controller, tmp_path, fault):
    with ScriptedLLM(plan=PLAN, answer="ok") as server:
        events, seconds = run(controller, server, tmp_path, "answer", fault)
    assert seconds < BOUND
    done = events[-1]
    assert type(done).__name__ == "Done"
    answer = done.result.answer
    assert "could not write the final answer" in answer and says(answer, fault)
    assert "task 0 image-classification" in answer and "not a file of this session" in answer


def test_conversation_answer_fault_is_one_message(controller, tmp_path):
    with ScriptedLLM(plan="[]", chat="hi") as server:
        session = Session.create(config_for(server.url, llm={"max_retries": 0}), root=tmp_path / "s")
        events = []
        for event in controller.run(session, "hello"):
            events.append(event)
            if isinstance(event, PlanReady):
                server.faults = [FAULTS["500"]()]
    assert type(events[-1]).__name__ == "Failed" and "failed (500)" in events[-1].message


def test_model_absent_from_the_offline_cache_is_a_clear_task_error(tmp_path):
    catalog = tmp_path / "catalog.jsonl"
    catalog.write_text(json.dumps({"id": "jarvis-test/absent-model", "task": "text-classification",
                                   "downloads": 1, "likes": 0, "local": True}) + "\n")
    plan = plan_json(("text-classification", {"text": "good"}), ("text-classification", {"text": "<GENERATED>-0"}, [0]))
    with ScriptedLLM(plan=plan, answer="sorry") as server:
        cfg = config_for(server.url, catalog={"path": str(catalog)})
        events = list(Controller(cfg).run(Session.create(cfg, root=tmp_path / "s"), "classify"))
    tasks = events[-1].result.tasks
    assert tasks[0].status == "failed" and "could not load jarvis-test/absent-model" in tasks[0].error
    assert tasks[1].status == "skipped" and "task 0" in tasks[1].error


def out_of_memory(task, model_id, inputs, ctx):
    """A model load that runs out of memory."""
    raise MemoryError()


def test_out_of_memory_on_load_fails_the_task_not_the_run(tmp_path):
    plan = parse_plan(plan_json(("text-classification", {"text": "a"}),
                                ("summarization", {"text": "<GENERATED>-0"}, [0]),
                                ("translation", {"text": "independent"})))
    executor = FakeExecutor(out_of_memory)
    store = ResourceStore(tmp_path / "s")
    choices = {t.id: Choice(t.id, "org/model", "test", ["org/model"]) for t in plan.tasks}
    scheduler = Scheduler(Dispatcher("local", executor), store, task_timeout=10)
    start = time.perf_counter()
    events = list(scheduler.run(plan, choices, start))
    assert time.perf_counter() - start < 5
    records = scheduler.records
    assert records[0].status == "failed" and "not enough memory" in records[0].error
    assert records[1].status == "skipped" and records[2].status == "failed"
    assert len(executor.calls) == 2 and sum(isinstance(e, TaskFailed) for e in events) == 2


def test_task_timeout_is_enforced(tmp_path):
    release = threading.Event()

    def hangs(task, model_id, inputs, ctx):
        release.wait(30)
        raise RuntimeError("released")

    plan = parse_plan(plan_json(("text-classification", {"text": "a"})))
    scheduler = Scheduler(Dispatcher("local", FakeExecutor(hangs)), ResourceStore(tmp_path / "s"), task_timeout=0.5)
    start = time.perf_counter()
    list(scheduler.run(plan, {0: Choice(0, "org/m", "t", ["org/m"])}, start))
    release.set()
    assert time.perf_counter() - start < 3
    assert "timed out after" in scheduler.records[0].error


@pytest.mark.parametrize("fault, words", [("503", "loading"), ("slow", "time"), ("500", "500"), ("401", "token")])
def test_remote_faults_end_within_the_remote_timeout(controller, tmp_path, fault, words):
    plan = plan_json(("text-classification", {"text": "I love it"}))
    with ScriptedLLM(plan=plan, answer="ok") as llm, InferenceServer(token="hf_faults") as hf:
        for model in ("distilbert/distilbert-base-uncased-finetuned-sst-2-english",
                      "cardiffnlp/twitter-roberta-base-sentiment-latest"):
            hf.fault(model, fault, delay=3.0, estimated_time=0.05)
        cfg = config_for(llm.url, inference={"mode": "remote", "top_k": 2},
                         remote={"base_url": hf.url, "timeout": 0.5, "max_retries": 1})
        cfg = cfg.with_overrides(credentials={"hf_token": "hf_faults"})
        start = time.perf_counter()
        events = list(controller.run(Session.create(cfg, root=tmp_path / "s"), "classify"))
        seconds = time.perf_counter() - start
    assert seconds < 10
    task = events[-1].result.tasks[0]
    assert task.status == "failed" and words in task.error.lower(), task.error
    assert task.attempts


def test_unreachable_remote_service_is_a_task_error(controller, tmp_path):
    plan = plan_json(("text-classification", {"text": "I love it"}))
    with ScriptedLLM(plan=plan, answer="ok") as llm:
        cfg = config_for(llm.url, inference={"mode": "remote"},
                         remote={"base_url": f"http://127.0.0.1:{free_port()}", "timeout": 1, "max_retries": 0})
        cfg = cfg.with_overrides(credentials={"hf_token": "hf_x"})
        start = time.perf_counter()
        events = list(controller.run(Session.create(cfg, root=tmp_path / "s"), "classify"))
    assert time.perf_counter() - start < 10
    task = events[-1].result.tasks[0]
    assert task.status == "failed" and task.error
