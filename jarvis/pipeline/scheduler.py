"""Stage 3: run the plan as a DAG. Each task starts as soon as the tasks it depends on are done,
independent tasks run at the same time, `<GENERATED>-K` resolves to task K's actual output (text
chains included, see inputs.py), and a failed task marks its dependents skipped, with the reason.
Each task's `TaskRecord` is kept up to date and travels in its end event.

Tasks may arrive while the run goes (`DagRun.add`): the controller adds each task as soon as the
plan's stream has written it and its model is settled, and `seal`s the run once the plan is whole;
a task waits for dependencies that have not arrived yet. `Scheduler.run` is the whole plan at once.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path

from jarvis.errors import ExecutionError, ResourceError, TaskError
from jarvis.events import Event, TaskFailed, TaskFinished, TaskProgress, TaskSkipped, TaskStarted
from jarvis.execution.dispatch import Dispatcher, Execution
from jarvis.files.store import ResourceStore
from jarvis.pipeline.inputs import MediaCheck, resolve_inputs
from jarvis.pipeline.plan import Plan, Task
from jarvis.pipeline.records import TaskRecord
from jarvis.pipeline.selection import Choice
from jarvis.runners.base import Device, RunContext, TaskInputs, TaskOutputs
from jarvis.runners.registry import TASK_TYPES

log = logging.getLogger(__name__)

Outcome = Execution | BaseException   # what one task's work ended with
STOPPED = "stopped by the user"


def needs_model(task: str) -> bool:
    """False for built-in task types (no model to choose), as the registry declares them."""
    spec = TASK_TYPES.get(task)
    return spec is None or spec.needs_model


class Scheduler:
    """Runs one plan; `records` holds each task's record, in plan order, for the answer and --json."""

    def __init__(self, dispatcher: Dispatcher, store: ResourceStore, *, max_parallel: int = 4,
                 task_timeout: float = 600.0, cancel: threading.Event | None = None,
                 check: MediaCheck | None = None, no_model: Callable[[str], str] | None = None):
        self.dispatcher = dispatcher
        # why a task type has no model in this mode (the controller names the modes and routes that would)
        self.no_model = no_model or (lambda task: f"no model available for {task} in this inference mode")
        self.store = store
        self.max_parallel = max_parallel
        self.task_timeout = task_timeout
        self.cancel = cancel or threading.Event()
        self.check = check
        self.records: dict[int, TaskRecord] = {}

    def run(self, plan: Plan, choices: dict[int, Choice], t0: float) -> Iterator[Event]:
        """Run every task of the plan; yields their events. `t0` is when the request began."""
        run = self.begin(t0)
        try:
            for task in plan.tasks:
                run.add(task, choices.get(task.id))
            run.seal()
            while True:
                yield from run.step()
                if run.finished:
                    break
                run.wait(0.05)
        finally:
            run.close()

    def begin(self, t0: float, wake: Callable[[], None] | None = None) -> DagRun:
        """A run that takes its tasks as they come. `wake` is called from worker threads whenever
        there is news for `step` (a task ended, started or reported progress)."""
        self.records = {}
        return DagRun(self, t0, wake or (lambda: None))

    def groups(self, ready: list[Task], choices: dict[int, Choice]) -> list[list[Task]]:
        """Ready tasks of one type on one model go together when the runner can batch them locally."""
        groups: dict[tuple[str, ...], list[Task]] = {}
        for task in ready:
            choice = choices.get(task.id)
            key: tuple[str, ...] = (str(task.id),)
            if choice is not None and self.dispatcher.can_batch(task.task):
                key = (task.task, choice.model)
            groups.setdefault(key, []).append(task)
        return list(groups.values())


def _record(task: Task, choice: Choice | None) -> TaskRecord:
    return TaskRecord(id=task.id, task=task.task, dep=task.dep or [-1], args=task.args_json(),
                      model=choice.model if choice else None, reason=choice.reason if choice else None)


