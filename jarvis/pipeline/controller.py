"""The controller: runs HuggingGPT's four stages for one request and emits a stream of events.
The web UI, the CLI and the HTTP API only consume this stream. The stages overlap (turn.py): a task
starts while the plan still streams, as soon as the plan has written it and its model is settled.

It owns the executors: the local one (with the process's model cache) lives as long as the
controller, a remote one is created for each run that needs it (it carries the session's token)
and closed when the run ends; `close()` releases the shared ones when the app stops.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from pathlib import Path

from jarvis.catalog.entries import Catalog, ModelInfo, describe
from jarvis.config import Config
from jarvis.errors import ResourceError
from jarvis.events import Done, Event, Failed, ModelChosen, PlanReady
from jarvis.execution import coverage
from jarvis.execution.availability import Availability
from jarvis.execution.dispatch import Dispatcher
from jarvis.execution.executor import Executor
from jarvis.execution.local import LocalExecutor
from jarvis.execution.remote import RemoteExecutor
from jarvis.execution.spaces import SpaceExecutor, space_routes
from jarvis.files.content_checks import check_media
from jarvis.files.media_types import media_type
from jarvis.llm import prompts
from jarvis.llm.backend import LLMBackend, Usage, backend_for
from jarvis.llm.client import LLM
from jarvis.llm.embedded import EmbeddedLLM, model_home
from jarvis.llm.plan_schema import runnable_task_types
from jarvis.pipeline.inputs import MediaCheck
from jarvis.pipeline.plan import Task
from jarvis.pipeline.plan_reading import plan_from_items
from jarvis.pipeline.records import LLMUsage, RunResult, StageTimings
from jarvis.pipeline.respond import Message
from jarvis.pipeline.scheduler import Scheduler, needs_model
from jarvis.pipeline.selection import Choice, for_language_pair
from jarvis.pipeline.turn import Needs, Turn
from jarvis.runners.registry import TaskType
from jarvis.session import Session

log = logging.getLogger(__name__)

GiB = 1024 ** 3


def task_list_for_prompt(mode: str, task_types: Sequence[TaskType] | None = None) -> str:
    """The task types the planner may use in this mode (by default those the registry alone allows),
    one line each: name: inputs -> outputs."""
    lines = []
    for t in runnable_task_types(mode) if task_types is None else task_types:
        ins = ",".join(t.inputs)
        lines.append(f"{t.name}: {ins} -> {','.join(t.outputs)}")
    return "\n".join(lines)


def _elapsed(since: float) -> float:
    return round(time.perf_counter() - since, 3)


class Controller:
    """Shared by every session: the catalog, the local executor and the provider-availability
    caches; nothing per user. `llm` builds a run's LLM backend from the session's config; by default
    the OpenAI-compatible client, or the embedded LLM (backend_for), whose weights live in the local
    executor's model cache."""

    def __init__(self, config: Config, catalog: Catalog | None = None, local: Executor | None = None,
                 llm: Callable[[Config], LLMBackend] | None = None):
        self.config = config
        self.catalog = catalog or Catalog.load(config.catalog.path or None)
        self.local: Executor = local or LocalExecutor.from_config(config.local)
        self._llm = llm or self._backend
        self._llm_home = model_home(self.local, config.local)
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
    def _backend(self, cfg: Config) -> LLMBackend:
        return EmbeddedLLM(cfg, self._llm_home) if backend_for(cfg) == "local" else LLM(cfg)

    def _shared_availability(self, cfg: Config) -> Availability:
        """One provider-availability cache per remote setup, shared by all sessions. Look-ups read
        public model metadata, so they carry no user's token."""
        key = repr((cfg.remote.base_url, cfg.remote.provider, sorted(cfg.remote.endpoints.items())))
        with self._availability_lock:
            if key not in self._availability:
                self._availability[key] = Availability(cfg.remote)
            return self._availability[key]

    def _dispatcher(self, cfg: Config, remotes: list[Executor]) -> Dispatcher:
        """This run's dispatcher: with a remote executor, and a Space executor when the catalog names
        Spaces, when the mode needs them (added to `remotes`, which the run closes at its end)."""
        mode = cfg.inference.mode
        remote: RemoteExecutor | None = None
        spaces: SpaceExecutor | None = None
        availability: Availability | None = None
        if mode in ("remote", "hybrid"):
            availability = self._shared_availability(cfg)
            remote = RemoteExecutor(cfg.remote, token=cfg.credentials.hf_token, availability=availability)
            remotes.append(remote)
            routes = space_routes(self.catalog)
            if routes:
                spaces = SpaceExecutor(routes, cfg.remote, token=cfg.credentials.hf_token)
                remotes.append(spaces)
        return Dispatcher(mode, self.local, remote, availability, spaces)

    def _needs(self, session: Session, remotes: list[Executor], usage: Usage | None = None) -> Needs:
        """What a turn takes from the controller; `usage` gets its notes (lighter models ranked first)."""
        cfg = session.config

        def scheduler() -> Scheduler:
            return Scheduler(self._dispatcher(cfg, remotes), session.store, max_parallel=cfg.inference.max_parallel,
                             task_timeout=cfg.inference.task_timeout, cancel=session.cancel, check=_media_check(cfg),
                             no_model=lambda task: coverage.unserved_message(self.catalog, task, cfg.inference.mode,
                                                                             cfg.remote.vlm_model))

        noted: set[str] = set()     # task types whose lighter-first ranking this run has told of

        def candidates(task: Task) -> list[ModelInfo]:  # a translation's: those that can do its language pair
            mode, k = cfg.inference.mode, cfg.inference.top_k
            budget = int(cfg.local.memory_budget_gb * GiB)
            pool = len(self.catalog) if task.task == "translation" else k

            def ranked(light: int | None) -> list[ModelInfo]:
                return coverage.candidates(self.catalog, task.task, pool, mode, cfg.remote.vlm_model, budget, light)
            found = ranked(None)
            light = int(cfg.local.cpu_prefer_under_gb * GiB) if mode == "local" else 0
            lighter = ranked(light) if light > 0 else found
            if [m.id for m in lighter] != [m.id for m in found] and self._on_cpu():
                heavy = [m for m in found if (m.facts.weight_bytes or 0) > light]
                if usage is not None and task.task not in noted:
                    noted.add(task.task)
                    named = ", ".join(f"{m.id} ({(m.facts.weight_bytes or 0) / 1e9:.1f} GB)" for m in heavy[:2])
                    usage.note(f"{task.task}: lighter models first on a CPU; {named} ranked after them "
                               "(local.cpu_prefer_under_gb)")
                found = lighter
            return for_language_pair(task, found)[:k] if task.task == "translation" else found

        return Needs(candidates=candidates, describe=describe, scheduler=scheduler,
                     task_types=self._offered(cfg))

    def _on_cpu(self) -> bool:
        """Local models run on a CPU: Ray replicas that reserve no GPU, or the local executor's device.
        Resolving "auto" imports torch, so it is asked only when the ranking would change, in local
        mode, where the task's execution imports torch right after."""
        local = self.config.local
        if local.backend == "ray":
            return local.ray_gpus_per_replica == 0
        return self._llm_home.device().name == "cpu"

    def _offered(self, cfg: Config) -> tuple[TaskType, ...]:
        """The task types some route serves in the mode: a local runner, Inference Providers, the
        vision-language model, a Gradio Space of the catalog (jarvis.execution.coverage)."""
        return tuple(coverage.offered_task_types(self.catalog, cfg.inference.mode, cfg.remote.vlm_model))

    def _plan_messages(self, session: Session, request: str) -> list[Message]:
        files = [f"{r.name} ({r.type})" for r in session.store.list()]
        mode = session.config.inference.mode
        system = prompts.render("plan", task_list=task_list_for_prompt(mode, self._offered(session.config)),
                                files=", ".join(files) or "none")
        return [{"role": "system", "content": system}, *session.recent_history(), {"role": "user", "content": request}]

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
        remotes: list[Executor] = []
        turn = Turn(session, llm, usage, self._needs(session, remotes, usage), request_for_llm,
                    self._plan_messages(session, request_for_llm), t0)
        events = turn.events()
        try:
            for event in events:
                yield event
                if isinstance(event, Failed):
                    return
        finally:
            events.close()      # the turn's calls and tasks stop, even when our consumer left early
            for remote in remotes:
                remote.close()
        assert turn.plan is not None
        timings = turn.timings
        timings.total = _elapsed(t0)
        text = "".join(turn.answer)
        records = turn.records
        session.remember(request, attached, text, [path.name for r in records for _, path in r.files()])
        session.touch()
        yield Done(RunResult(request=request, files=attached, tasks=records, plan_repairs=turn.plan.repairs,
                             answer=text, usage=LLMUsage(usage.llm_calls, usage.prompt_tokens, usage.completion_tokens),
                             timings=timings))


    # -- one task, for hosts that plan themselves -------------------------------------
    def run_task(self, session: Session, task: str, model: str, texts: Sequence[str] = (),
                 files: Iterable[str | Path] = ()) -> Generator[Event, None, None]:
        """Stage 3 alone (MCP's run_task): one task on a model the caller chose among the catalog's
        candidates for it in this mode, its text inputs in the registry's order and its media from
        the attached files. Yields PlanReady, ModelChosen, the task's events, then Done (the task's
        text output, or its error, as the answer) or Failed when it cannot start."""
        cfg = session.config
        t0 = time.perf_counter()
        session.cancel.clear()
        session.touch()
        try:
            attached = [session.store.add_upload(f).name for f in files]
        except ResourceError as exc:
            yield Failed(str(exc))
            return
        args: dict[str, list[str]] = {"text": list(texts)} if texts else {}
        for name in attached:
            rtype = media_type(name)
            if rtype:
                args.setdefault(rtype, []).append(name)
        plan = plan_from_items([{"task": task, "id": 0, "dep": [-1], "args": args}], [], files=attached)
        planned = plan.tasks[0]
        if planned.error:
            yield Failed(planned.error)
            return
        mode = cfg.inference.mode
        offered = [m.id for m in self.catalog.candidates(planned.task, k=len(self.catalog), mode=mode)]
        if needs_model(planned.task) and model not in offered:
            yield Failed(f"{model!r} is not a candidate for {planned.task} in {mode} mode; choose one of: "
                         f"{', '.join(offered) or 'none (this task type has no model here)'}")
            return
        yield PlanReady(plan.tasks, plan.repairs, _elapsed(t0))
        choice = Choice(0, model, "chosen by the caller", [model])
        yield ModelChosen(0, planned.task, model, choice.reason, choice.candidates)
        remotes: list[Executor] = []
        try:
            scheduler = self._needs(session, remotes).scheduler()
            yield from scheduler.run(plan, {0: choice}, t0)
        finally:
            for remote in remotes:
                remote.close()
        record = scheduler.records[0]
        session.touch()
        total = _elapsed(t0)
        yield Done(RunResult(request=f"{planned.task} on {model}", files=attached, tasks=[record],
                             plan_repairs=plan.repairs, answer=record.outputs.get("text") or record.error or "",
                             usage=LLMUsage(), timings=StageTimings(execute=total, total=total)))

def _media_check(cfg: Config) -> MediaCheck:
    limits = cfg.files  # the image size and the audio and video budgets, checked before any decoding
    return lambda path, rtype: check_media(path, rtype, limits)
