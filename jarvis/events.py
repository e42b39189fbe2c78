"""Events the controller emits while it answers a request. Plain data: every consumer
(web UI, CLI, HTTP API) renders the same stream."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Event:
    def to_dict(self) -> dict:
        return {"event": type(self).__name__, **asdict(self)}


@dataclass
class PlanReady(Event):
    tasks: list[dict]           # [{"id", "task", "dep", "args"}]
    repairs: list[str]          # what the parser fixed in the LLM's plan
    seconds: float


@dataclass
class ModelChosen(Event):
    task_id: int
    task: str
    model: str
    reason: str
    candidates: list[str]


@dataclass
class TaskStarted(Event):
    task_id: int
    task: str
    model: str
    executor: str
    started: float


@dataclass
class TaskProgress(Event):
    task_id: int
    message: str


@dataclass
class TaskFinished(Event):
    task_id: int
    task: str
    outputs: dict[str, str]     # type -> text or file path
    detail: Any
    started: float
    finished: float
    attempts: list[dict] = field(default_factory=list)


@dataclass
class TaskFailed(Event):
    task_id: int
    task: str
    error: str
    started: float | None
    finished: float
    attempts: list[dict] = field(default_factory=list)


@dataclass
class TaskSkipped(Event):
    task_id: int
    task: str
    reason: str


@dataclass
class AnswerDelta(Event):
    text: str


@dataclass
class Done(Event):
    result: dict                # the full record: the CLI's --json object


@dataclass
class Failed(Event):
    """The request as a whole could not be answered (bad key, LLM unreachable...)."""
    message: str