class DagRun:
    """The state of one plan's run: what is done, failed, pending and running. Driven by `step`
    (never blocks) from one thread; its tasks run in a pool."""

    def __init__(self, scheduler: Scheduler, t0: float, wake: Callable[[], None]):
        self.s = scheduler
        self.records = scheduler.records
        self.choices: dict[int, Choice] = {}
        self.t0 = t0
        self.wake = wake
        self.tasks: dict[int, Task] = {}
        self.results: dict[int, TaskOutputs] = {}
        self.failed: dict[int, str] = {}
        self.events: queue.Queue[Event] = queue.Queue()
        self.running: dict[Future[list[tuple[int, Outcome]]], list[int]] = {}   # each group's task ids
        self.pending: list[int] = []
        self.sealed = False
        self.stops: dict[int, threading.Event] = {}   # each task's RunContext.cancel, set when it must stop
        self.overran: list[Future[list[tuple[int, Outcome]]]] = []   # timed out, their workers maybe still busy
        self.pool = ThreadPoolExecutor(max_workers=scheduler.max_parallel, thread_name_prefix="jarvis-task")

    def now(self) -> float:
        return round(time.perf_counter() - self.t0, 3)

    # -- the caller's side -----------------------------------------------------------------
    def add(self, task: Task, choice: Choice | None) -> None:
        """One more task to run once its dependencies are done (those may arrive later)."""
        if task.id in self.tasks:
            raise ValueError(f"task {task.id} was added twice")
        self.tasks[task.id] = task
        if choice is not None:
            self.choices[task.id] = choice
        self.records[task.id] = _record(task, choice)
        self.pending.append(task.id)

    def seal(self) -> None:
        """No more tasks will come: a dependency that has not arrived never will."""
        self.sealed = True

    @property
    def finished(self) -> bool:
        return self.sealed and not self.pending and not self.running

    def step(self) -> Iterator[Event]:
        """Settle what ended, enforce time limits and the user's stop, start what is ready; yields
        the events of all that. Returns at once."""
        yield from self._drain()
        for fut in [f for f in self.running if f.done()]:
            self.running.pop(fut)
            for tid, outcome in fut.result():
                yield self._settle(tid, outcome)
        yield from self._timeouts()
        if self.s.cancel.is_set():   # the user stopped the run: running tasks stop at their next step
            for stop in list(self.stops.values()):
                stop.set()
        ready = yield from self._ready()
        for group in self.s.groups(ready, self.choices):
            fut = self.pool.submit(self._work, group)
            self.running[fut] = [t.id for t in group]
            fut.add_done_callback(lambda _fut: self.wake())
        if self.sealed and self.pending and not self.running:   # waiting on tasks that will never run
            for tid in list(self.pending):
                self.pending.remove(tid)
                missing = [d for d in self.tasks[tid].dep if d not in self.results]
                yield self._fail(tid, f"it waits for task(s) {missing}, which did not run")
        yield from self._drain()

    def wait(self, timeout: float) -> None:
        """Block until a running task ends (at most `timeout` seconds)."""
        if self.running:
            wait(list(self.running), timeout=timeout, return_when=FIRST_COMPLETED)

    def close(self) -> None:
        """Stop: tasks not started never start; running ones are told to stop."""
        for stop in list(self.stops.values()):
            stop.set()
        self.pool.shutdown(wait=False, cancel_futures=True)

    def _ready(self) -> Generator[Event, None, list[Task]]:
        """Skip what can no longer run, fail what cannot run; returns the tasks ready to start."""
        ready: list[Task] = []
        for tid in list(self.pending):
            task = self.tasks[tid]
            if self.s.cancel.is_set():
                self.pending.remove(tid)
                yield self._skip(tid, STOPPED)
                continue
            if task.error:
                self.pending.remove(tid)
                yield self._fail(tid, task.error)
                continue
            bad = [d for d in task.dep if d in self.failed]
            if bad:
                self.pending.remove(tid)
                reason = f"skipped: task {bad[0]} ({self.tasks[bad[0]].task}) did not finish: {self.failed[bad[0]]}"
                self.failed[tid] = reason
                yield self._skip(tid, reason)
                continue
            if all(d in self.results for d in task.dep):
                self.pending.remove(tid)
                if self.choices.get(tid) is None and needs_model(task.task):
                    yield self._fail(tid, self.s.no_model(task.task))
                    continue
                ready.append(task)
        return ready

    def _drain(self) -> Iterator[Event]:
        while not self.events.empty():
            yield self.events.get()

    def _post(self, event: Event) -> None:
        self.events.put(event)
        self.wake()

    def _timeouts(self) -> Iterator[Event]:
        """A task that has run past its time limit is failed (a batch has the limits of all its tasks;
        the clock starts when a worker takes the task, not while it waits for one); its thread's late
        result is ignored."""
        for fut, tids in list(self.running.items()):
            started = self.records[tids[0]].started   # set by the worker when the group starts
            if started is not None and self.now() - started > self.s.task_timeout * len(tids):
                self.running.pop(fut)
                self.overran.append(fut)
                for tid in tids:
                    self.stops.setdefault(tid, threading.Event()).set()  # the runner stops at its next step
                    yield self._fail(tid, f"timed out after {self.s.task_timeout:g} s (inference.task_timeout)")
        yield from self._no_free_worker()

    def _no_free_worker(self) -> Iterator[Event]:
        """Tasks waiting for a worker fail when every worker is held by a timed-out task that has not
        stopped (a runner that ignores its stop): they would wait for ever."""
        self.overran = [fut for fut in self.overran if not fut.done()]
        if len(self.overran) < self.s.max_parallel:
            return
        for fut, tids in list(self.running.items()):
            if fut.cancel():          # only a group no worker has taken can be cancelled
                self.running.pop(fut)
                for tid in tids:
                    yield self._fail(tid, f"no worker is free: {len(self.overran)} timed-out task(s) have not "
                                          "stopped yet; try again later")

    # -- ends ------------------------------------------------------------------------------
    def _fail(self, tid: int, message: str, execution_error: ExecutionError | None = None) -> Event:
        rec = self.records[tid]
        rec.status, rec.error, rec.finished = "failed", message, self.now()
        if execution_error is not None and execution_error.attempts:
            rec.attempts = list(execution_error.attempts)
        self.failed[tid] = message
        return TaskFailed(rec)

    def _skip(self, tid: int, reason: str) -> Event:
        rec = self.records[tid]
        rec.status, rec.error = "skipped", reason
        return TaskSkipped(rec)

    def _settle(self, tid: int, outcome: Outcome) -> Event:
        """Record one task's outcome and return its event."""
        if isinstance(outcome, ExecutionError):
            return self._fail(tid, str(outcome), outcome)
        if isinstance(outcome, (TaskError, ResourceError)):
            return self._fail(tid, str(outcome))
        if isinstance(outcome, BaseException):  # a runner bug must not stop the others
            log.error("task %s failed unexpectedly", tid, exc_info=outcome)
            return self._fail(tid, f"{type(outcome).__name__}: {str(outcome)[:300]}")
        out = outcome.outputs
        for value in (out.image, out.audio, out.video):
            if value is not None:
                self.s.store.register_generated(Path(value))
        self.results[tid] = out
        rec = self.records[tid]
        rec.status, rec.finished = "done", self.now()
        rec.outputs, rec.detail = out.as_dict(), out.detail
        rec.executor, rec.model, rec.attempts = outcome.executor, outcome.model, outcome.attempts
        return TaskFinished(rec)

    # -- the work (pool threads) -------------------------------------------------------------
    def _context(self, tid: int) -> RunContext:
        stop = self.stops.setdefault(tid, threading.Event())
        if self.s.cancel.is_set():
            stop.set()
        return RunContext(device=Device(), new_file=self.s.store.new_path,
                          progress=self._progress(tid), cancel=stop)

    def _progress(self, tid: int) -> Callable[[str], None]:
        return lambda message: self._post(TaskProgress(tid, message))

    def _start(self, task: Task) -> tuple[str, TaskInputs]:
        choice = self.choices.get(task.id)
        rec = self.records[task.id]
        rec.status, rec.started = "running", self.now()
        model = choice.model if choice else "builtin"
        inputs = resolve_inputs(task, self.results, self.s.store, self.s.check,
                                progress=self._progress(task.id), cancel=self._context(task.id).cancel)
        self._post(TaskStarted(task.id, task.task, model, self.s.dispatcher.mode, rec.started))
        return model, inputs

    def _work(self, group: list[Task]) -> list[tuple[int, Outcome]]:
        """Run one task, or several on one model as one batch."""
        out: list[tuple[int, Outcome]] = []
        prepared: list[tuple[Task, str, TaskInputs]] = []
        for task in group:
            try:
                prepared.append((task, *self._start(task)))
            except Exception as exc:
                out.append((task.id, exc))
        dispatcher = self.s.dispatcher
        if len(prepared) > 1:
            first, model, _ = prepared[0]
            try:
                runs = dispatcher.execute_batch(first.task, model, [p[2] for p in prepared], self._context(first.id))
                return out + [(p[0].id, r) for p, r in zip(prepared, runs)]
            except Exception as exc:   # the batch failed as a whole: each task on its own
                log.info("batch of %d %s tasks failed (%s); running them one by one", len(prepared), first.task, exc)
        for task, model, inputs in prepared:
            choice = self.choices.get(task.id)
            try:
                out.append((task.id, dispatcher.execute(task.task, model, choice.candidates if choice else [model],
                                                        inputs, self._context(task.id))))
            except Exception as exc:
                out.append((task.id, exc))
        return out
