"""The LLM client: the `openai` SDK against OpenAI, Azure OpenAI or any OpenAI-compatible server.

Every call streams, and its timeouts measure silence, not total time, because a real server on a
CPU is slow but alive: the time to the first token (llm.timeout), the gap between two chunks
(llm.idle_timeout), and a generous ceiling on the whole call (llm.total_timeout). Retries with
backoff on 429, 5xx and dropped connections happen only before the first token: an answer that has
started is never asked for again from scratch (it would cost the whole generation again), and a
server that stays silent past llm.timeout is not asked again either (it is still busy with the
first request). The SDK's own retry loop is off; this one knows where the stream is.

One clear message per failure (bad key, unknown model, unreachable host, silence), and token counts
from each answer's usage block. The API key, and a user name and password written in the base URL,
are never logged or put into a message. An endpoint a caller named (not the operator) is reached
only through jarvis.outbound's policy (vetted, pinned connections, no redirects), and what it
answers on failure is not repeated: only its status code is.
"""
from __future__ import annotations

import base64
import logging
import queue
import random
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any, cast

import httpx

from jarvis.config import Config
from jarvis.errors import AddressRefused, LLMError
from jarvis.llm.backend import OutputSchema, Usage
from jarvis.llm.chunks import Received, Whole, chunk_texts, whole_texts
from jarvis.llm.feed import Feed
from jarvis.outbound import OutboundPolicy, Resolver, shown_host, system_resolver, without_userinfo

__all__ = ["LLM", "Limits", "Usage"]

log = logging.getLogger(__name__)

RETRY_STATUSES = (408, 409)     # besides 429 and 5xx: what the SDK itself would retry
MAX_RETRY_AFTER = 60.0          # a longer Retry-After is not waited for: the error says to come back later
READ_SLACK = 5.0                # httpx's own read timeout trails the silence limits, so they act first

# What each failure of the openai SDK tells the user: (its error class, the HTTP statuses it applies to or
# None for all, the message). The first row the error matches decides; fields: host, model, status,
# kind (the class name), detail (what the operator's endpoint said), auth_hint.
EXPLAINED: tuple[tuple[str, range | None, str], ...] = (
    ("AuthenticationError", None, "the LLM endpoint {host} rejected the API key (401): {auth_hint}"),
    ("PermissionDeniedError", None, "the LLM endpoint {host} refused access to model {model!r} (403): "
                                    "check that your key may use it"),
    ("NotFoundError", None, "model {model!r} not found at {host} (404): check llm.model (JARVIS_LLM_MODEL) "
                            "and llm.base_url (OPENAI_BASE_URL)"),
    ("RateLimitError", None, "the LLM endpoint {host} is rate-limiting requests (429) and retries ran out: "
                             "wait a minute and try again, or check your quota"),
    ("APITimeoutError", None, "the LLM endpoint {host} did not answer in time: try again, or raise llm.timeout"),
    ("APIConnectionError", None, "cannot reach the LLM endpoint {host}: check llm.base_url (OPENAI_BASE_URL) "
                                 "and your network"),
    ("InternalServerError", None, "the LLM endpoint {host} failed ({status}) and retries ran out: try again later"),
    ("BadRequestError", None, "the LLM endpoint {host} refused the request (400){detail}"),
    ("APIStatusError", range(300, 400), "the LLM endpoint {host} answered with a redirect (HTTP {status}), which "
                                        "is not followed: give the base URL it should be"),
    ("APIStatusError", None, "the LLM endpoint {host} answered HTTP {status}{detail}"),
)
UNEXPECTED = "unexpected answer from the LLM endpoint {host}: {kind}{detail}"


@dataclass(frozen=True)
class Limits:
    """How long a call may be silent: before its first token, between two chunks, and in all."""
    first_token: float
    idle: float
    total: float

    @classmethod
    def of(cls, config: Config) -> Limits:
        return cls(config.llm.timeout, config.llm.idle_timeout, config.llm.total_timeout)


