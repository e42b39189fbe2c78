"""Stage 4: the answer. The LLM reads the request, the plan, the choices and the results
(trimmed to what an answer needs) and answers, streamed. Without a plan it just chats."""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from jarvis.llm import prompts
from jarvis.llm.client import LLM, Usage

MAX_TEXT = 600


def _trim(value: str, limit: int = MAX_TEXT) -> str:
    value = str(value)
    return value if len(value) <= limit else value[:limit] + f"... [{len(value) - limit} more characters]"


def workflow_summary(records: list[dict]) -> list[dict]:
    """Compact per-task results for the answer prompt: file outputs by name, texts trimmed."""
    out = []
    for r in records:
        item = {"id": r["id"], "task": r["task"], "model": r.get("model"), "status": r["status"]}
        outputs = {}
        for rtype, value in (r.get("outputs") or {}).items():
            outputs[rtype] = _trim(value) if rtype == "text" else Path(value).name
        if outputs:
            item["outputs"] = outputs
        if r.get("error"):
            item["error"] = _trim(r["error"], 300)
        out.append(item)
    return out


def answer_messages(request: str, records: list[dict], history: list[dict]) -> list[dict]:
    results = json.dumps(workflow_summary(records), ensure_ascii=False, separators=(",", ":"))
    return [{"role": "system", "content": prompts.load("respond")},
            *history,
            {"role": "user", "content": f"Request: {request}\nResults: {results}"}]


def chat_messages(request: str, history: list[dict]) -> list[dict]:
    return [{"role": "system", "content": prompts.load("chat")}, *history, {"role": "user", "content": request}]


def stream_answer(llm: LLM, messages: list[dict], usage: Usage, max_tokens: int) -> Iterator[str]:
    yield from llm.stream(messages, usage, max_tokens=max_tokens)


def fallback_answer(records: list[dict], why: str) -> str:
    """An answer built without the LLM, so results are never lost when the last call fails."""
    lines = [f"I could not write the final answer ({why}). Here are the results:"]
    for item in workflow_summary(records):
        outputs = ", ".join(f"{k}: {v}" for k, v in (item.get("outputs") or {}).items())
        detail = outputs or item.get("error") or item["status"]
        lines.append(f"- task {item['id']} {item['task']} ({item.get('model') or 'no model'}): {detail}")
    return "\n".join(lines)
