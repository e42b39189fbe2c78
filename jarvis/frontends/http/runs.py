"""One API request's controller run, and what every route shares (the Api object): the run's worker
thread and event queue, its deadline, its files' download links, the concurrency limit and the
request's configuration. The routes modules and the app both import this; it imports neither."""
from __future__ import annotations

import asyncio
import json
import logging
import shutil
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from jarvis.config import Config
from jarvis.errors import ApiError, InputError
from jarvis.events import Done, Event, Failed
from jarvis.frontends.http.auth import (
    H_BASE_URL,
    H_HF_TOKEN,
    H_MODEL,
    H_OPENAI_KEY,
    access_tokens,
    authorize,
    endpoint_refusal,
    is_loopback,
    request_config,
)
from jarvis.frontends.http.files import FileRegistry, MediaPart, parse_messages, stage_media
from jarvis.pipeline.controller import Controller
from jarvis.pipeline.records import RunResult, TaskRecord
from jarvis.session import Session

log = logging.getLogger(__name__)

MAX_RUNS = 8            # requests answered at once; more get 429
CANCEL_GRACE = 15.0     # seconds a timed-out run gets to wind down before the caller gets 504
_END = object()


class Run:
    """One request's controller run in a worker thread; its events handed to the event loop.

    Its session directory is the file grant `token`; files are shared once the run and its
    consumer are both finished (whichever ends last hands the grant to the registry's TTL)."""

    def __init__(self, api: Api, cfg: Config, owner: str, base_url: str, text: str,
                 parts: list[MediaPart], history: list[dict], until: Callable[[Event], bool] | None):
        self.api, self.base_url = api, base_url
        self.token, root = api.registry.new(owner)
        self.session = Session.create(cfg, root=root)
        self.session.history = list(history)
        self.text, self.parts, self.until = text, parts, until
        self.timed_out = False
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue = asyncio.Queue()
        self._ends = 2
        self._lock = threading.Lock()
        self.deadline = self._loop.time() + api.request_timeout
        threading.Thread(target=self._work, name="jarvis-api-run", daemon=True).start()

    # -- worker thread -------------------------------------------------------------
    def _put(self, item) -> None:
        self._loop.call_soon_threadsafe(self._queue.put_nowait, item)

    def _work(self) -> None:
        staging, gen = None, None
        try:
            files: list[Path] = []
            if self.parts:
                staging, files = stage_media(self.parts, self.session.config)
            gen = self.api.controller.run(self.session, self.text, files)
            for event in gen:
                self._put(event)
                if self.until is not None and self.until(event):
                    break
        except InputError as exc:
            self._put(exc)
        except Exception as exc:
            log.exception("request failed")
            self._put(Failed(f"internal error ({type(exc).__name__}); the server log has the details"))
        finally:
            if gen is not None:
                gen.close()
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
            try:
                self._put(_END)
            except RuntimeError:  # the event loop is gone (server shutting down)
                pass
            self.api.release()
            self.end()

    # -- event loop side ---------------------------------------------------------------
    def end(self) -> None:
        with self._lock:
            self._ends -= 1
            last = self._ends == 0
        if last:
            self.api.registry.finish(self.token)

    def cancel(self) -> None:
        self.session.cancel.set()

    def close(self) -> None:
        """The consumer is done (answered, gave up, or the client left): stop the run if it still goes."""
        self.cancel()
        self.end()

    async def events(self) -> AsyncIterator[Event]:
        """The run's events until its end; ApiError 400 for unusable media, 504 past the time limit."""
        while True:
            left = self.deadline - self._loop.time()
            if left <= 0:
                if self.timed_out:
                    raise ApiError(504, f"the request took longer than the server's limit of "
                                        f"{self.api.request_timeout:g} s and was stopped", "timeout")
                self.timed_out = True
                self.cancel()
                self.deadline = self._loop.time() + CANCEL_GRACE
                continue
            try:
                item = await asyncio.wait_for(self._queue.get(), timeout=left)
            except TimeoutError:
                continue
            if item is _END:
                return
            if isinstance(item, InputError):
                raise ApiError(400, str(item), "invalid_media")
            yield item

    async def result(self) -> RunResult:
        """Run to the end; the Done result (ApiError 502 when the controller Failed)."""
        result: RunResult | None = None
        async for event in self.events():
            if isinstance(event, Failed):
                raise failed_error(event)
            if isinstance(event, Done):
                result = event.result
        if result is None:
            raise ApiError(502, "the request ended without an answer", "upstream_error")
        return result

    def files(self, records: list[TaskRecord]) -> list[dict[str, Any]]:
        """The generated files of a run's task records: name, type, task id and download URL."""
        return [{"name": path.name, "type": rtype, "task_id": rec.id, "url": self.link(path)}
                for rec in records for rtype, path in rec.files() if self.owns(path)]

    def public_tasks(self, records: list[TaskRecord]) -> list[dict[str, Any]]:
        """Task records fit for the caller: file outputs as URLs, no server paths."""
        keys = ("id", "task", "dep", "args", "model", "reason", "executor", "status", "error", "started",
                "finished", "detail")
        out = []
        for rec in records:
            data = rec.to_dict()
            item = {k: data[k] for k in keys}
            item["outputs"] = {k: (v if k == "text" else self.link(v) if self.owns(v) else Path(v).name)
                               for k, v in rec.outputs.items()}
            out.append(item)
        return out

    def owns(self, path: str | Path) -> bool:
        try:
            return Path(path).resolve().parent == self.session.store.root
        except (OSError, ValueError):
            return False

    def link(self, path: str | Path) -> str:
        """The absolute download URL of one of this run's files (and share it with the caller)."""
        name = Path(path).name
        self.api.registry.allow(self.token, name)
        return f"{self.base_url}/files/{self.token}/{name}"


