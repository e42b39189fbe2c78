"""Stage 4: the answer. The LLM reads the request, the plan, the choices and the results
(trimmed to what an answer needs) and answers, streamed. Without a plan it just chats."""
from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from jarvis.llm import prompts
from jarvis.pipeline.records import TaskRecord

MAX_TEXT = 600

Message = dict[str, Any]   # one chat message as the LLM takes it: {"role", "content"}


def _trim(value: str, limit: int = MAX_TEXT) -> str:
    value = str(value)
    return value if len(value) <= limit else value[:limit] + f"... [{len(value) - limit} more characters]"


def _shown_outputs(record: TaskRecord) -> dict[str, str]:
    """A task's outputs as the answer sees them: texts trimmed, files by name."""
    return {rtype: _trim(value) if rtype == "text" else Path(value).name for rtype, value in record.outputs.items()}


def workflow_summary(records: Sequence[TaskRecord]) -> list[dict[str, Any]]:
    """Compact per-task results for the answer prompt (JSON): file outputs by name, texts trimmed."""
    out: list[dict[str, Any]] = []
    for r in records:
        item: dict[str, Any] = {"id": r.id, "task": r.task, "model": r.model, "status": r.status}
        outputs = _shown_outputs(r)
        if outputs:
            item["outputs"] = outputs
        if r.error:
            item["error"] = _trim(r.error, 300)
        out.append(item)
    return out


def answer_messages(request: str, records: Sequence[TaskRecord], history: list[Message]) -> list[Message]:
    results = json.dumps(workflow_summary(records), ensure_ascii=False, separators=(",", ":"))
    return [{"role": "system", "content": prompts.load("respond")},
            *history,
            {"role": "user", "content": f"Request: {request}\nResults: {results}"}]


def chat_messages(request: str, history: list[Message]) -> list[Message]:
    return [{"role": "system", "content": prompts.load("chat")}, *history, {"role": "user", "content": request}]


def fallback_answer(records: Sequence[TaskRecord], why: str) -> str:
    """An answer built without the LLM, so results are never lost when the last call fails."""
    lines = [f"I could not write the final answer ({why}). Here are the results:"]
    for r in records:
        outputs = ", ".join(f"{k}: {v}" for k, v in _shown_outputs(r).items())
        detail = outputs or (_trim(r.error, 300) if r.error else "") or r.status
        lines.append(f"- task {r.id} {r.task} ({r.model or 'no model'}): {detail}")
    return "\n".join(lines)


def without_reasoning(deltas: Iterable[str]) -> Iterator[str]:
    """The answer's deltas without a leading <think>...</think> block (a reasoning model served without
    a reasoning parser): the user gets the answer, not the thoughts. An unclosed block yields nothing."""
    opening, closing = "<think>", "</think>"
    stream = iter(deltas)
    held = ""
    for delta in stream:
        held += delta
        start = held.lstrip()
        if opening.startswith(start):      # may still become the opening tag
            continue
        if not start.startswith(opening):
            yield held
            break
        end = held.find(closing)
        if end >= 0:
            rest: str | None = held[end + len(closing):].lstrip()
            while rest == "":              # the blank lines after the block are not part of the answer
                following = next(stream, None)
                rest = None if following is None else following.lstrip()
            if rest:
                yield rest
            break
    else:
        if held and not held.lstrip().startswith(opening):
            yield held
        return
    yield from stream
