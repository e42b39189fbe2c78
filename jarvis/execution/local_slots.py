"""A limit on local inference in a server: at most `slots` local runs at once, whatever the number
of requests, because one machine's CPU/GPU memory is shared by all of them.

The slot is taken around the local call alone (loading the model and running it), never around a
request's LLM calls or its remote tasks, so a request stalled on its LLM endpoint blocks nobody.
A task waiting for a slot stops waiting when it is cancelled (timed out or stopped by the user).
With local.backend: ray, local tasks run on Ray Serve replicas and take no slot: the replicas are the
limit (`local_executor` picks the executor for the config).
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from jarvis.config import LocalConfig
from jarvis.execution.executor import Executor
from jarvis.execution.local import LocalExecutor
from jarvis.execution.ray.executor import RayExecutor
from jarvis.runners.base import RunContext, TaskInputs, TaskOutputs

WAIT_POLL = 0.25        # seconds between looks at the task's cancel flag while waiting for a slot


class SlotLimitedExecutor:
    """An executor whose runs take one of `slots` slots; it forwards everything else unchanged."""

    def __init__(self, inner: Executor, slots: int = 1):
        self.inner = inner
        self.name = inner.name
        self.slots = max(1, int(slots))
        self._sem = threading.BoundedSemaphore(self.slots)

    def can_run(self, task: str) -> bool:
        return self.inner.can_run(task)

    def ready(self, task: str, model_id: str) -> bool:
        return self.inner.ready(task, model_id)

    def batches(self, task: str) -> bool:
        return self.inner.batches(task)

    @contextmanager
    def _slot(self, ctx: RunContext) -> Iterator[None]:
        if not self._sem.acquire(blocking=False):
            ctx.progress("waiting for the local model worker: another request is using it")
            while not self._sem.acquire(timeout=WAIT_POLL):
                ctx.raise_if_cancelled()
        try:
            ctx.raise_if_cancelled()
            yield
        finally:
            self._sem.release()

    def run(self, task: str, model_id: str, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        with self._slot(ctx):
            return self.inner.run(task, model_id, inputs, ctx)

    def run_batch(self, task: str, model_id: str, batch: list[TaskInputs], ctx: RunContext) -> list[TaskOutputs]:
        with self._slot(ctx):
            return self.inner.run_batch(task, model_id, batch, ctx)

    def close(self) -> None:
        self.inner.close()


def local_executor(local: LocalConfig, slots: int | None = None) -> Executor:
    """The executor of local tasks the config names: in-process (behind `slots` slots when given, as in
    a server), or on Ray Serve (local.backend: ray), which is never held behind a slot."""
    if local.backend == "ray":
        return RayExecutor.from_config(local)
    executor = LocalExecutor.from_config(local)
    return executor if slots is None else SlotLimitedExecutor(executor, slots)
