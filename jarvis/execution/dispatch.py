"""Chooses where a task runs (local, remote, hybrid) and records each attempt.

The scheduler calls `Dispatcher.execute` once per task; everything about retries, fallbacks
to the next candidate and to the other side lives here, so the record shows each attempt:
{"executor", "model", "ok", "error", "seconds"}.

- local: the chosen model on this machine.
- remote: the chosen model, then the next candidates, on Inference Providers (models the Hub says
  are not served are skipped; 429/503 are retried by the remote executor, each retry recorded).
- hybrid: each model on its side (local when loaded or cached and within budget, else remote),
  in candidate order; then the other side: remote for the local ones, and local for the chosen
  model (a download, at most one per task).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from jarvis.runners.base import RunContext, TaskError, TaskInputs, TaskOutputs

log = logging.getLogger(__name__)

STOP_REMOTE = ("auth", "no_token", "offline")   # every other remote call would fail the same way


@dataclass
class Execution:
    outputs: TaskOutputs
    model: str
    executor: str
    attempts: list[dict] = field(default_factory=list)


class ExecutionError(TaskError):
    def __init__(self, message: str, attempts: list[dict]):
        super().__init__(message)
        self.attempts = attempts


class Dispatcher:
    """Runs one task on its model or the next candidates, locally, remotely or both."""

    def __init__(self, mode: str, local, remote=None, availability=None):
        self.mode = mode
        self.local = local
        self.remote = remote
        self.availability = availability if availability is not None else getattr(remote, "availability", None)

    # -- planning the attempts -------------------------------------------------------------
    def _remote_capable(self, task: str) -> bool:
        from jarvis.runners.remote.adapters import REMOTE_TASKS
        return self.remote is not None and task in REMOTE_TASKS

    def _local_capable(self, task: str) -> bool:
        from jarvis.runners.local import has_local_runner
        return self.local is not None and has_local_runner(task)

    def _unserved(self, task: str, models: list[str], attempts: list[dict]) -> set[str]:
        """Models the Hub says no provider serves for this task (skipped, and recorded as such)."""
        from jarvis.runners.remote.adapters import VLM_TASKS
        if self.availability is None or task in VLM_TASKS or not models:
            return set()
        _, unserved = self.availability.order(task, models)
        for m in unserved:
            attempts.append({"executor": "remote", "model": m, "ok": False, "seconds": 0.0,
                             "error": f"skipped: no Inference Provider serves {m} for {task}"})
        return set(unserved)

    def _plan(self, task: str, models: list[str], attempts: list[dict]) -> list[tuple[str, str]]:
        if self.mode == "local":
            return [("local", models[0])] if self.local is not None else []
        if self.mode == "remote":
            if not self._remote_capable(task):
                return []
            skip = self._unserved(task, models, attempts)
            return [("remote", m) for m in models if m not in skip]
        from jarvis.execution.readiness import local_ready
        can_local, can_remote = self._local_capable(task), self._remote_capable(task)
        ready = {m: can_local and local_ready(self.local, task, m) for m in models}
        remote_models = [m for m in models if can_remote]
        skip = self._unserved(task, remote_models, attempts) if remote_models else set()
        first = [("local", m) if ready[m] else ("remote", m) for m in models]
        first = [(side, m) for side, m in first if side == "local" or (can_remote and m not in skip)]
        other = [("remote", m) for m in models if ready[m] and can_remote and m not in skip]
        if can_local and not ready[models[0]]:
            other.append(("local", models[0]))
        return first + other

    # -- batches ---------------------------------------------------------------------------
    def can_batch(self, task: str, model: str) -> bool:
        """Several tasks on this model can run as one batch: local mode and a runner that batches."""
        if self.mode != "local" or self.local is None or not hasattr(self.local, "run_batch"):
            return False
        from jarvis.runners.local import get_runner
        try:
            return hasattr(get_runner(task), "run_batch")
        except TaskError:
            return False

    def execute_batch(self, task: str, model: str, batch: list[TaskInputs], ctx: RunContext) -> list[Execution]:
        """One call for several inputs on one local model; raises when the batch as a whole fails."""
        start = time.perf_counter()
        outputs = self.local.run_batch(task, model, batch, ctx)
        seconds = round(time.perf_counter() - start, 3)
        return [Execution(out, model, self.local.name,
                          [{"executor": self.local.name, "model": model, "ok": True, "seconds": seconds,
                            "batch": len(batch)}]) for out in outputs]

    # -- running ---------------------------------------------------------------------------
    def execute(self, task: str, model: str, candidates: list[str], inputs: TaskInputs,
                ctx: RunContext) -> Execution:
        attempts: list[dict] = []
        models = [m for m in dict.fromkeys([model, *(candidates or [])]) if m]
        if not models:
            raise ExecutionError(f"no model to run '{task}' on", attempts)
        plan = self._plan(task, models, attempts)
        if not plan:
            raise ExecutionError(self._nothing_to_try(task), attempts)
        remote_stopped: str | None = None
        for side, model_id in plan:
            if side == "remote" and remote_stopped:
                continue
            executor = self.local if side == "local" else self.remote
            start = time.perf_counter()
            try:
                if side == "remote":
                    def on_retry(message: str, seconds: float, model: str | None = None, _m: str = model_id) -> None:
                        attempts.append({"executor": "remote", "model": model or _m, "ok": False,
                                         "error": message, "seconds": round(seconds, 3)})
                    outputs = executor.run(task, model_id, inputs, ctx, on_retry=on_retry)
                else:
                    outputs = executor.run(task, model_id, inputs, ctx)
            except Exception as exc:
                message = str(exc) or type(exc).__name__
                if isinstance(exc, MemoryError):
                    message = (f"not enough memory to run {model_id} on this machine: lower "
                               "local.memory_budget_gb, use a smaller model, or use remote mode")
                attempts.append({"executor": executor.name, "model": model_id, "ok": False,
                                 "error": message, "seconds": round(time.perf_counter() - start, 3)})
                log.info("%s on %s (%s) failed: %s", task, model_id, side, message)
                if side == "remote" and getattr(exc, "kind", None) in STOP_REMOTE:
                    remote_stopped = message
                if len(plan) > 1:
                    ctx.progress(f"{model_id} ({side}) failed: {message[:160]}; trying the next option")
                continue
            served_by = outputs.detail.get("served_by") if isinstance(outputs.detail, dict) else None
            attempts.append({"executor": executor.name, "model": served_by or model_id, "ok": True,
                             "seconds": round(time.perf_counter() - start, 3)})
            return Execution(outputs, served_by or model_id, executor.name, attempts)
        raise ExecutionError(self._summary(task, attempts), attempts)

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
    def _summary(task: str, attempts: list[dict]) -> str:
        failed = [a for a in attempts if not a["ok"]]
        if len(failed) == 1:
            return failed[0]["error"]
        last_per_try: dict[tuple[str, str], str] = {}
        for a in failed:
            last_per_try[(a["executor"], a["model"])] = a["error"]
        lines = "; ".join(f"{ex} {m}: {err[:200]}" for (ex, m), err in last_per_try.items())
        return f"'{task}' failed on every option tried ({lines})"
