"""Reading what an OpenAI-compatible server sends back: the text deltas of each stream chunk, or of a
completion that came as one JSON body, and a tally of what has come (usage counts, whether the first
token came, whether the answer finished). Parsed without validation: every level is checked, because
a malformed answer can be anything."""
from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from jarvis.errors import LLMError


@dataclass
class Received:
    """What one call's stream has brought so far."""
    prompt: Any = 0
    completion: Any = None          # the usage block's count; None until one comes
    chunks: int = 0                 # text chunks (about one token each), the count when no usage block comes
    answered: bool = False          # the server sent something readable at all
    readable: bool = False          # a chunk in the chat-completion shape came
    started: bool = False           # the first token came (text or reasoning): no retry from here on
    finished: bool = False          # a finish_reason came: the answer is whole


class Whole:
    """A completion that came as one JSON body instead of a stream."""

    def __init__(self, body: bytes):
        self.body = body


def text_of(content: Any) -> str | None:
    """The assistant's text: a string, or a list of content parts; None when malformed."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p if isinstance(p, str) else p.get("text") if isinstance(p, dict) else getattr(p, "text", None)
                 for p in content]
        return "".join(p for p in parts if isinstance(p, str))
    return None


def chunk_texts(chunk: Any, got: Received) -> Iterator[str]:
    """The text deltas of one stream chunk."""
    u = getattr(chunk, "usage", None)
    if u:
        got.prompt, got.completion = getattr(u, "prompt_tokens", 0), getattr(u, "completion_tokens", 0)
    choices = getattr(chunk, "choices", None)
    for choice in choices if isinstance(choices, list) else []:
        delta = getattr(choice, "delta", None)
        got.readable = got.readable or delta is not None and not isinstance(delta, (str, dict, list))
        got.finished = got.finished or bool(getattr(choice, "finish_reason", None))
        text = getattr(delta, "content", None) if delta else None
        thought = getattr(delta, "reasoning_content", None) or getattr(delta, "reasoning", None) if delta else None
        if isinstance(thought, str) and thought:
            got.started = True          # a reasoning model thinking aloud is answering
        if text and isinstance(text, str):
            got.started = True
            got.chunks += 1
            yield text


def whole_texts(body: bytes, got: Received, host: str) -> Iterator[str]:
    """A non-streamed completion's text (`host` names the endpoint in the error messages)."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        data = None
    choices = data.get("choices") if isinstance(data, dict) else None
    first = choices[0] if isinstance(choices, list) and choices else None
    message = first.get("message") if isinstance(first, dict) else None
    if not isinstance(message, dict):
        raise LLMError(f"the LLM endpoint {host} sent a response without choices: "
                       "is base_url an OpenAI-compatible chat-completions server?")
    text = text_of(message.get("content"))
    if text is None:
        raise LLMError(f"the LLM endpoint {host} sent a malformed message "
                       "(its content is not text): is base_url an OpenAI-compatible server?")
    u = data.get("usage") if isinstance(data, dict) else None
    if isinstance(u, dict):
        got.prompt, got.completion = u.get("prompt_tokens", 0), u.get("completion_tokens", 0)
    got.readable = got.finished = got.started = True
    if text:
        got.chunks += 1
        yield text
