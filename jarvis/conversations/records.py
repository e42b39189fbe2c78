"""What the conversation store holds, as plain dataclasses: a conversation, each turn of it (the
person's messages, what the assistant showed: plan, steps, answer, media, and the run's task
records), and the files it owns. Chat messages are Gradio's messages format (dicts); file paths
inside the conversation's folder are kept relative to it, so the folder can move."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

TurnStatus = Literal["running", "done", "failed", "interrupted"]
RUNNING: TurnStatus = "running"
INTERRUPTED_NOTE = ("⚠️ **Interrupted:** the app stopped or restarted before this request finished. "
                    "What it had done is above; send the request again to finish it.")


@dataclass(frozen=True)
class Conversation:
    """One conversation as the side panel lists it."""
    id: str
    title: str
    created: float
    updated: float      # last activity: a turn, a rename, an open


@dataclass
class StoredTurn:
    """One request and what it produced. `user` and `messages` are chat messages (the person's, the
    assistant's); `history` the messages the LLM sees of it in later turns; `record` the run's
    RunResult.to_dict() when it ended with one."""
    id: int
    status: TurnStatus
    request: str
    user: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    record: dict[str, Any] | None = None
    started: float = 0.0
    finished: float | None = None

    def display(self) -> list[dict[str, Any]]:
        """The turn as the chat shows it; an interrupted one ends with a note saying so."""
        shown = self.user + self.messages
        if self.status == "interrupted":
            shown = shown + [{"role": "assistant", "content": INTERRUPTED_NOTE}]
        return shown


@dataclass(frozen=True)
class StoredFile:
    """A file of a conversation: its name as the planner knows it, its path relative to the
    conversation's folder, its media type and where it came from (upload, generated, url)."""
    name: str
    path: str
    type: str
    origin: str


def relative_messages(messages: list[dict[str, Any]], root: Path) -> list[dict[str, Any]]:
    """Messages with each media path inside `root` made relative to it (for storing)."""
    return [_with_path(m, lambda p: _relative(p, root)) for m in messages]


def absolute_messages(messages: list[dict[str, Any]], root: Path) -> list[dict[str, Any]]:
    """Stored messages with relative media paths resolved under `root` again."""
    return [_with_path(m, lambda p: p if Path(p).is_absolute() else str(root / p)) for m in messages]


def _relative(path: str, root: Path) -> str:
    p = Path(path)
    return str(p.relative_to(root)) if p.is_absolute() and p.is_relative_to(root) else path


def _with_path(message: dict[str, Any], change: Any) -> dict[str, Any]:
    content = message.get("content")
    if isinstance(content, dict) and isinstance(content.get("path"), str):
        return {**message, "content": {**content, "path": change(content["path"])}}
    return message
