"""The Executor contract: where a task runs (this machine, Inference Providers, Gradio Spaces, later Ray).

The dispatcher is the only caller and sees executors only through this protocol. The controller
creates the executors a run needs and closes them. An executor reports failures by raising
(TaskError and its subclasses say what to do next); a failed call it retried or worked around is
reported to `ctx.on_retry`, so the task's record lists it.
"""
from __future__ import annotations

from typing import Protocol

from jarvis.runners.base import RunContext, TaskInputs, TaskOutputs


class Executor(Protocol):
    """Runs one task type on one model; `name` goes into each attempt's record ("local", "remote")."""
    name: str

    def can_run(self, task: str) -> bool:
        """This executor has a way to run this task type at all (a runner, a remote service)."""
        ...

    def ready(self, task: str, model_id: str) -> bool:
        """A call would start now, without first fetching the model (hybrid mode prefers these)."""
        ...

    def batches(self, task: str) -> bool:
        """Several inputs of this task type on one model are worth one `run_batch` call."""
        ...

    def run(self, task: str, model_id: str, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        """Run the task on the model; raises TaskError (or a subclass) when it cannot."""
        ...

    def run_batch(self, task: str, model_id: str, batch: list[TaskInputs], ctx: RunContext) -> list[TaskOutputs]:
        """One output per input, in order; raises when the batch as a whole fails."""
        ...

    def close(self) -> None:
        """Release what the executor holds (connections, loaded models); it is not used afterwards."""
        ...


class RoutedExecutor(Executor, Protocol):
    """An executor of particular catalog entries only (a Gradio Space runs each): the dispatcher
    sends it those entries, at their rank among the candidates, and no others."""

    def serves(self, task: str, model_id: str) -> bool:
        """This catalog entry (task type, id) runs here."""
        ...
