"""Stage 3: run the plan as a DAG. Each task starts as soon as the tasks it depends on are done,
independent tasks run at the same time, `<GENERATED>-K` resolves to task K's actual output
(text chains included), and a failed task marks its dependents skipped, with the reason."""
from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path

from jarvis.events import Event, TaskFailed, TaskFinished, TaskProgress, TaskSkipped, TaskStarted
from jarvis.execution.dispatch import Dispatcher, ExecutionError
from jarvis.files.store import ResourceError, ResourceStore
from jarvis.pipeline.plan import REF, Plan, Ref, Task
from jarvis.pipeline.selection import Choice
from jarvis.runners.base import Device, RunContext, TaskError, TaskInputs, TaskOutputs
from jarvis.runners.registry import TASK_TYPES

TEXT_FILE_SUFFIXES = {".txt", ".csv", ".tsv", ".md", ".json"}
MAX_TEXT_FILE = 1_000_000


def _text_value(value: str, results: dict[int, TaskOutputs], store: ResourceStore) -> str:
    """A text argument: inline <GENERATED>-K replaced by K's text; a text file of the session read."""
    def sub(match):
        out = results.get(int(match.group(1)))
        if out is None or out.text is None:
            raise TaskError(f"task {match.group(1)} produced no text to use here")
        return out.text
    text = REF.sub(sub, value)
    if Path(text).suffix.lower() in TEXT_FILE_SUFFIXES and len(text) < 300 and "\n" not in text:
        try:
            path = store.resolve(text)
        except ResourceError:
            return text
        return path.read_text(encoding="utf-8", errors="replace")[:MAX_TEXT_FILE]
    return text


def resolve_inputs(task: Task, results: dict[int, TaskOutputs], store: ResourceStore,
                   check=None) -> TaskInputs:
    """The task's args with references and file names turned into values the runner takes."""
    inputs = TaskInputs()
    for rtype, values in task.args.items():
        if rtype not in ("text", "image", "audio", "video"):
            continue
        for v in values:
            if isinstance(v, Ref):
                out = results.get(v.task_id)
                value = getattr(out, rtype, None) if out else None
                if value is None:
                    raise TaskError(f"task {v.task_id} produced no {rtype} for this task")
                getattr(inputs, rtype).append(value)
            elif rtype == "text":
                inputs.text.append(_text_value(str(v), results, store))
            else:
                try:
                    path = store.resolve(str(v))
                except ResourceError as exc:
                    raise TaskError(str(exc)) from None
                if check is not None:
                    try:
                        check(path, rtype)
                    except ResourceError as exc:
                        raise TaskError(str(exc)) from None
                getattr(inputs, rtype).append(path)
    return inputs


