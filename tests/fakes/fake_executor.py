"""FakeExecutor: the Executor contract (jarvis.execution.executor) with the work done by a handler.

`FakeExecutor(handler)` runs every task as `handler(task, model_id, inputs, ctx)`; it records each
call, and batches the task types it is told to, so scheduler and dispatcher specs need no model.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Collection

from jarvis.runners.base import RunContext, TaskInputs, TaskOutputs

Handler = Callable[[str, str, TaskInputs, RunContext], TaskOutputs]


def echo(task: str, model_id: str, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
    """A handler that answers every task with a text naming the task, the model and its text inputs."""
    return TaskOutputs(text=f"{task} by {model_id}: {' | '.join(inputs.text)}", detail={"model": model_id})


class FakeExecutor:
    """An Executor whose runs call `handler`; `calls` lists (task, model, inputs) in call order and
    `batch_calls` (task, model, batch size) for each run_batch."""

    def __init__(self, handler: Handler = echo, *, name: str = "local", tasks: Collection[str] | None = None,
                 ready: bool = True, batching: Collection[str] = ()):
        self.name = name
        self.handler = handler
        self._tasks = tasks              # None: every task type
        self._ready = ready
        self._batching = set(batching)
        self._lock = threading.Lock()
        self.calls: list[tuple[str, str, TaskInputs]] = []
        self.batch_calls: list[tuple[str, str, int]] = []
        self.closed = False

    def can_run(self, task: str) -> bool:
        return self._tasks is None or task in self._tasks

    def ready(self, task: str, model_id: str) -> bool:
        return self._ready

    def batches(self, task: str) -> bool:
        return task in self._batching

    def run(self, task: str, model_id: str, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        with self._lock:
            self.calls.append((task, model_id, inputs))
        return self.handler(task, model_id, inputs, ctx)

    def run_batch(self, task: str, model_id: str, batch: list[TaskInputs], ctx: RunContext) -> list[TaskOutputs]:
        with self._lock:
            self.batch_calls.append((task, model_id, len(batch)))
        return [self.handler(task, model_id, inputs, ctx) for inputs in batch]

    def close(self) -> None:
        self.closed = True
