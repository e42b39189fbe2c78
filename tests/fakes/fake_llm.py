"""FakeLLM: the LLM client's contract (`complete`, `stream`, usage counted per call) with answers
queued per stage, for specifications that need no HTTP.

The stage of a call (plan, select, respond, chat) is read from its prompt: the first line of its
first message is the first line of that stage's template in jarvis/llm/prompts. A queued answer is
a text, a callable taking the messages, or an exception to raise (an LLMError, say). The last
answer of a stage is reused once its queue is down to it.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

from jarvis.llm import prompts
from jarvis.llm.backend import OutputSchema, Usage

STAGES = ("plan", "select", "respond", "chat")
Answer = str | Callable[[list[dict[str, Any]]], str] | BaseException


def stage_of(messages: list[dict[str, Any]]) -> str:
    """Which stage's prompt these messages carry; ValueError when none."""
    first = str(messages[0].get("content", "")).splitlines()[0] if messages else ""
    for stage in STAGES:
        if prompts.load(stage).splitlines()[0] == first:
            return stage
    raise ValueError(f"no stage's prompt starts with {first[:80]!r}")


def _tokens(text: str) -> int:
    return len(text.split())


class FakeLLM:
    """`FakeLLM(plan="[...]", select=..., respond="...", chat="...")`; `calls` holds (stage, messages),
    `schemas` the OutputSchema each stage's last call asked for (None: free text)."""

    def __init__(self, **answers: Answer | list[Answer]):
        unknown = set(answers) - set(STAGES)
        if unknown:
            raise TypeError(f"unknown stage(s) {sorted(unknown)}; the stages are {', '.join(STAGES)}")
        self._queues: dict[str, list[Answer]] = {
            stage: list(value) if isinstance(value, list) else [value] for stage, value in answers.items()}
        self._lock = threading.Lock()
        self.calls: list[tuple[str, list[dict[str, Any]]]] = []
        self.schemas: dict[str, OutputSchema | None] = {}

    def stages(self) -> list[str]:
        """The stage of each call so far, in order."""
        return [stage for stage, _ in self.calls]

    def _answer(self, messages: list[dict[str, Any]], schema: OutputSchema | None) -> str:
        stage = stage_of(messages)
        with self._lock:
            self.calls.append((stage, messages))
            self.schemas[stage] = schema
            queue = self._queues.get(stage)
            if not queue:
                raise AssertionError(f"FakeLLM has no answer queued for the {stage} stage")
            answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(answer, BaseException):
            raise answer
        return answer(messages) if callable(answer) else answer

    def complete(self, messages: list[dict[str, Any]], usage: Usage, *, max_tokens: int | None = None,
                 temperature: float | None = None, schema: OutputSchema | None = None) -> str:
        """The next answer of the messages' stage, counted in `usage` like a real call."""
        text = self._answer(messages, schema)
        usage.add(sum(_tokens(str(m.get("content", ""))) for m in messages), _tokens(text))
        return text

    def stream(self, messages: list[dict[str, Any]], usage: Usage, *, max_tokens: int | None = None,
               schema: OutputSchema | None = None) -> Iterator[str]:
        """The next answer of the messages' stage, word by word."""
        text = self._answer(messages, schema)
        try:
            for i, word in enumerate(text.split(" ")):
                yield word if i == 0 else " " + word
        finally:
            usage.add(sum(_tokens(str(m.get("content", ""))) for m in messages), _tokens(text))
