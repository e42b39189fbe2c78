"""Typed records of a run: each attempt at running a task, each task's record, the run's result.

They travel in the controller's events and front ends read their attributes. `to_dict()` is the one
place they become plain JSON-ready dicts, for the edges: the CLI's `--json`, the HTTP API, logs.
The keys of those dicts are the documented `--json` fields (README, "Command line").
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

TaskStatus = Literal["pending", "running", "done", "failed", "skipped"]
ENDED: frozenset[TaskStatus] = frozenset({"done", "failed", "skipped"})


def json_safe(value: Any) -> Any:
    """`value` as plain JSON data: anything JSON cannot hold (a Path, numpy scalars) as its str()."""
    return json.loads(json.dumps(value, default=str))


@dataclass(frozen=True)
class Attempt:
    """One try at running a task: on which executor and model, whether it worked, how long it took."""
    executor: str                # the executor's name: "local", "remote"...
    model: str
    ok: bool
    seconds: float
    error: str | None = None     # why it failed; None when it worked
    batch: int | None = None     # how many inputs shared the call, when several ran as one batch

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"executor": self.executor, "model": self.model, "ok": self.ok}
        if self.error is not None:
            out["error"] = self.error
        out["seconds"] = self.seconds
        if self.batch is not None:
            out["batch"] = self.batch
        return out


@dataclass
class TaskRecord:
    """One planned task from plan to end: model and why, where it ran, outputs, every attempt.

    `outputs` maps a resource type ("text", "image", "audio", "video") to the text or the file path;
    `detail` is the runner's structured result (labels, scores, boxes...), the same keys whether the
    task ran locally or remotely. Times are seconds since the request began."""
    id: int
    task: str
    dep: list[int]
    args: dict[str, str | list[str]]
    model: str | None = None
    reason: str | None = None
    executor: str | None = None
    status: TaskStatus = "pending"
    outputs: dict[str, str] = field(default_factory=dict)
    detail: dict[str, Any] | None = None
    error: str | None = None     # why it failed, or why it was skipped
    started: float | None = None
    finished: float | None = None
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def seconds(self) -> float | None:
        """How long the task ran; None when it never started or has not ended."""
        if self.started is None or self.finished is None:
            return None
        return max(0.0, self.finished - self.started)

    def files(self) -> list[tuple[str, Path]]:
        """The (resource type, path) of every file the task produced."""
        return [(rtype, Path(value)) for rtype, value in self.outputs.items() if rtype != "text"]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "task": self.task, "dep": list(self.dep), "args": dict(self.args),
                "model": self.model, "reason": self.reason, "executor": self.executor, "status": self.status,
                "outputs": dict(self.outputs), "detail": json_safe(self.detail), "error": self.error,
                "started": self.started, "finished": self.finished,
                "attempts": [a.to_dict() for a in self.attempts]}


@dataclass(frozen=True)
class LLMUsage:
    """What the run cost in LLM calls and tokens."""
    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"llm_calls": self.llm_calls, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens}


@dataclass
class StageTimings:
    """Seconds spent in each stage, and in all."""
    plan: float = 0.0
    select: float = 0.0
    execute: float = 0.0
    respond: float = 0.0
    total: float = 0.0

    def to_dict(self) -> dict[str, float]:
        return {"plan": self.plan, "select": self.select, "execute": self.execute, "respond": self.respond,
                "total": self.total}


@dataclass
class RunResult:
    """A finished request: what was asked and attached, each task's record, the answer, the cost."""
    request: str
    files: list[str]                     # names of the files attached to the request
    tasks: list[TaskRecord]              # in plan order
    plan_repairs: list[str]              # what the plan parser fixed in the LLM's plan
    answer: str
    usage: LLMUsage
    timings: StageTimings

    def generated(self) -> list[tuple[TaskRecord, str, Path]]:
        """(record, resource type, path) of every file the tasks produced."""
        return [(record, rtype, path) for record in self.tasks for rtype, path in record.files()]

    def to_dict(self) -> dict[str, Any]:
        """The CLI's `--json` object."""
        return {"request": self.request, "files": list(self.files), "tasks": [t.to_dict() for t in self.tasks],
                "plan_repairs": list(self.plan_repairs), "answer": self.answer, "usage": self.usage.to_dict(),
                "timings": self.timings.to_dict()}
