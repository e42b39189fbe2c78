"""The LLM client: the `openai` SDK against OpenAI, Azure OpenAI or any OpenAI-compatible server.

Retries with backoff on 429, 5xx and dropped connections (the SDK's own retry loop), a timeout on
every call, one clear message per failure (bad key, unknown model, unreachable host), and token
counts from each response's usage. The API key is never logged or put into a message.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urlparse

from jarvis.config import Config
from jarvis.errors import LLMError

log = logging.getLogger(__name__)


@dataclass
class Usage:
    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, prompt: int, completion: int) -> None:
        with self._lock:
            self.llm_calls += 1
            self.prompt_tokens += _count(prompt)
            self.completion_tokens += _count(completion)

    def as_dict(self) -> dict:
        return {"llm_calls": self.llm_calls, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens}


def _count(value) -> int:
    """A token count from a server's usage block; anything malformed counts as 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return 0
    return max(0, min(int(value), 10**12)) if abs(value) != float("inf") else 0


def _text_of(content) -> str | None:
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


def _limit(max_tokens: int | None) -> dict[str, Any]:
    """The max_tokens argument when a limit is set (servers differ in what they do with null)."""
    return {"max_tokens": max_tokens} if max_tokens else {}


def _host(url: str) -> str:
    parsed = urlparse(url)
    return parsed.netloc or url


class LLM:
    """One configured LLM endpoint. Cheap to build: one per session (each session has its own key)."""

    def __init__(self, config: Config):
        import openai  # lazy: its import takes ~0.3 s, paid at the first request instead of at app start

        self._openai = openai
        self.base_url, key, self.model = config.llm_endpoint()
        self._key = key
        self.temperature = config.llm.temperature
        self.max_answer_tokens = config.llm.max_answer_tokens
        api_key, timeout, retries = key or "missing", config.llm.timeout, config.llm.max_retries
        self.client: openai.OpenAI
        if config.llm.api_type == "azure":
            self.client = openai.AzureOpenAI(azure_endpoint=self.base_url, api_version=config.llm.azure_api_version,
                                             api_key=api_key, timeout=timeout, max_retries=retries)
        else:
            self.client = openai.OpenAI(base_url=self.base_url, api_key=api_key, timeout=timeout, max_retries=retries)
        self.has_key = bool(key)

    # -- errors ---------------------------------------------------------
    def _scrub(self, text: str) -> str:
        if self._key and len(self._key) >= 4:
            text = text.replace(self._key, "***")
        return text

    def _explain(self, exc: Exception) -> LLMError:
        o = self._openai
        host = _host(self.base_url)
        if isinstance(exc, o.AuthenticationError):
            hint = ("set OPENAI_API_KEY or HF_TOKEN, or paste a key in the app" if not self.has_key
                    else "check the key, and that it belongs to this endpoint")
            return LLMError(f"the LLM endpoint {host} rejected the API key (401): {hint}")
        if isinstance(exc, o.PermissionDeniedError):
            return LLMError(f"the LLM endpoint {host} refused access to model {self.model!r} (403): "
                            "check that your key may use it")
        if isinstance(exc, o.NotFoundError):
            return LLMError(f"model {self.model!r} not found at {host} (404): check llm.model "
                            "(JARVIS_LLM_MODEL) and llm.base_url (OPENAI_BASE_URL)")
        if isinstance(exc, o.RateLimitError):
            return LLMError(f"the LLM endpoint {host} is rate-limiting requests (429) and retries ran out: "
                            "wait a minute and try again, or check your quota")
        if isinstance(exc, o.APITimeoutError):
            return LLMError(f"the LLM endpoint {host} did not answer in time: try again, or raise llm.timeout")
        if isinstance(exc, o.APIConnectionError):
            return LLMError(f"cannot reach the LLM endpoint {host}: check llm.base_url (OPENAI_BASE_URL) "
                            "and your network")
        if isinstance(exc, o.InternalServerError):
            return LLMError(f"the LLM endpoint {host} failed ({getattr(exc, 'status_code', '5xx')}) "
                            "and retries ran out: try again later")
        if isinstance(exc, o.BadRequestError):
            detail = self._scrub(str(getattr(exc, "message", exc)))[:300]
            return LLMError(f"the LLM endpoint {host} refused the request (400): {detail}")
        if isinstance(exc, o.APIStatusError):
            return LLMError(f"the LLM endpoint {host} answered HTTP {exc.status_code}: "
                            f"{self._scrub(str(getattr(exc, 'message', '')))[:300]}")
        return LLMError(f"unexpected answer from the LLM endpoint {host}: "
                        f"{type(exc).__name__}: {self._scrub(str(exc))[:300]}")

    # -- calls ----------------------------------------------------------
    def complete(self, messages: list[dict], usage: Usage, *, max_tokens: int | None = None,
                 temperature: float | None = None) -> str:
        """One chat completion; returns the assistant's text."""
        start = time.perf_counter()
        try:
            resp = self.client.chat.completions.create(
                model=self.model, messages=cast(Any, messages),
                temperature=self.temperature if temperature is None else temperature, **_limit(max_tokens))
        except Exception as exc:  # the SDK's errors and a malformed body alike: one message, no key in it
            raise self._explain(exc) from None
        # a malformed body is parsed without validation: check every level before using it
        choices = getattr(resp, "choices", None)
        message = choices[0] if isinstance(choices, list) and choices else None
        message = getattr(message, "message", None)
        if message is None or isinstance(message, (str, dict, list)):
            raise LLMError(f"the LLM endpoint {_host(self.base_url)} sent a response without choices: "
                           "is base_url an OpenAI-compatible chat-completions server?")
        text = _text_of(getattr(message, "content", None))
        if text is None:
            raise LLMError(f"the LLM endpoint {_host(self.base_url)} sent a malformed message "
                           "(its content is not text): is base_url an OpenAI-compatible server?")
        u = getattr(resp, "usage", None)
        usage.add(getattr(u, "prompt_tokens", 0), getattr(u, "completion_tokens", 0))
        log.debug("llm call %.2fs", time.perf_counter() - start)
        return text

    def stream(self, messages: list[dict], usage: Usage, *, max_tokens: int | None = None) -> Iterator[str]:
        """A streamed chat completion: yields text deltas; counts usage from the final chunk."""
        try:
            chunks = self.client.chat.completions.create(
                model=self.model, messages=cast(Any, messages), temperature=self.temperature, stream=True,
                stream_options={"include_usage": True}, **_limit(max_tokens))
        except self._openai.OpenAIError as exc:
            raise self._explain(exc) from None
        prompt = completion = 0
        readable = False
        try:
            for chunk in chunks:
                u = getattr(chunk, "usage", None)
                if u:
                    prompt, completion = getattr(u, "prompt_tokens", 0), getattr(u, "completion_tokens", 0)
                choices = getattr(chunk, "choices", None)
                for choice in choices if isinstance(choices, list) else []:
                    delta = getattr(choice, "delta", None)
                    readable = readable or delta is not None and not isinstance(delta, (str, dict, list))
                    text = getattr(delta, "content", None) if delta else None
                    if text and isinstance(text, str):
                        yield text
        except Exception as exc:  # a dropped stream, a malformed chunk: one message, no key in it
            raise self._explain(exc) from None
        finally:
            usage.add(prompt, completion)
        if not readable:
            raise LLMError(f"the LLM endpoint {_host(self.base_url)} sent no readable answer stream: "
                           "is base_url an OpenAI-compatible chat-completions server?")
