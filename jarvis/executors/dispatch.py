"""Chooses where a task runs (local, remote, hybrid) and records each attempt.

The scheduler calls `Dispatcher.execute` once per task; everything about retries, fallbacks
to the next candidate and to the other side lives here, so the record shows each attempt.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..tasks.base import RunContext, TaskError, TaskInputs, TaskOutputs


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
    """Local-only dispatch; remote and hybrid modes plug in an extra executor."""

    def __init__(self, mode: str, local, remote=None):
        self.mode = mode
        self.local = local
        self.remote = remote

    def execute(self, task: str, model: str, candidates: list[str], inputs: TaskInputs,
                ctx: RunContext) -> Execution:
        attempts: list[dict] = []
        executor = self.remote if self.mode == "remote" else self.local
        if executor is None:
            raise ExecutionError(f"no executor for mode {self.mode}", attempts)
        start = time.perf_counter()
        try:
            outputs = executor.run(task, model, inputs, ctx)
        except Exception as exc:  # noqa: BLE001 - every failure becomes the task's message
            attempts.append({"executor": executor.name, "model": model, "ok": False,
                             "error": str(exc), "seconds": round(time.perf_counter() - start, 3)})
            raise ExecutionError(str(exc), attempts) from exc
        attempts.append({"executor": executor.name, "model": model, "ok": True,
                         "seconds": round(time.perf_counter() - start, 3)})
        return Execution(outputs, model, executor.name, attempts)
