"""The LLM client: the `openai` SDK against OpenAI, Azure OpenAI or any OpenAI-compatible server.

Retries with backoff on 429, 5xx and dropped connections (the SDK's own retry loop), a timeout on
every call, one clear message per failure (bad key, unknown model, unreachable host), and token
counts from each response's usage. The API key, and a user name and password written in the base
URL, are never logged or put into a message. An endpoint a caller named (not the operator) is
reached only through jarvis.outbound's policy (vetted, pinned connections, no redirects), and what
it answers on failure is not repeated: only its status code is.
"""
from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import httpx

from jarvis.config import Config
from jarvis.errors import AddressRefused, LLMError
from jarvis.outbound import OutboundPolicy, Resolver, shown_host, system_resolver, without_userinfo

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


def _split_userinfo(url: str) -> tuple[str, list[str], dict[str, str]]:
    """(the URL without user name and password, their spellings as secrets, the Basic-auth header the
    HTTP client would have built from them): the URL then never reaches a log line with them."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        return url, [], {}
    if not parsed.userinfo:
        return url, [], {}
    pair = f"{parsed.username}:{parsed.password}"
    return (without_userinfo(url), [parsed.userinfo.decode("ascii"), pair, parsed.password],
            {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode("ascii")})


class LLM:
    """One configured LLM endpoint. Cheap to build: one per session (each session has its own key).
    `resolver` answers the name lookups of a caller-named endpoint (tests point names at loopback)."""

    def __init__(self, config: Config, *, resolver: Resolver | None = None):
        import openai  # lazy: its import takes ~0.3 s, paid at the first request instead of at app start

        self._openai = openai
        base_url, key, self.model = config.llm_endpoint()
        self.base_url, userinfo, auth_header = _split_userinfo(base_url)
        self._secrets = sorted((s for s in (key, *userinfo) if len(s) >= 4), key=len, reverse=True)
        self.caller_endpoint = config.credentials.caller_endpoint
        self.temperature = config.llm.temperature
        self.max_answer_tokens = config.llm.max_answer_tokens
        http_client = None
        if self.caller_endpoint:
            policy = OutboundPolicy(public_only=config.server.public, resolver=resolver or system_resolver)
            http_client = policy.http_client()
        common: dict[str, Any] = {"api_key": key or "missing", "timeout": config.llm.timeout,
                                  "max_retries": config.llm.max_retries, "default_headers": auth_header or None,
                                  "http_client": http_client}
        self.client: openai.OpenAI
        if config.llm.api_type == "azure":
            self.client = openai.AzureOpenAI(azure_endpoint=self.base_url, api_version=config.llm.azure_api_version,
                                             **common)
        else:
            self.client = openai.OpenAI(base_url=self.base_url, **common)
        self.has_key = bool(key)

    # -- errors ---------------------------------------------------------
    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _detail(self, exc: Exception) -> str:
        """What the endpoint said, for the operator's endpoint only: a caller-named one may be anything
        (an internal service behind a redirect, a look-alike host), so its words are not repeated."""
        if self.caller_endpoint:
            return ""
        return ": " + self._scrub(str(getattr(exc, "message", exc)))[:300]

    def _explain(self, exc: Exception) -> LLMError:
        o = self._openai
        host = shown_host(self.base_url)
        refused = exc if isinstance(exc, AddressRefused) else exc.__cause__   # older SDKs wrap it
        if isinstance(refused, AddressRefused):
            return LLMError(f"the LLM base URL was not contacted: {str(refused).removeprefix('refused: ')}")
        if isinstance(exc, o.AuthenticationError):
            hint = ("check the key, and that it belongs to this endpoint" if self.has_key
                    else "paste your key for it: the server's keys only go to the server's own endpoint"
                    if self.caller_endpoint else "set OPENAI_API_KEY or HF_TOKEN, or paste a key in the app")
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
            return LLMError(f"the LLM endpoint {host} refused the request (400){self._detail(exc)}")
        if isinstance(exc, o.APIStatusError) and 300 <= exc.status_code < 400:
            return LLMError(f"the LLM endpoint {host} answered with a redirect (HTTP {exc.status_code}), which is "
                            "not followed: give the base URL it should be")
        if isinstance(exc, o.APIStatusError):
            return LLMError(f"the LLM endpoint {host} answered HTTP {exc.status_code}{self._detail(exc)}")
        return LLMError(f"unexpected answer from the LLM endpoint {host}: {type(exc).__name__}{self._detail(exc)}")

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
            raise LLMError(f"the LLM endpoint {shown_host(self.base_url)} sent a response without choices: "
                           "is base_url an OpenAI-compatible chat-completions server?")
        text = _text_of(getattr(message, "content", None))
        if text is None:
            raise LLMError(f"the LLM endpoint {shown_host(self.base_url)} sent a malformed message "
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
        except Exception as exc:  # the SDK's errors and a refused address alike: one message, no key in it
            raise self._explain(exc) from None
        prompt = completion = 0
        readable = finished = False
        try:
            for chunk in chunks:
                u = getattr(chunk, "usage", None)
                if u:
                    prompt, completion = getattr(u, "prompt_tokens", 0), getattr(u, "completion_tokens", 0)
                choices = getattr(chunk, "choices", None)
                for choice in choices if isinstance(choices, list) else []:
                    delta = getattr(choice, "delta", None)
                    readable = readable or delta is not None and not isinstance(delta, (str, dict, list))
                    finished = finished or bool(getattr(choice, "finish_reason", None))
                    text = getattr(delta, "content", None) if delta else None
                    if text and isinstance(text, str):
                        yield text
        except Exception as exc:  # a dropped stream, a malformed chunk: one message, no key in it
            raise self._explain(exc) from None
        finally:
            usage.add(prompt, completion)
        if not readable:
            raise LLMError(f"the LLM endpoint {shown_host(self.base_url)} sent no readable answer stream: "
                           "is base_url an OpenAI-compatible chat-completions server?")
        if not finished:   # the connection closed before the end: what came is only part of the answer
            raise LLMError(f"the answer from the LLM endpoint {shown_host(self.base_url)} broke off midway "
                           "(the stream ended without finishing): try again")
