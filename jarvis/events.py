"""Events the controller emits while it answers a request. Plain data: every consumer (web UI, CLI,
HTTP API) renders the same stream. A task's end carries its typed record; the run's end, the result."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from jarvis.pipeline.plan import Task
from jarvis.pipeline.records import RunResult, TaskRecord


@dataclass
class Event:
    def to_dict(self) -> dict[str, Any]:
        """The event as plain data, for logs and replay."""
        return {"event": type(self).__name__, **asdict(self)}


@dataclass
class PlanReady(Event):
    tasks: list[Task]           # the validated plan; a task that cannot run carries its `error`
    repairs: list[str]          # what the parser fixed in the LLM's plan
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"event": "PlanReady", "tasks": [t.to_dict() for t in self.tasks], "repairs": list(self.repairs),
                "seconds": self.seconds}


@dataclass
class TaskPlanned(Event):
    """A task the plan's stream has written, before the plan is whole: its object closed, and the
    tasks it uses are already planned. It starts now when its model is settled; the plan may still
    mark it at the end (PlanReady has the final word on what did not run)."""
    task: Task
    seconds: float              # since the request began

    def to_dict(self) -> dict[str, Any]:
        return {"event": "TaskPlanned", "task": self.task.to_dict(), "seconds": self.seconds}


@dataclass
class LLMProgress(Event):
    """The LLM is writing (or, with no token yet, thinking about) one call's answer; or, with a note,
    getting ready to (the embedded LLM's first download and its load)."""
    stage: str                  # "plan", "select" or "answer"
    tokens: int                 # chunks received so far: about one token each (0: none yet)
    seconds: float              # since the call began
    note: str = ""              # "downloading ORG/NAME: 312 MB of 988 MB (32%)...", "loaded ORG/NAME in 4.1 s"
    note_kind: str = ""         # the note's: "milestone", or "progress" (a download's figures, outdated by the next)


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
    executor: str               # the inference mode it was dispatched in: local, remote or hybrid
    started: float


@dataclass
class TaskProgress(Event):
    task_id: int
    message: str


@dataclass
class TaskEnded(Event):
    """A task reached its final state; `record` says how (status, outputs or error, attempts)."""
    record: TaskRecord

    @property
    def task_id(self) -> int:
        return self.record.id

    def to_dict(self) -> dict[str, Any]:
        return {"event": type(self).__name__, "record": self.record.to_dict()}


@dataclass
class TaskFinished(TaskEnded):
    """The task produced its outputs (record.status "done")."""


@dataclass
class TaskFailed(TaskEnded):
    """Every way of running the task failed; record.error says why."""


@dataclass
class TaskSkipped(TaskEnded):
    """The task did not run (a task it needs failed, or the user stopped); record.error says why."""


@dataclass
class AnswerDelta(Event):
    text: str


@dataclass
class Done(Event):
    result: RunResult

    def to_dict(self) -> dict[str, Any]:
        return {"event": "Done", "result": self.result.to_dict()}


@dataclass
class Failed(Event):
    """The request as a whole could not be answered (bad key, LLM unreachable...)."""
    message: str
