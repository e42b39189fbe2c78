"""The controller: runs HuggingGPT's four stages for one request and emits a stream of events.
The web UI, the CLI and the HTTP API only consume this stream.

It owns the executors: the local one (with the process's model cache) lives as long as the
controller, a remote one is created for each run that needs it (it carries the session's token)
and closed when the run ends; `close()` releases the shared ones when the app stops.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from pathlib import Path

from jarvis.catalog.entries import Catalog, ModelInfo, describe
from jarvis.config import Config
from jarvis.errors import LLMError, PlanError, ResourceError
from jarvis.events import AnswerDelta, Done, Event, Failed, ModelChosen, PlanReady
from jarvis.execution.availability import Availability
from jarvis.execution.dispatch import Dispatcher
from jarvis.execution.executor import Executor
from jarvis.execution.local import LocalExecutor
from jarvis.execution.remote import RemoteExecutor
from jarvis.files.content_checks import check_media
from jarvis.llm import prompts
from jarvis.llm.client import LLM, Usage
from jarvis.pipeline.inputs import MediaCheck
from jarvis.pipeline.plan import Plan, parse_plan
from jarvis.pipeline.records import LLMUsage, RunResult, StageTimings, TaskRecord
from jarvis.pipeline.respond import Message, answer_messages, chat_messages, fallback_answer, without_reasoning
from jarvis.pipeline.scheduler import Scheduler
from jarvis.pipeline.selection import Choice, select_models
from jarvis.runners.registry import TASK_TYPES
from jarvis.session import Session

log = logging.getLogger(__name__)


def task_list_for_prompt(mode: str) -> str:
    """The task types the planner may use in this mode, one line each: name: inputs -> outputs."""
    lines = []
    for t in TASK_TYPES.values():
        if (mode == "local" and not t.local) or (mode == "remote" and not t.remote):
            continue
        ins = ",".join(t.inputs)
        lines.append(f"{t.name}: {ins} -> {','.join(t.outputs)}")
    return "\n".join(lines)


def _elapsed(since: float) -> float:
    return round(time.perf_counter() - since, 3)


class Controller:
    """Shared by every session: the catalog, the local executor and the provider-availability
    caches; nothing per user. `llm` builds a run's LLM client from the session's config."""

    def __init__(self, config: Config, catalog: Catalog | None = None, local: Executor | None = None,
                 llm: Callable[[Config], LLM] = LLM):
        self.config = config
        self.catalog = catalog or Catalog.load(config.catalog.path or None)
        self.local: Executor = local or LocalExecutor.from_config(config.local)
        self._llm = llm
        self._availability: dict[str, Availability] = {}
        self._availability_lock = threading.Lock()

    def close(self) -> None:
        """Release the shared executor and look-up pools (the app is stopping)."""
        self.local.close()
        with self._availability_lock:
            pools, self._availability = list(self._availability.values()), {}
        for availability in pools:
            availability.close()

    # -- pieces -----------------------------------------------------------
    def _shared_availability(self, cfg: Config) -> Availability:
        """One provider-availability cache per remote setup, shared by all sessions. Look-ups read
        public model metadata, so they carry no user's token."""
        key = repr((cfg.remote.base_url, cfg.remote.provider, sorted(cfg.remote.endpoints.items())))
        with self._availability_lock:
            if key not in self._availability:
                self._availability[key] = Availability(cfg.remote)
            return self._availability[key]

    def _candidates(self, plan: Plan, cfg: Config) -> dict[int, list[ModelInfo]]:
        return {task.id: self.catalog.candidates(task.task, k=cfg.inference.top_k, mode=cfg.inference.mode)
                for task in plan.tasks if not task.error}

    def _plan(self, llm: LLM, session: Session, request: str, usage: Usage) -> Plan:
        cfg = session.config
        files = [f"{r.name} ({r.type})" for r in session.store.list()]
        system = prompts.render("plan", task_list=task_list_for_prompt(cfg.inference.mode),
                                files=", ".join(files) or "none")
        messages = [{"role": "system", "content": system}, *session.recent_history(),
                    {"role": "user", "content": request}]
        text = llm.complete(messages, usage, max_tokens=1500)
        return parse_plan(text, max_tasks=cfg.inference.max_tasks, files=[r.name for r in session.store.list()])

    def _execute(self, session: Session, plan: Plan, choices: dict[int, Choice], t0: float,
                 records: list[TaskRecord]) -> Iterator[Event]:
        """Stage 3 with this run's executors: a remote one when the mode needs it, closed at the end.
        Fills `records` in plan order."""
        cfg = session.config
        mode = cfg.inference.mode
        remote: RemoteExecutor | None = None
        availability: Availability | None = None
        try:
            if mode in ("remote", "hybrid"):
                availability = self._shared_availability(cfg)
                remote = RemoteExecutor(cfg.remote, token=cfg.credentials.hf_token, availability=availability)
            dispatcher = Dispatcher(mode, self.local, remote, availability)
        except Exception as exc:
            log.exception("could not set up %s execution", mode)
            yield Failed(f"could not set up {mode} execution: {exc}")
            return
        try:
            scheduler = Scheduler(dispatcher, session.store, max_parallel=cfg.inference.max_parallel,
                                  task_timeout=cfg.inference.task_timeout, cancel=session.cancel,
                                  check=_media_check(cfg))
            yield from scheduler.run(plan, choices, t0)
            records.extend(scheduler.records[t.id] for t in plan.tasks)
        finally:
            if remote is not None:
                remote.close()

    def _respond(self, llm: LLM, session: Session, messages: list[Message], records: list[TaskRecord],
                 usage: Usage, answer: list[str]) -> Iterator[Event]:
        """Stage 4: the answer streamed into `answer`; without the LLM, the results themselves."""
        cfg = session.config
        if session.cancel.is_set():
            text = fallback_answer(records, "stopped by the user") if records else "Stopped."
            answer.append(text)
            yield AnswerDelta(text)
            return
        try:
            for delta in without_reasoning(llm.stream(messages, usage, max_tokens=cfg.llm.max_answer_tokens)):
                answer.append(delta)
                yield AnswerDelta(delta)
                if session.cancel.is_set():
                    break
        except LLMError as exc:
            if not records:
                yield Failed(str(exc))
                return
            extra = fallback_answer(records, str(exc))
            answer.append(("\n\n" if answer else "") + extra)
            yield AnswerDelta(extra)

    # -- the four stages ----------------------------------------------------
    def run(self, session: Session, request: str, files: Iterable[str | Path] = ()) -> Generator[Event, None, None]:
        """Answer one request; yields events and ends with Done (or Failed when no answer is possible).
        An unexpected error ends the run with Failed, never an exception into the UI, CLI or API."""
        try:
            yield from self._run(session, request, files)
        except Exception as exc:
            log.exception("request failed unexpectedly")
            yield Failed(f"Jarvis hit an internal error ({type(exc).__name__}); the request was not completed. "
                         "Please try again; if it keeps happening, report it with the steps to reproduce.")

    def _run(self, session: Session, request: str, files: Iterable[str | Path]) -> Iterator[Event]:
        cfg = session.config
        t0 = time.perf_counter()
        timings = StageTimings()
        usage = Usage()
        session.cancel.clear()
        session.touch()
        request = (request or "").strip()
        attached = []
        try:
            for f in files:
                attached.append(session.store.add_upload(f).name)
        except ResourceError as exc:
            yield Failed(str(exc))
            return
        if not request and not attached:
            yield Failed("the request is empty: type what you want done")
            return
        if not request:
            request = "Describe the attached file(s)."
        request_for_llm = f"{request}\n(attached: {', '.join(attached)})" if attached else request
        try:
            llm = self._llm(cfg)
        except Exception as exc:
            log.exception("could not set up the LLM client")
            yield Failed(f"could not set up the LLM client: {exc}")
            return
        # 1. plan
        try:
            plan = self._plan(llm, session, request_for_llm, usage)
        except LLMError as exc:
            yield Failed(str(exc))
            return
        except PlanError as exc:
            plan = Plan(repairs=[f"the plan could not be read ({exc}); answered directly"])
        timings.plan = _elapsed(t0)
        yield PlanReady(list(plan.tasks), plan.repairs, timings.plan)
        records: list[TaskRecord] = []
        if plan.tasks:
            # 2. select
            t1 = time.perf_counter()
            choices = select_models(plan, request_for_llm, self._candidates(plan, cfg), llm, usage, describe=describe)
            task_type = {t.id: t.task for t in plan.tasks}
            for tid, choice in sorted(choices.items()):
                yield ModelChosen(tid, task_type[tid], choice.model, choice.reason, choice.candidates)
            timings.select = _elapsed(t1)
            # 3. execute
            t2 = time.perf_counter()
            for event in self._execute(session, plan, choices, t0, records):
                yield event
                if isinstance(event, Failed):
                    return
            timings.execute = _elapsed(t2)
            messages = answer_messages(request_for_llm, records, session.recent_history())
        else:
            messages = chat_messages(request_for_llm, session.recent_history())
        # 4. respond
        t3 = time.perf_counter()
        answer: list[str] = []
        for event in self._respond(llm, session, messages, records, usage, answer):
            yield event
            if isinstance(event, Failed):
                return
        timings.respond = _elapsed(t3)
        timings.total = _elapsed(t0)
        text = "".join(answer)
        session.remember(request, attached, text, [path.name for r in records for _, path in r.files()])
        session.touch()
        yield Done(RunResult(request=request, files=attached, tasks=records, plan_repairs=plan.repairs, answer=text,
                             usage=LLMUsage(usage.llm_calls, usage.prompt_tokens, usage.completion_tokens),
                             timings=timings))


def _media_check(cfg: Config) -> MediaCheck:
    limits = cfg.files  # the image size and the audio and video budgets, checked before any decoding
    return lambda path, rtype: check_media(path, rtype, limits)
