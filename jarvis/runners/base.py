"""What the local runners and remote adapters share: inputs and outputs by resource type, the device,
the run context, and the Runner base class whose capabilities are declared class attributes.

A runner is stateless. `load` builds what a model needs (pipeline, model + processor...) once;
the model cache keeps the result and hands it back to `run` for every call. torch and
transformers are imported inside `load`/`run`, never at module import, so the app starts fast.
"""
from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, overload

from jarvis.errors import TaskError
from jarvis.runners.options import RunOptions


@dataclass
class TaskInputs:
    """Resolved inputs of one task, in the order the task type declares them."""
    text: list[str] = field(default_factory=list)
    image: list[Path] = field(default_factory=list)
    audio: list[Path] = field(default_factory=list)
    video: list[Path] = field(default_factory=list)

    @overload
    def first(self, rtype: Literal["text"]) -> str: ...

    @overload
    def first(self, rtype: Literal["image", "audio", "video"]) -> Path: ...

    def first(self, rtype: str) -> str | Path:
        """The first input of a resource type; a TaskError when the task got none."""
        values: list[str] | list[Path] = getattr(self, rtype)
        if not values:
            raise TaskError(f"this task needs a {rtype} input and got none")
        return values[0]


@dataclass
class TaskOutputs:
    """What a task produced: text as str, media as a Path inside the session's directory."""
    text: str | None = None
    image: Path | None = None
    audio: Path | None = None
    video: Path | None = None
    # JSON-serialisable structured result, one shape whether the task ran locally or remotely (or None):
    # a dict whose result keys are the same on both sides - "labels" [{label, score}] (classification),
    # "entities" (token classification), "objects" [{label, score, box}], "segments" [{label, score}],
    # "answers" [{answer, score}] (visual and document QA), "answer"/"score"/"start"/"end" (extractive QA),
    # "similarity", "summary", "translation", "reply", "continuation", "generated_text", "caption";
    # its other keys say how it ran (truncated, seconds, served_by...)
    detail: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, str]:
        return {k: str(v) for k in ("text", "image", "audio", "video") if (v := getattr(self, k)) is not None}


@dataclass
class Device:
    """Where a model runs: "cuda", "mps" or "cpu"; half precision only on a GPU."""
    name: str = "cpu"
    half: bool = False


@dataclass
class RunContext:
    """What a run may use besides its inputs: the device, where to write files, progress, options,
    and a cancel flag the scheduler sets when the task timed out or the user stopped the run."""
    device: Device
    new_file: Callable[[str, str], Path]          # (stem, suffix like ".png") -> unique path in the session dir
    progress: Callable[[str], None] = lambda message: None
    options: RunOptions = field(default_factory=RunOptions)
    # told of each failed call an executor retried or worked around (message, seconds, model), for the record
    on_retry: Callable[[str, float, str], None] = lambda message, seconds, model: None
    # set from outside; runners that loop (audio blocks and pieces, diffusion steps) check it between steps,
    # since a thread cannot be killed and a timed-out task must not run on for minutes
    cancel: threading.Event = field(default_factory=threading.Event)

    def raise_if_cancelled(self) -> None:
        """Raise TaskError when the task was cancelled; called between a runner's steps."""
        if self.cancel.is_set():
            raise TaskError("stopped before it finished: the task timed out (inference.task_timeout) "
                            "or the run was stopped")


class Runner(ABC):
    """The local runner of one task type. Its capabilities are class attributes, read directly:

    task      the task type it serves; the registry's entry for that task names this class
    family    loads are cached per (family, model id): task types of one family share a model's
              load ("causal-lm": text-generation and conversational); "" = the task's own
    batching  run_batch takes several inputs in one model call, so the scheduler groups them
    builtin   needs no model: load returns None and the planner's task needs no candidate
    """
    task: ClassVar[str] = ""
    family: ClassVar[str] = ""
    batching: ClassVar[bool] = False
    builtin: ClassVar[bool] = False

    def cache_key(self, model_id: str) -> tuple[str, str]:
        """The model cache's key for a load of model_id by this runner."""
        return (self.family or self.task, model_id)

    @abstractmethod
    def load(self, model_id: str, device: Device) -> Any:
        """Build what the model needs on the device (once: the model cache keeps it)."""

    @abstractmethod
    def run(self, loaded: Any, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        """Run one task's inputs on the loaded model."""

    def run_batch(self, loaded: Any, batch: list[TaskInputs], ctx: RunContext) -> list[TaskOutputs]:
        """One output per input, in order; one input at a time unless a runner that batches overrides it."""
        return [self.run(loaded, inputs, ctx) for inputs in batch]
