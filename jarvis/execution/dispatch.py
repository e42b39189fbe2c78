"""Chooses where a task runs (local, remote, hybrid) and records each attempt.

The scheduler calls `Dispatcher.execute` once per task; everything about retries, fallbacks to the
next candidate and to the other side lives here, so the record shows each attempt (an `Attempt`:
executor, model, ok, error, seconds). Executors are seen only through the `Executor` protocol.

- local: the chosen model, then the next candidates, on this machine (a model that failed to load a
  short while ago is skipped at once, and recorded as such: the model cache remembers failed loads).
- remote: the chosen model, then the next candidates, on Inference Providers (models the Hub says
  are not served are skipped; 429/503 are retried by the remote executor, each retry recorded).
- hybrid: each model on its side (local when loaded or cached and within budget, else remote),
  in candidate order; then the other side: remote for the local ones, and local for the chosen
  model (a download, at most one per task).
- a catalog entry a Gradio Space runs goes to the Space executor at its rank among the candidates,
  in remote and hybrid mode (never in local mode, never elsewhere).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from jarvis.errors import ExecutionError, ModelSkippedError, RemoteAccessError
from jarvis.execution.availability import Availability
from jarvis.execution.executor import Executor, RoutedExecutor
from jarvis.pipeline.records import Attempt
from jarvis.runners.base import RunContext, TaskInputs, TaskOutputs
from jarvis.runners.registry import TASK_TYPES

log = logging.getLogger(__name__)

RetryNote = Callable[[str, float, str], None]    # (message, seconds, model), as RunContext.on_retry


@dataclass
class Execution:
    """A task that ran: its outputs, the model and executor that produced them, every attempt."""
    outputs: TaskOutputs
    model: str
    executor: str
    attempts: list[Attempt] = field(default_factory=list)


class Dispatcher:
    """Runs one task on its model or the next candidates, locally, remotely or both."""

    def __init__(self, mode: str, local: Executor | None, remote: Executor | None = None,
                 availability: Availability | None = None, spaces: RoutedExecutor | None = None):
        self.mode = mode
        self.local = local
        self.remote = remote
        self.availability = availability
        self.spaces = spaces

    # -- planning the attempts -------------------------------------------------------------
    def _unserved(self, remote: Executor, task: str, models: list[str], attempts: list[Attempt]) -> set[str]:
        """Models the Hub says no provider serves for this task (skipped, and recorded as such)."""
        spec = TASK_TYPES.get(task)
        if self.availability is None or (spec is not None and spec.vlm) or not models:
            return set()
        _, unserved = self.availability.order(task, models)
        for m in unserved:
            attempts.append(Attempt(remote.name, m, ok=False, seconds=0.0,
                                    error=f"skipped: no Inference Provider serves {m} for {task}"))
        return set(unserved)

    def _plan(self, task: str, models: list[str], attempts: list[Attempt]) -> list[tuple[Executor, str]]:
        """(executor, model) pairs to try, in order."""
        local, remote = self.local, self.remote
        if self.mode == "local":
            return [(local, m) for m in models] if local is not None else []
        if self.mode == "remote":
            if remote is None or not remote.can_run(task):
                return []
            skip = self._unserved(remote, task, models, attempts)
            return [(remote, m) for m in models if m not in skip]
        can_local = local is not None and local.can_run(task)
        ready = {m: local is not None and can_local and local.ready(task, m) for m in models}
        plan: list[tuple[Executor, str]] = []
        if remote is not None and remote.can_run(task):
            unserved = self._unserved(remote, task, models, attempts)
            plan = [(local, m) if local is not None and ready[m] else (remote, m) for m in models]
            plan = [(ex, m) for ex, m in plan if ex is not remote or m not in unserved]
            plan += [(remote, m) for m in models if ready[m] and m not in unserved]
        elif local is not None:
            plan = [(local, m) for m in models if ready[m]]
        if local is not None and can_local and not ready[models[0]]:
            plan.append((local, models[0]))
        return plan

    def _with_spaces(self, task: str, models: list[str], attempts: list[Attempt]) -> list[tuple[Executor, str]]:
        """The plan, with the entries a Space runs placed at their rank (before every model ranked below
        them); those entries are never given to the other executors."""
        spaces = self.spaces
        own = [m for m in models if spaces is not None and spaces.serves(task, m)]
        rest = [m for m in models if m not in own]
        plan = self._plan(task, rest, attempts) if rest else []
        if spaces is None or self.mode == "local":
            return plan
        rank = {m: i for i, m in enumerate(models)}
        for m in own:
            at = next((i for i, (_, planned) in enumerate(plan) if rank[planned] > rank[m]), len(plan))
            plan.insert(at, (spaces, m))
        return plan

    # -- batches ---------------------------------------------------------------------------
    def can_batch(self, task: str) -> bool:
        """Several tasks of this type on one model can run as one batch: local mode and a runner that batches."""
        return self.mode == "local" and self.local is not None and self.local.batches(task)

    def execute_batch(self, task: str, model: str, batch: list[TaskInputs], ctx: RunContext) -> list[Execution]:
        """One call for several inputs on one local model; raises when the batch as a whole fails."""
        if self.local is None:
            raise ExecutionError("local mode has no local executor configured", [])
        start = time.perf_counter()
        outputs = self.local.run_batch(task, model, batch, ctx)
        seconds = round(time.perf_counter() - start, 3)
        name = self.local.name
        return [Execution(out, model, name, [Attempt(name, model, ok=True, seconds=seconds, batch=len(batch))])
                for out in outputs]

    # -- running ---------------------------------------------------------------------------
    def execute(self, task: str, model: str, candidates: list[str], inputs: TaskInputs,
                ctx: RunContext) -> Execution:
        attempts: list[Attempt] = []
        models = [m for m in dict.fromkeys([model, *(candidates or [])]) if m]
        if not models:
            raise ExecutionError(f"no model to run '{task}' on", attempts)
        plan = self._with_spaces(task, models, attempts)
        if not plan:
            raise ExecutionError(self._nothing_to_try(task), attempts)
        remote_stopped = False
        for executor, model_id in plan:
            if ctx.cancel.is_set() and attempts:  # timed out or stopped: no further option is tried
                break
            if executor is self.remote and remote_stopped:
                continue
            start = time.perf_counter()
            try:
                outputs = executor.run(task, model_id, inputs, replace(ctx, on_retry=self._recorder(
                    executor.name, attempts)))
            except Exception as exc:
                message = str(exc) or type(exc).__name__
                if isinstance(exc, MemoryError):
                    message = (f"not enough memory to run {model_id} on this machine: lower "
                               "local.memory_budget_gb, use a smaller model, or use remote mode")
                attempts.append(Attempt(executor.name, model_id, ok=False,
                                        seconds=round(time.perf_counter() - start, 3), error=message))
                log.info("%s on %s (%s) failed: %s", task, model_id, executor.name, message)
                if executor is self.remote and isinstance(exc, RemoteAccessError):  # every other call would fail alike
                    remote_stopped = True
                if len(plan) > 1:
                    what = message if isinstance(exc, ModelSkippedError) else f"{model_id} ({executor.name}) " \
                        f"failed: {message}"
                    ctx.progress(f"{what[:200]}; trying the next option")
                continue
            served_by = (outputs.detail or {}).get("served_by")
            used = str(served_by or model_id)
            attempts.append(Attempt(executor.name, used, ok=True, seconds=round(time.perf_counter() - start, 3)))
            if self.mode != "local" and (executor is not self.remote or served_by):
                outputs.detail = {**(outputs.detail or {}), "route": self._route(task, executor, model_id, models,
                                                                                 attempts, str(served_by or ""))}
            return Execution(outputs, used, executor.name, attempts)
        raise ExecutionError(self._summary(task, attempts), attempts)

    def _route(self, task: str, executor: Executor, model: str, models: list[str], attempts: list[Attempt],
               vlm: str) -> str:
        """Where a task went, other than to an Inference Provider serving its model, and why."""
        spec = TASK_TYPES.get(task)
        where = (f"answered by the vision-language model {vlm}" if vlm
                 else ("ran on Ray Serve" if executor.name == "ray" else "ran locally") if executor is self.local
                 else f"ran on the Gradio Space the catalog names for {model}")
        if vlm or any(a.model == model and (a.error or "").startswith("skipped: no Inference Provider")
                      for a in attempts):
            why = f"no Inference Provider serves {model} for {task}"
        elif spec is not None and not spec.remote:
            why = f"Inference Providers have no service for {task}"
        elif self.spaces is not None and all(self.spaces.serves(task, m) for m in models):
            why = f"no Inference Provider serves a catalog model of {task}"
        elif len(attempts) > 1:
            why = f"the {len(attempts) - 1} attempt(s) before it failed"
        elif executor is self.local:
            why = "the model is on this machine (hybrid mode runs what is cached here)"
        else:
            why = "the catalog ranks it first among the candidates"
        return f"{where}: {why}"

    @staticmethod
    def _recorder(executor: str, attempts: list[Attempt]) -> RetryNote:
        """ctx.on_retry for one call: each failed call the executor retried becomes an attempt."""
        def note(message: str, seconds: float, model: str) -> None:
            attempts.append(Attempt(executor, model, ok=False, seconds=round(seconds, 3), error=message))
        return note

    def _nothing_to_try(self, task: str) -> str:
        if self.mode == "remote" and self.remote is None:
            return "remote mode needs a remote executor: set an HF token (HF_TOKEN) or use local mode"
        if self.mode == "remote":
            return (f"'{task}' has no remote service (Inference Providers do not serve it) or no candidate is "
                    "served; use local or hybrid mode")
        if self.mode == "local":
            return "local mode has no local executor configured"
        return f"'{task}' can run neither here nor remotely"

    @staticmethod
    def _summary(task: str, attempts: list[Attempt]) -> str:
        failed = [a for a in attempts if not a.ok]
        if len(failed) == 1:
            return failed[0].error or "failed"
        last_per_try: dict[tuple[str, str], str] = {}
        for a in failed:
            last_per_try[(a.executor, a.model)] = a.error or "failed"
        lines = "; ".join(f"{ex} {m}: {err[:200]}" for (ex, m), err in last_per_try.items())
        return f"'{task}' failed on every option tried ({lines})"