def failed_error(event: Failed) -> ApiError:
    if event.message.startswith("the request is empty"):
        return ApiError(400, event.message)
    return ApiError(502, event.message, "upstream_error")


class Api:
    """What the routes share: configuration, the controller, the file registry and the limits."""

    def __init__(self, config: Config, controller: Controller, registry: FileRegistry, request_timeout: float,
                 allow_private_endpoints: bool | None):
        self.config, self.controller, self.registry = config, controller, registry
        self.request_timeout = request_timeout
        self.allow_private_endpoints = allow_private_endpoints
        self.tokens = access_tokens(config)
        self.max_body = int(config.server.max_body_mb * 2**20)
        self.max_files = config.server.max_files
        self.running = 0
        self._running_lock = threading.Lock()

    def owner(self, request: Request) -> str:
        return authorize(request.headers.get("authorization", ""), self.tokens)

    async def chat_request(self, request: Request) -> tuple[str, dict, str, list, list]:
        """(owner, body, text, media parts, history) of a chat-style request, or a 400."""
        owner = self.owner(request)
        body = await self.body(request)
        try:
            text, parts, history = parse_messages(body.get("messages"))
        except InputError as exc:
            raise ApiError(400, str(exc)) from None
        return owner, body, text, parts, history

    async def body(self, request: Request) -> dict:
        """The JSON object body, refused before reading past server.max_body_mb."""
        ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if ctype != "application/json" and not ctype.endswith("+json"):
            raise ApiError(415, "send the body as JSON with 'Content-Type: application/json'",
                           "unsupported_media_type")
        too_big = ApiError(413, f"the request body is larger than this server's limit of "
                                f"{self.config.server.max_body_mb:g} MiB (server.max_body_mb)", "request_too_large")
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body:
            raise too_big
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body:
                raise too_big
            chunks.append(chunk)
        try:
            data = json.loads(b"".join(chunks))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"the body is not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ApiError(400, "the body must be a JSON object")
        return data

    async def config_for(self, request: Request, *, api_key: str = "", base_url: str = "",
                         model: str = "") -> Config:
        """The request's Config: its own upstream settings (headers, or the HuggingGPT body's
        fields) or else the server's."""
        h = request.headers
        base_url = h.get(H_BASE_URL, "") or base_url
        cfg = request_config(self.config, api_key=h.get(H_OPENAI_KEY, "") or api_key,
                             hf_token=h.get(H_HF_TOKEN, ""), base_url=base_url,
                             model=h.get(H_MODEL, "") or model)
        allow = self.allow_private_endpoints
        if allow is None:  # a caller on this machine can reach its private addresses anyway
            allow = is_loopback(request.client.host if request.client else None)
        if base_url.strip() and not allow:
            why = await run_in_threadpool(endpoint_refusal, base_url.strip())
            if why:
                raise ApiError(400, f"refused LLM endpoint {base_url[:80]!r}: {why}; this server only "
                                    "contacts public endpoints named by remote callers", "endpoint_refused")
        return cfg

    def base_url(self, request: Request) -> str:
        """The absolute URL prefix for links (honours X-Forwarded-Proto/Host behind a proxy)."""
        base = str(request.base_url).rstrip("/")
        proto = request.headers.get("x-forwarded-proto", "").split(",")[0].strip()
        host = request.headers.get("x-forwarded-host", "").split(",")[0].strip()
        scheme, _, rest = base.partition("://")
        if host:
            rest = host + rest[len(rest.split("/", 1)[0]):]
        if proto in ("http", "https"):
            scheme = proto
        return f"{scheme}://{rest}"

    async def start(self, request: Request, cfg: Config, owner: str, text: str, parts: list[MediaPart],
                    history: list[dict], until: Callable[[Event], bool] | None = None) -> Run:
        if len(parts) > self.max_files:
            raise ApiError(400, f"too many files: {len(parts)} attached, this server accepts at most "
                                f"{self.max_files} per request (server.max_files)", "too_many_files")
        if not text.strip() and not parts:
            raise ApiError(400, "the last user message is empty: say what you want done")
        with self._running_lock:
            if self.running >= MAX_RUNS:
                raise ApiError(429, f"the server is answering {MAX_RUNS} requests already: try again shortly",
                               "server_busy", {"Retry-After": "5"})
            self.running += 1
        self.registry.sweep()
        try:
            return Run(self, cfg, owner, self.base_url(request), text, parts, history, until)
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        with self._running_lock:
            self.running -= 1