@dataclass(frozen=True)
class _Again:
    """An attempt that failed before its first token in a way another attempt may cure: `error` (429,
    5xx, a lost connection, a refused `response_format`), or None for a stream that ended with nothing
    in it (a connection that dropped)."""
    error: BaseException | None


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
    """One configured LLM endpoint (the OpenAI-compatible backend of jarvis.llm.backend). Cheap to
    build: one per session (each session has its own key).
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
        self.limits = Limits.of(config)
        self.max_retries = config.llm.max_retries
        http_client = None
        if self.caller_endpoint:
            policy = OutboundPolicy(public_only=config.server.public, resolver=resolver or system_resolver)
            http_client = policy.http_client()
        timeout = httpx.Timeout(max(self.limits.first_token, self.limits.idle) + READ_SLACK,
                                connect=self.limits.first_token)
        common: dict[str, Any] = {"api_key": key or "missing", "timeout": timeout, "max_retries": 0,
                                  "default_headers": auth_header or None, "http_client": http_client}
        self.client: openai.OpenAI
        if config.llm.api_type == "azure":
            self.client = openai.AzureOpenAI(azure_endpoint=self.base_url, api_version=config.llm.azure_api_version,
                                             **common)
        else:
            self.client = openai.OpenAI(base_url=self.base_url, **common)
        self.has_key = bool(key)
        self.takes_schema = True    # response_format with a JSON schema, until the server refuses one

    # -- errors ---------------------------------------------------------
    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _detail(self, exc: BaseException) -> str:
        """What the endpoint said, for the operator's endpoint only: a caller-named one may be anything
        (an internal service behind a redirect, a look-alike host), so its words are not repeated."""
        if self.caller_endpoint:
            return ""
        return ": " + self._scrub(str(getattr(exc, "message", exc)))[:300]

    def _explain(self, exc: BaseException) -> LLMError:
        """The one message for an SDK error: the first row of EXPLAINED whose class it is an instance of."""
        refused = exc if isinstance(exc, AddressRefused) else exc.__cause__   # older SDKs wrap it
        if isinstance(refused, AddressRefused):
            return LLMError(f"the LLM base URL was not contacted: {str(refused).removeprefix('refused: ')}")
        status = getattr(exc, "status_code", None)
        fields = {"host": shown_host(self.base_url), "model": self.model, "status": status or "5xx",
                  "kind": type(exc).__name__, "detail": self._detail(exc), "auth_hint": self._auth_hint()}
        for kind, statuses, message in EXPLAINED:
            if isinstance(exc, getattr(self._openai, kind)) and (statuses is None or status in statuses):
                return LLMError(message.format(**fields))
        return LLMError(UNEXPECTED.format(**fields))

    def _auth_hint(self) -> str:
        if self.has_key:
            return "check the key, and that it belongs to this endpoint"
        if self.caller_endpoint:
            return "paste your key for it: the server's keys only go to the server's own endpoint"
        return "set OPENAI_API_KEY or HF_TOKEN, or paste a key in the app"

    def _silent(self, limit: str) -> LLMError:
        host, lim = shown_host(self.base_url), self.limits
        if limit == "first":
            return LLMError(f"the LLM endpoint {host} did not answer in time: no token within {lim.first_token:g} s "
                            "(llm.timeout). Try again, or raise llm.timeout for a slow server")
        if limit == "idle":
            return LLMError(f"the LLM endpoint {host} stopped sending in the middle of its answer: nothing for "
                            f"{lim.idle:g} s (llm.idle_timeout). Try again, or raise llm.idle_timeout")
        return LLMError(f"the LLM endpoint {host} was still answering after {lim.total:g} s (llm.total_timeout): "
                        "ask for less, or raise llm.total_timeout")

    def _retryable(self, exc: BaseException) -> bool:
        """429, 5xx and lost connections, as the SDK would retry them; never silence, never a refused address."""
        o = self._openai
        if isinstance(exc, AddressRefused) or isinstance(exc.__cause__, AddressRefused):
            return False
        if isinstance(exc, (o.APITimeoutError, httpx.TimeoutException)):
            return False
        if isinstance(exc, (o.RateLimitError, o.InternalServerError, o.APIConnectionError)):
            return True
        if isinstance(exc, o.APIStatusError):
            return exc.status_code in RETRY_STATUSES
        return isinstance(exc, httpx.TransportError)    # the stream dropped before its first token

    def _backoff(self, tries: int, exc: BaseException | None) -> float | None:
        """Seconds before the next attempt: the server's Retry-After when it gives one (None: longer
        than is worth waiting), else exponential with jitter."""
        response = getattr(exc, "response", None)
        headers = response.headers if isinstance(response, httpx.Response) else httpx.Headers()
        for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
            try:
                wait = float(headers.get(name, "")) * scale
            except ValueError:
                continue
            if wait == wait and wait > 0:
                return wait if wait <= MAX_RETRY_AFTER else None
        return min(0.5 * 2 ** (tries - 1), 8.0) * (1 - 0.25 * random.random())

    # -- calls ----------------------------------------------------------
    def complete(self, messages: list[dict[str, Any]], usage: Usage, *, max_tokens: int | None = None,
                 temperature: float | None = None, schema: OutputSchema | None = None) -> str:
        """One chat completion, streamed and collected; returns the assistant's text."""
        temperature = self.temperature if temperature is None else temperature
        return "".join(self._call(messages, usage, max_tokens, temperature, schema))

    def stream(self, messages: list[dict[str, Any]], usage: Usage, *, max_tokens: int | None = None,
               schema: OutputSchema | None = None) -> Iterator[str]:
        """A streamed chat completion: yields text deltas as they come. Closing the iterator early
        (a plan whose JSON is complete) closes the connection; usage counts what came."""
        return self._call(messages, usage, max_tokens, self.temperature, schema)

    def _call(self, messages: list[dict[str, Any]], usage: Usage, max_tokens: int | None, temperature: float,
              schema: OutputSchema | None) -> Iterator[str]:
        began = time.monotonic()
        got = Received()
        request: dict[str, Any] = {"model": self.model, "messages": cast(Any, messages), "temperature": temperature,
                                   "stream": True, "stream_options": {"include_usage": True}, **_limit(max_tokens)}
        if schema is not None and self.takes_schema:
            request["response_format"] = {"type": "json_schema",
                                          "json_schema": {"name": schema.name, "schema": schema.json_schema()}}
        tries = 0
        try:
            while True:
                feed = Feed(lambda: self._open(request))
                try:
                    again = yield from self._read(feed, began, got, max_tokens)
                finally:
                    feed.close()
                if again is None:
                    break
                error = again.error
                if error is not None and "response_format" in request and _refused(error):
                    log.info("the LLM endpoint refused response_format; asking without a schema from now on")
                    self.takes_schema = False    # this server will not take one: the lenient parser reads it
                    del request["response_format"]
                    continue
                if error is not None and not self._retryable(error):
                    raise self._explain(error) from None
                tries += 1
                wait = self._backoff(tries, error)
                if tries > self.max_retries or wait is None or time.monotonic() + wait > began + self.limits.total:
                    if error is None:
                        break      # the checks below say what came
                    raise self._explain(error) from None
                log.info("LLM call failed before its first token (%s); retry %d in %.2fs",
                         type(error).__name__ if error else "the stream ended empty", tries, wait)
                time.sleep(wait)
        finally:
            if got.answered:
                usage.add(got.prompt, got.chunks if got.completion is None else got.completion)
            log.debug("llm call %.2fs, %d chunks", time.monotonic() - began, got.chunks)
        host = shown_host(self.base_url)
        if not got.readable:
            raise LLMError(f"the LLM endpoint {host} sent no readable answer stream: "
                           "is base_url an OpenAI-compatible chat-completions server?")
        if not got.finished:   # the connection closed before the end: what came is only part of the answer
            raise LLMError(f"the answer from the LLM endpoint {host} broke off midway "
                           "(the stream ended without finishing): try again")

    def _open(self, request: dict[str, Any]) -> tuple[httpx.Response, Any]:
        """Send the request (in the feed's thread); a server that answers with one JSON body instead of
        a stream gets it read whole, as one item."""
        chunks = self.client.chat.completions.create(**request)
        response = chunks.response
        if "json" in response.headers.get("content-type", "").lower():
            return response, [Whole(response.read())]
        return response, chunks

    def _read(self, feed: Feed, began: float, got: Received,
              max_tokens: int | None) -> Generator[str, None, _Again | None]:
        """One attempt's text, each chunk within its silence limit; no more chunks than `max_tokens`
        (every chunk holds a token at least: a server that sends more ignores the limit). Returns
        what to try again, when the attempt failed before its first token in a way worth that."""
        lim = self.limits
        last = time.monotonic()
        opened = last
        while True:
            limit, deadline = ("idle", last + lim.idle) if got.started else ("first", opened + lim.first_token)
            if began + lim.total < deadline:
                limit, deadline = "total", began + lim.total
            try:
                kind, value = feed.take(deadline - time.monotonic())
            except queue.Empty:
                raise self._silent(limit) from None
            last = time.monotonic()
            if kind == "end":
                return _Again(None) if not got.started and not got.finished else None
            if kind == "error":
                if not got.started and (self._retryable(value) or _refused(value)):
                    return _Again(value)
                if got.started and isinstance(value, httpx.TransportError):
                    raise LLMError(f"the answer from the LLM endpoint {shown_host(self.base_url)} broke off midway "
                                   "(the connection dropped): try again") from None
                raise self._explain(value) from None
            got.answered = True
            yield from (whole_texts(value.body, got, shown_host(self.base_url)) if isinstance(value, Whole)
                        else chunk_texts(value, got))
            if max_tokens and got.chunks > max_tokens and not got.finished:
                log.info("the LLM endpoint went past max_tokens=%d; read no further", max_tokens)
                got.finished = True
                return None

def _refused(exc: BaseException) -> bool:
    """A 400 or 422 that names the schema: a server that does not take `response_format` (its words are
    only looked at, never repeated: a caller's endpoint may say anything)."""
    if getattr(exc, "status_code", None) not in (400, 422):
        return False
    said = f"{getattr(exc, 'message', '')} {getattr(exc, 'body', '')}".lower()
    return any(word in said for word in ("response_format", "json_schema", "schema", "guided", "grammar"))