class Scheduler:
    """Runs one plan; `records` holds each task's record for the final answer and --json."""

    def __init__(self, dispatcher: Dispatcher, store: ResourceStore, *, max_parallel: int = 4,
                 task_timeout: float = 600.0, options: dict | None = None,
                 cancel: threading.Event | None = None, check=None):
        self.dispatcher = dispatcher
        self.store = store
        self.max_parallel = max_parallel
        self.task_timeout = task_timeout
        self.options = options or {}
        self.cancel = cancel or threading.Event()
        self.check = check
        self.records: dict[int, dict] = {}

    def _record(self, task: Task, choice: Choice | None) -> dict:
        return {"id": task.id, "task": task.task, "dep": task.dep or [-1], "args": task.args_json(),
                "model": choice.model if choice else None, "reason": choice.reason if choice else None,
                "executor": None, "status": "pending", "outputs": {}, "detail": None, "error": None,
                "started": None, "finished": None, "attempts": []}

    def run(self, plan: Plan, choices: dict[int, Choice], t0: float) -> Iterator[Event]:
        now = lambda: round(time.perf_counter() - t0, 3)
        tasks = {t.id: t for t in plan.tasks}
        self.records = {t.id: self._record(t, choices.get(t.id)) for t in plan.tasks}
        results: dict[int, TaskOutputs] = {}
        failed: dict[int, str] = {}
        events: queue.Queue[Event] = queue.Queue()
        running: dict[Future, tuple[list[int], float]] = {}
        pending = list(tasks)

        def fail(tid: int, message: str, attempts=None) -> Event:
            rec = self.records[tid]
            rec.update(status="failed", error=message, finished=now())
            if attempts:
                rec["attempts"] = attempts
            failed[tid] = message
            return TaskFailed(tid, rec["task"], message, rec["started"], rec["finished"], rec["attempts"])

        def context(tid: int) -> RunContext:
            return RunContext(device=Device(), new_file=lambda stem, suffix: self.store.new_path(stem, suffix),
                              progress=lambda msg: events.put(TaskProgress(tid, msg)), options=dict(self.options))

        def start(task: Task, choice: Choice | None) -> tuple[str, TaskInputs]:
            rec = self.records[task.id]
            rec["started"] = now()
            model = choice.model if choice else "builtin"
            inputs = resolve_inputs(task, results, self.store, self.check)
            events.put(TaskStarted(task.id, task.task, model, self.dispatcher.mode, rec["started"]))
            return model, inputs

        def work(group: list[Task]) -> list[tuple[int, object]]:
            """Run one task, or several on one model as one batch; returns (task id, Execution or error)."""
            out: list[tuple[int, object]] = []
            prepared = []
            for task in group:
                try:
                    prepared.append((task, *start(task, choices.get(task.id))))
                except Exception as exc:
                    out.append((task.id, exc))
            if len(prepared) > 1:
                task0, model, _ = prepared[0]
                try:
                    runs = self.dispatcher.execute_batch(task0.task, model, [p[2] for p in prepared], context(task0.id))
                    return out + [(p[0].id, r) for p, r in zip(prepared, runs)]
                except Exception:
                    pass
            for task, model, inputs in prepared:
                choice = choices.get(task.id)
                try:
                    out.append((task.id, self.dispatcher.execute(
                        task.task, model, choice.candidates if choice else [model], inputs, context(task.id))))
                except Exception as exc:
                    out.append((task.id, exc))
            return out

        pool = ThreadPoolExecutor(max_workers=self.max_parallel, thread_name_prefix="jarvis-task")
        try:
            while pending or running:
                # skip what can no longer run; start what is ready
                ready: list[Task] = []
                for tid in list(pending):
                    task = tasks[tid]
                    if self.cancel.is_set():
                        pending.remove(tid)
                        self.records[tid].update(status="skipped", error="stopped by the user")
                        yield TaskSkipped(tid, task.task, "stopped by the user")
                        continue
                    if task.error:
                        pending.remove(tid)
                        yield fail(tid, task.error)
                        continue
                    bad = [d for d in task.dep if d in failed]
                    if bad:
                        pending.remove(tid)
                        reason = f"skipped: task {bad[0]} ({tasks[bad[0]].task}) did not finish: {failed[bad[0]]}"
                        self.records[tid].update(status="skipped", error=reason)
                        failed[tid] = reason
                        yield TaskSkipped(tid, task.task, reason)
                        continue
                    if all(d in results for d in task.dep):
                        pending.remove(tid)
                        if choices.get(tid) is None and not getattr(_runner_or_none(task.task), "builtin", False):
                            yield fail(tid, f"no model available for {task.task} in this inference mode")
                            continue
                        ready.append(task)
                for group in self._groups(ready, choices):
                    running[pool.submit(work, group)] = ([t.id for t in group], time.perf_counter())
                if not running:
                    continue
                done, _ = wait(list(running), timeout=0.05, return_when=FIRST_COMPLETED)
                while not events.empty():
                    yield events.get()
                for fut in done:
                    running.pop(fut)
                    for tid, outcome in fut.result():
                        yield self._settle(tid, outcome, results, fail, now)
                # time limits: a task past its deadline is failed; its thread's late result is ignored
                for fut, (tids, started) in list(running.items()):
                    if time.perf_counter() - started > self.task_timeout * len(tids):
                        running.pop(fut)
                        fut.cancel()
                        for tid in tids:
                            yield fail(tid, f"timed out after {self.task_timeout:.0f} s (inference.task_timeout)")
            while not events.empty():
                yield events.get()
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def _groups(self, ready: list[Task], choices: dict[int, Choice]) -> list[list[Task]]:
        """Ready tasks of one type on one model go together when the runner can batch them locally."""
        groups: dict[tuple, list[Task]] = {}
        for task in ready:
            choice = choices.get(task.id)
            key: tuple = (task.id,)
            if choice is not None and self.dispatcher.can_batch(task.task, choice.model):
                key = (task.task, choice.model)
            groups.setdefault(key, []).append(task)
        return list(groups.values())

    def _settle(self, tid: int, outcome, results: dict[int, TaskOutputs], fail, now) -> Event:
        """Record one task's outcome and return its event."""
        rec = self.records[tid]
        if isinstance(outcome, ExecutionError):
            return fail(tid, str(outcome), outcome.attempts)
        if isinstance(outcome, (TaskError, ResourceError)):
            return fail(tid, str(outcome))
        if isinstance(outcome, BaseException):  # a runner bug must not stop the others
            return fail(tid, f"{type(outcome).__name__}: {str(outcome)[:300]}")
        out = outcome.outputs
        for value in (out.image, out.audio, out.video):
            if value is not None:
                self.store.register_generated(Path(value))
        results[tid] = out
        rec.update(status="done", outputs=out.as_dict(), detail=out.detail, finished=now(),
                   executor=outcome.executor, model=outcome.model, attempts=outcome.attempts)
        return TaskFinished(tid, rec["task"], rec["outputs"], out.detail, rec["started"], rec["finished"],
                            outcome.attempts)


def _runner_or_none(task: str):
    try:
        from jarvis.runners.local import get_runner
        return get_runner(task) if task in TASK_TYPES else None
    except Exception:
        return None
