"""The contract every task runner keeps: inputs by resource type in, outputs by resource type out.

A runner is stateless. `load` builds what a model needs (pipeline, model + processor...) once;
the model cache keeps the result and hands it back to `run` for every call. torch and
transformers are imported inside `load`/`run`, never at module import, so the app starts fast.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


class TaskError(Exception):
    """A task could not run; the message tells the user what went wrong and what to do."""


@dataclass
class TaskInputs:
    """Resolved inputs of one task, in the order the task type declares them."""
    text: list[str] = field(default_factory=list)
    image: list[Path] = field(default_factory=list)
    audio: list[Path] = field(default_factory=list)
    video: list[Path] = field(default_factory=list)

    def first(self, rtype: str):
        values = getattr(self, rtype)
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
    detail: Any = None  # structured result (labels, scores, boxes) for the record, JSON-serialisable

    def as_dict(self) -> dict[str, str]:
        return {k: str(v) for k in ("text", "image", "audio", "video") if (v := getattr(self, k)) is not None}


@dataclass
class Device:
    """Where a model runs: "cuda", "mps" or "cpu"; half precision only on a GPU."""
    name: str = "cpu"
    half: bool = False


@dataclass
class RunContext:
    device: Device
    new_file: Callable[[str, str], Path]          # (stem, suffix like ".png") -> unique path in the session dir
    progress: Callable[[str], None] = lambda message: None
    options: dict = field(default_factory=dict)   # per-task knobs from config (max_new_tokens, steps...)


class Runner(Protocol):
    task: str

    def load(self, model_id: str, device: Device) -> Any: ...

    def run(self, loaded: Any, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs: ...
