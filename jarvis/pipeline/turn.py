"""One request's stages, overlapping. The plan streams; each task starts as soon as the plan has
written it (live_plan.py) and its model is settled (no model to choose, or one candidate); the model
choice for the other tasks needs the whole plan, so it starts when the plan's stream ends; the answer
follows the last task. Timings: `plan` is the seconds from the request's start to the end of the
plan's stream (a task's `started` may be smaller), `select` the model-choice call, `execute` from
the end of the plan's stream to the end of the last task (the choice runs within it).

One loop in the caller's thread drives it all and yields the events. The LLM calls and the tasks run
in threads of their own and post what happens to the loop's inbox; the loop also reports, about once
a second, how far the LLM has written (LLMProgress).
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from jarvis.catalog.entries import ModelInfo
from jarvis.errors import LLMError, PlanError
from jarvis.events import AnswerDelta, Event, Failed, LLMProgress, ModelChosen, PlanReady, TaskPlanned
from jarvis.llm.backend import LLMBackend, Usage
from jarvis.llm.plan_schema import PlanSchema
from jarvis.pipeline.live_plan import LivePlan, join_started, list_closed
from jarvis.pipeline.plan import Plan, Task
from jarvis.pipeline.records import StageTimings, TaskRecord
from jarvis.pipeline.respond import Message, answer_messages, chat_messages, fallback_answer, without_reasoning
from jarvis.pipeline.scheduler import DagRun, Scheduler, needs_model
from jarvis.pipeline.selection import Choice, Describe, only_choice, select_models
from jarvis.runners.registry import TaskType
from jarvis.session import Session

log = logging.getLogger(__name__)

PROGRESS_EVERY = 1.0    # seconds between two LLMProgress events of one call
USAGE_GRACE = 1.0       # seconds the end waits for the plan's stream to close, for its usage counts
TICK = 0.1              # the loop's longest wait: the user's stop, task time limits, progress

Post = tuple[str, Any, Any]     # (kind, the call it comes from or None, value) in the loop's inbox


def _elapsed(since: float) -> float:
    return round(time.perf_counter() - since, 3)


def _through(deltas: Iterator[str]) -> Generator[str, None, None]:
    """`deltas` as a generator: closing it closes them (the LLM's connection) in the closing thread."""
    yield from deltas


class Call:
    """One LLM call's meter (tokens so far, since when); `start` also reads it in a thread of its own,
    posting ("delta", call, text) for each delta, then ("end", call, None), ("error", call, LLMError)
    or ("crash", call, exception). With `whole`, a predicate on the text so far, it posts
    ("complete", call, None) once the text is whole and stops reading at the next chunk that says
    more (a planner that rambles on after its JSON); a chunk that ends the stream is still read, for
    its usage counts."""

    def __init__(self, stage: str, inbox: queue.Queue[Post]):
        self.stage = stage
        self.inbox = inbox
        self.began = time.perf_counter()
        self.tokens = 0
        self.ended = False
        self._shown = (0, self.began)     # tokens and time of the last progress event
        self._stop = threading.Event()
        self.closed = threading.Event()    # set once its thread is done (and the LLM counted its usage)

    def count(self, deltas: Iterable[str]) -> Iterator[str]:
        for delta in deltas:
            self.tokens += 1
            yield delta

    def progress(self, now: float) -> LLMProgress | None:
        """A progress event when one is due: at the first token, then every PROGRESS_EVERY seconds."""
        shown, at = self._shown
        if self.ended or not self.tokens or (shown and now - at < PROGRESS_EVERY):
            return None
        self._shown = (self.tokens, now)
        return LLMProgress(self.stage, self.tokens, round(now - self.began, 1))

    def start(self, open_: Callable[[], Iterator[str]], whole: Callable[[str], bool] | None = None) -> Call:
        threading.Thread(target=self._pump, args=(open_, whole), name=f"jarvis-llm-{self.stage}",
                         daemon=True).start()
        return self

    def stop(self) -> None:
        """Nobody reads on: the thread stops at its next delta, and closes the connection."""
        self._stop.set()
        self.ended = True

    def _pump(self, open_: Callable[[], Iterator[str]], whole: Callable[[str], bool] | None) -> None:
        stream = _through(open_())
        text, complete = "", False
        try:
            for delta in stream:
                if self._stop.is_set() or (complete and delta.strip()):
                    break
                if complete:
                    continue
                self.inbox.put(("delta", self, delta))
                if whole is not None:
                    text += delta
                    if "]" in delta and whole(text):
                        complete = True
                        self.inbox.put(("complete", self, None))
            else:
                self.inbox.put(("end", self, None))
        except LLMError as exc:
            if complete:
                log.info("the %s stream failed after its answer was whole: %s", self.stage, exc)
            else:
                self.inbox.put(("error", self, exc))
        except Exception as exc:  # a bug: the loop raises it, and the controller reports it
            self.inbox.put(("crash", self, exc))
        finally:
            stream.close()
            self.ended = True
            self.closed.set()


@dataclass
class Needs:
    """What a turn takes from the controller."""
    candidates: Callable[[Task], Sequence[ModelInfo]]  # a planned task's ranked candidates in this mode
    describe: Describe                                  # candidates as the selection prompt shows them
    scheduler: Callable[[], Scheduler]                  # this run's scheduler; raises when it cannot be set up
    task_types: tuple[TaskType, ...] | None = None      # what the plan may use (None: the registry's for the mode)


class Turn:
    """`events()` yields everything that happens; afterwards `plan`, `records`, `answer` and
    `timings` hold the result."""

    def __init__(self, session: Session, llm: LLMBackend, usage: Usage, needs: Needs, request: str,
                 plan_messages: list[Message], t0: float):
        self.session, self.cfg, self.llm, self.usage, self.needs = session, session.config, llm, usage, needs
        self.request, self.plan_messages, self.t0 = request, plan_messages, t0
        self.inbox: queue.Queue[Post] = queue.Queue()
        self.timings = StageTimings()
        self.plan: Plan | None = None
        self.records: list[TaskRecord] = []
        self.answer: list[str] = []
        self.started: dict[int, Task] = {}      # added to the DAG before the plan was whole
        self._dag: DagRun | None = None
        self._calls: list[Call] = []
        self._waiting: dict[int, Sequence[ModelInfo]] = {}   # tasks whose model the selection call chooses
        self._selecting: float | None = None    # when the selection call began, while it runs
        self._broken = ""                       # why execution could not be set up: the run ends with it

    def events(self) -> Generator[Event, None, None]:
        try:
            if (yield from self._plan_and_run()):
                yield from self._respond()
                if not self.session.cancel.is_set():    # stopped: nobody waits for the usage count
                    self._calls[0].closed.wait(USAGE_GRACE)   # the plan's stream reads on past its list
        finally:
            for call in self._calls:
                call.stop()
            if self._dag is not None:
                self._dag.close()

    # -- the loop ------------------------------------------------------------------------
    def _call(self, stage: str) -> Call:
        call = Call(stage, self.inbox)
        self._calls.append(call)
        return call

    def _take(self) -> Post | None:
        try:
            return self.inbox.get(timeout=TICK)
        except queue.Empty:
            return None

    def _progress(self) -> Iterator[Event]:
        now = time.perf_counter()
        notes = self.usage.take_notes()
        if notes and self._calls:     # the latest call is the one waiting for its model
            call = self._calls[-1]
            for note in notes:
                yield LLMProgress(call.stage, call.tokens, round(now - call.began, 1), note.text, note.kind)
        for call in self._calls:
            event = call.progress(now)
            if event is not None:
                yield event

    def _plan_and_run(self) -> Generator[Event, None, bool]:
        resources = self.session.store.list()
        files = [r.name for r in resources]
        live = LivePlan(self.cfg.inference.max_tasks, files)
        schema = PlanSchema.for_request(self.cfg.inference.mode, self.cfg.inference.max_tasks,
                                        [(r.name, r.type) for r in resources])
        if self.needs.task_types is not None:
            schema = replace(schema, task_types=self.needs.task_types)
        plan_call = self._call("plan")
        plan_call.start(lambda: plan_call.count(self.llm.stream(self.plan_messages, self.usage, schema=schema,
                                                                max_tokens=self.cfg.llm.plan_tokens)),
                        list_closed)
        while True:
            post = self._take()
            if post is not None:
                kind, source, value = post
                if kind == "crash":
                    raise value
                if source is plan_call and self.plan is None:
                    if kind == "delta":
                        for task in live.feed(value):
                            yield from self._planned(task)
                    elif not (yield from self._plan_end(live, value if kind == "error" else None)):
                        return False
                elif kind == "choices":
                    yield from self._chosen(value)
            if self._broken:
                yield Failed(self._broken)
                return False
            if self.plan is None and self.session.cancel.is_set():
                plan_call.stop()
                yield from self._plan_end(live, None)
            yield from self._progress()
            if self._dag is not None:
                yield from self._dag.step()
            if self.plan is not None and self._selecting is None and (self._dag is None or self._dag.finished):
                break
        if self._dag is not None:
            self.timings.execute = round(max(0.0, _elapsed(self.t0) - self.timings.plan), 3)
        return True

    # -- plan and models -------------------------------------------------------------------
    def _planned(self, task: Task) -> Iterator[Event]:
        """A task the stream has written: it starts now when its model is settled."""
        yield TaskPlanned(task, _elapsed(self.t0))
        if self.session.cancel.is_set():
            return
        candidates = self.needs.candidates(task)
        choice = only_choice(task, candidates)
        if choice is None and needs_model(task.task) and candidates:
            return     # several candidates: the selection call chooses, once the plan is whole
        self.started[task.id] = task
        yield from self._add(task, choice)

    def _add(self, task: Task, choice: Choice | None) -> Iterator[Event]:
        if self._broken:
            return
        if self._dag is None:
            try:
                scheduler = self.needs.scheduler()
            except Exception as exc:  # a bad remote setup, say: the loop ends the run with this message
                log.exception("could not set up %s execution", self.cfg.inference.mode)
                self._broken = f"could not set up {self.cfg.inference.mode} execution: {exc}"
                return
            self._dag = scheduler.begin(self.t0, wake=lambda: self.inbox.put(("wake", None, None)))
        self._dag.add(task, choice)
        if choice is not None:
            yield ModelChosen(task.id, task.task, choice.model, choice.reason, choice.candidates)

    def _plan_end(self, live: LivePlan, error: LLMError | None) -> Generator[Event, None, bool]:
        """The plan's stream ended (or stopped): the whole plan, and the tasks that still wait."""
        for call in self._calls:
            call.ended = True
        self.timings.plan = _elapsed(self.t0)
        if error is not None and not live.objects:
            yield Failed(str(error))
            return False
        try:
            plan = live.whole(broke_off=str(error) if error is not None else None)
        except PlanError as exc:
            plan = Plan(repairs=["stopped by the user before the plan was written" if self.session.cancel.is_set()
                                 else f"the plan could not be read ({exc}); answered directly"])
        self.plan = plan = join_started(plan, self.started)
        yield PlanReady(list(plan.tasks), plan.repairs, self.timings.plan)
        stopped = self.session.cancel.is_set()
        for task in plan.tasks:
            if task.id in self.started:
                continue
            candidates = [] if task.error or stopped else self.needs.candidates(task)
            choice = only_choice(task, candidates)
            if choice is None and len(candidates) > 1:
                self._waiting[task.id] = candidates
            else:
                yield from self._add(task, choice)
        if self._waiting:
            self._select(plan)
        elif self._dag is not None:
            self._dag.seal()
        return True

    def _select(self, plan: Plan) -> None:
        meter = self._call("select")
        self._selecting = time.perf_counter()

        def work() -> None:
            try:
                choices = select_models(plan, self.request, self._waiting, self.llm, self.usage,
                                        describe=self.needs.describe, watch=meter.count)
                self.inbox.put(("choices", meter, choices))
            except Exception as exc:  # a bug: the loop raises it, and the controller reports it
                self.inbox.put(("crash", meter, exc))
            finally:
                meter.ended = True

        threading.Thread(target=work, name="jarvis-llm-select", daemon=True).start()

    def _chosen(self, choices: dict[int, Choice]) -> Iterator[Event]:
        assert self.plan is not None and self._selecting is not None
        self.timings.select = _elapsed(self._selecting)
        self._selecting = None
        for task in self.plan.tasks:
            if task.id in self._waiting:
                yield from self._add(task, choices.get(task.id))
        if self._dag is not None:
            self._dag.seal()

    # -- the answer --------------------------------------------------------------------------
    def _respond(self) -> Iterator[Event]:
        """Stage 4: the answer streamed into `answer`; without the LLM, the results themselves."""
        assert self.plan is not None
        history = self.session.recent_history()
        if self._dag is not None:
            self.records = [self._dag.records[t.id] for t in self.plan.tasks]
        if self.plan.tasks:
            messages = answer_messages(self.request, self.records, history)
        else:
            messages = chat_messages(self.request, history)
        began = time.perf_counter()
        try:
            yield from self._answer(messages)
        finally:
            self.timings.respond = _elapsed(began)

    def _answer(self, messages: list[Message]) -> Iterator[Event]:
        if self.session.cancel.is_set():
            text = fallback_answer(self.records, "stopped by the user") if self.records else "Stopped by the user."
            self.answer.append(text)
            yield AnswerDelta(text)
            return
        call = self._call("answer")
        max_tokens = self.cfg.llm.max_answer_tokens
        call.start(lambda: without_reasoning(call.count(self.llm.stream(messages, self.usage, max_tokens=max_tokens))))
        while not self.session.cancel.is_set():
            post = self._take()
            yield from self._progress()
            if post is None or post[1] is not call:
                continue
            kind, _, value = post
            if kind == "delta":
                self.answer.append(value)
                yield AnswerDelta(value)
            elif kind == "crash":
                raise value
            elif kind == "error":
                if not self.records:
                    yield Failed(str(value))
                    return
                extra = fallback_answer(self.records, str(value))
                self.answer.append(("\n\n" if self.answer else "") + extra)
                yield AnswerDelta(extra)
                return
            else:
                return
