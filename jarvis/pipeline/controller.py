"""The controller: runs HuggingGPT's four stages for one request and emits a stream of events.
The web UI, the CLI and the HTTP API only consume this stream."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from jarvis.catalog.entries import Catalog, describe
from jarvis.config import Config
from jarvis.events import AnswerDelta, Done, Event, Failed, ModelChosen, PlanReady
from jarvis.execution.dispatch import Dispatcher
from jarvis.execution.local import LocalExecutor
from jarvis.files.store import ResourceError
from jarvis.llm import prompts
from jarvis.llm.client import LLM, LLMError, Usage
from jarvis.pipeline.plan import Plan, PlanError, parse_plan
from jarvis.pipeline.respond import answer_messages, chat_messages, fallback_answer
from jarvis.pipeline.scheduler import Scheduler
from jarvis.pipeline.selection import select_models
from jarvis.runners.registry import TASK_TYPES
from jarvis.session import Session

log = logging.getLogger(__name__)


def task_list_for_prompt(mode: str) -> str:
    lines = []
    for t in TASK_TYPES.values():
        if (mode == "local" and not t.local) or (mode == "remote" and not t.remote):
            continue
        ins = ",".join(t.inputs)
        lines.append(f"{t.name}: {ins} -> {','.join(t.outputs)}")
    return "\n".join(lines)


class Controller:
    """Shared by every session: holds the catalog and the local model cache, nothing per user."""

    def __init__(self, config: Config, catalog: Catalog | None = None, local: LocalExecutor | None = None):
        self.config = config
        self.catalog = catalog or Catalog.load(config.catalog.path or None)
        self.local = local or LocalExecutor(config.local.device, config.local.memory_budget_gb,
                                            options={"max_new_tokens": config.local.max_new_tokens,
                                                     "diffusion_steps": config.local.diffusion_steps})
        self._availability: dict[str, object] = {}
        self._availability_lock = threading.Lock()

    # -- pieces -----------------------------------------------------------
    def _dispatcher(self, cfg: Config) -> Dispatcher:
        mode = cfg.inference.mode
        remote = None
        if mode in ("remote", "hybrid"):
            from jarvis.execution.remote import RemoteExecutor
            remote = RemoteExecutor(cfg.remote, token=cfg.credentials.hf_token, availability=self._shared_availability(cfg))
        return Dispatcher(mode, self.local, remote)

    def _shared_availability(self, cfg: Config):
        """One provider-availability cache per remote setup, shared by all sessions. Look-ups read
        public model metadata, so they carry no user's token."""
        from jarvis.execution.availability import Availability
        key = repr((cfg.remote.base_url, cfg.remote.provider, sorted(cfg.remote.endpoints.items())))
        with self._availability_lock:
            if key not in self._availability:
                self._availability[key] = Availability(cfg.remote)
            return self._availability[key]

    def _candidates(self, plan: Plan, cfg: Config) -> dict[int, list]:
        out = {}
        for task in plan.tasks:
            if task.error:
                continue
            out[task.id] = self.catalog.candidates(task.task, k=cfg.inference.top_k, mode=cfg.inference.mode)
        return out

    def _plan(self, llm: LLM, session: Session, request: str, usage: Usage) -> Plan:
        cfg = session.config
        files = [f"{r.name} ({r.type})" for r in session.store.list()]
        system = prompts.render("plan", task_list=task_list_for_prompt(cfg.inference.mode),
                                files=", ".join(files) or "none")
        messages = [{"role": "system", "content": system}, *session.recent_history(),
                    {"role": "user", "content": request}]
        text = llm.complete(messages, usage, max_tokens=1500)
        return parse_plan(text, max_tasks=cfg.inference.max_tasks, files=[r.name for r in session.store.list()])

    # -- the four stages ----------------------------------------------------
    def run(self, session: Session, request: str, files: Iterable[str | Path] = ()) -> Iterator[Event]:
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
        timings = {"plan": 0.0, "select": 0.0, "execute": 0.0, "respond": 0.0, "total": 0.0}
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
        if attached:
            request_for_llm = f"{request}\n(attached: {', '.join(attached)})"
        else:
            request_for_llm = request
        try:
            llm = LLM(cfg)
        except Exception as exc:
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
        timings["plan"] = round(time.perf_counter() - t0, 3)
        yield PlanReady(plan.to_list(), plan.repairs, timings["plan"])
        records: list[dict] = []
        answer = ""
        if plan.tasks:
            # 2. select
            t1 = time.perf_counter()
            candidates = self._candidates(plan, cfg)
            choices = select_models(plan, request_for_llm, candidates, llm, usage, describe=describe)
            for tid, choice in sorted(choices.items()):
                task = plan.get(tid)
                yield ModelChosen(tid, task.task, choice.model, choice.reason, choice.candidates)
            timings["select"] = round(time.perf_counter() - t1, 3)
            # 3. execute
            t2 = time.perf_counter()
            try:
                dispatcher = self._dispatcher(cfg)
            except Exception as exc:
                yield Failed(f"could not set up {cfg.inference.mode} execution: {exc}")
                return
            scheduler = Scheduler(dispatcher, session.store, max_parallel=cfg.inference.max_parallel,
                                  task_timeout=cfg.inference.task_timeout, cancel=session.cancel,
                                  check=_media_check(cfg))
            yield from scheduler.run(plan, choices, t0)
            records = [scheduler.records[t.id] for t in plan.tasks]
            timings["execute"] = round(time.perf_counter() - t2, 3)
            messages = answer_messages(request_for_llm, records, session.recent_history())
        else:
            messages = chat_messages(request_for_llm, session.recent_history())
        # 4. respond
        t3 = time.perf_counter()
        if session.cancel.is_set():
            answer = fallback_answer(records, "stopped by the user") if records else "Stopped."
            yield AnswerDelta(answer)
        else:
            try:
                for delta in llm.stream(messages, usage, max_tokens=cfg.llm.max_answer_tokens):
                    answer += delta
                    yield AnswerDelta(delta)
                    if session.cancel.is_set():
                        break
            except LLMError as exc:
                if not records:
                    yield Failed(str(exc))
                    return
                extra = fallback_answer(records, str(exc))
                answer += ("\n\n" if answer else "") + extra
                yield AnswerDelta(extra)
        timings["respond"] = round(time.perf_counter() - t3, 3)
        timings["total"] = round(time.perf_counter() - t0, 3)
        generated = [Path(v).name for r in records for k, v in (r.get("outputs") or {}).items() if k != "text"]
        session.remember(request, attached, answer, generated)
        session.touch()
        result = {"request": request, "files": attached, "tasks": records, "plan_repairs": plan.repairs,
                  "answer": answer, "usage": usage.as_dict(), "timings": timings}
        yield Done(result)


def _media_check(cfg: Config):
    try:
        from jarvis.files.content_checks import check_media
    except ImportError:
        return None
    limit = cfg.files.max_image_megapixels
    return lambda path, rtype: check_media(path, rtype, max_megapixels=limit)
