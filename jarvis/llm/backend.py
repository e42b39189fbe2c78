"""The LLM backend contract: `complete` and `stream` over chat messages, usage counted per call.

Two backends implement it: jarvis.llm.client.LLM (the `openai` SDK against any OpenAI-compatible
server) and jarvis.llm.embedded.EmbeddedLLM (a small open model inside Jarvis, with transformers).
The pipeline sees only this protocol; tests use tests/fakes/fake_llm.FakeLLM.

A call may carry an `OutputSchema`: the shape its answer must have (a plan, the model choices).
The embedded backend decodes under it, so the answer is valid as generated; a server that takes
`response_format` gets its JSON schema.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from jarvis.config import Config

Backend = Literal["openai", "local"]


NoteKind = Literal["milestone", "progress"]


@dataclass(frozen=True)
class Note:
    """What the LLM is doing before it can write, as its emitter says: a "milestone" (loading, loaded)
    is shown whatever follows; a "progress" note (a download's figures) is outdated by the next one
    from the same `source` (the model it is about)."""
    text: str
    kind: NoteKind = "milestone"
    source: str = ""


@dataclass
class Usage:
    """LLM calls and tokens of one request, added to by every call (thread-safe)."""
    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    _notes: list[Note] = field(default_factory=list, repr=False, compare=False)

    def note(self, text: str, kind: NoteKind = "milestone", source: str = "") -> None:
        """What the LLM is doing before it can write (the embedded model's download and load): the
        run shows it as progress. Every note is kept until it is shown, except that a progress note
        replaces the previous progress note of the same source not shown yet (newer figures)."""
        with self._lock:
            if kind == "progress":
                self._notes = [n for n in self._notes if n.kind != "progress" or n.source != source]
            self._notes.append(Note(text, kind, source))

    def take_notes(self) -> list[Note]:
        """The notes given since the last look, oldest first."""
        with self._lock:
            notes, self._notes = self._notes, []
            return notes

    def add(self, prompt: Any, completion: Any) -> None:
        with self._lock:
            self.llm_calls += 1
            self.prompt_tokens += _count(prompt)
            self.completion_tokens += _count(completion)

    def as_dict(self) -> dict[str, int]:
        return {"llm_calls": self.llm_calls, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens}


def _count(value: Any) -> int:
    """A token count from a server's usage block; anything malformed counts as 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return 0
    return max(0, min(int(value), 10**12)) if abs(value) != float("inf") else 0


class OutputSchema(Protocol):
    """The shape an answer must have, for both kinds of backend.

    `json_schema()` is what an OpenAI-compatible server gets as `response_format`. The embedded
    backend decodes under `grammar(done, budget)`, a Lark grammar (llguidance's dialect) of every
    valid answer that starts with `done`, whose literals are short enough to finish within `budget`
    more tokens. `checkpoint(text)` says how much of a partial answer is settled: when it grows, the
    grammar is built again from there (a plan's later tasks may refer only to earlier outputs of the
    right type, which are known once those tasks are written)."""

    @property
    def name(self) -> str:
        """What the answer is ("plan", "model_choice"): response_format's name."""
        ...

    def json_schema(self) -> dict[str, Any]: ...

    def grammar(self, done: str, budget: int) -> str: ...

    def checkpoint(self, text: str) -> int: ...


class LLMBackend(Protocol):
    """Where the LLM runs. Every call adds to `usage`; failures raise jarvis.errors.LLMError with a
    message that says what to do."""

    def complete(self, messages: list[dict[str, Any]], usage: Usage, *, max_tokens: int | None = None,
                 temperature: float | None = None, schema: OutputSchema | None = None) -> str:
        """The whole answer."""
        ...

    def stream(self, messages: list[dict[str, Any]], usage: Usage, *, max_tokens: int | None = None,
               schema: OutputSchema | None = None) -> Iterator[str]:
        """The answer as text deltas, as they are generated."""
        ...


def backend_for(config: Config) -> Backend:
    """Which backend a configuration asks for: llm.backend when it names one; with "auto", the
    embedded LLM when nothing points at a server (no OpenAI key, no Hugging Face token, no base URL),
    else the OpenAI-compatible client."""
    if config.llm.backend == "openai":
        return "openai"
    if config.llm.backend == "local":
        return "local"
    creds = config.credentials
    hosted = config.llm.base_url.strip() or creds.openai_api_key or creds.hf_token
    return "openai" if hosted else "local"
