"""One API request's controller run, and what every route shares (the Api object): the run's worker
thread and event queue, its deadline, its files' download links, the fair share of runs and the
request's configuration. The routes modules and the app both import this; it imports neither.

A run stops when its client goes: `Run.while_connected` watches the connection while a route waits
for the run, so a client that disconnects frees its slot at once (a streamed answer's own
disconnect handling takes over once streaming starts). Bodies are parsed in a worker thread, one at
a time: a big JSON body must not stall the event loop, and so every other request on the port
(8 bodies of 28 MiB at once: the port's worst pause went from 1.3-1.6 s to 0.15-0.18 s)."""
from __future__ import annotations

import asyncio
import json
import logging
import shutil
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from pathlib import Path
from typing import Any, TypeVar

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
    check_endpoint,
    request_config,
)
from jarvis.frontends.http.fair_share import FairShare, Ticket, caller_key
from jarvis.frontends.http.files import FileRegistry, MediaPart, parse_messages, stage_media
from jarvis.frontends.http.hosts import well_formed_host
from jarvis.pipeline.controller import Controller
from jarvis.pipeline.records import RunResult, TaskRecord
from jarvis.session import Session

log = logging.getLogger(__name__)

CANCEL_GRACE = 15.0     # seconds a timed-out run gets to wind down before the caller gets 504
_END = object()
T = TypeVar("T")
# what a run does instead of answering its text (MCP's run_task): (session, staged files) -> events
Job = Callable[[Session, list[Path]], Generator[Event, None, None]]


class Run:
    """One request's controller run in a worker thread; its events handed to the event loop.

    Its session directory is the file grant `token`; files are shared once the run and its
    consumer are both finished (whichever ends last hands the grant to the registry's TTL)."""

    def __init__(self, api: Api, request: Request, cfg: Config, owner: str, ticket: Ticket, text: str,
                 parts: list[MediaPart], history: list[dict], until: Callable[[Event], bool] | None,
                 job: Job | None = None):
        self.api, self.request, self.ticket = api, request, ticket
        self.base_url = api.base_url(request)
        self.token, root = api.registry.new(owner)
        self.session = Session.create(cfg, root=root)
        self.session.history = list(history)
        self.text, self.parts, self.until, self.job = text, parts, until, job
        self.timed_out = False
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue = asyncio.Queue()
        self._ends = 2
        self._closed = False
        self._lock = threading.Lock()
        self.deadline = self._loop.time() + api.request_timeout
        api.running(self, True)
        threading.Thread(target=self._work, name="jarvis-api-run", daemon=True).start()

    # -- worker thread -------------------------------------------------------------
    def _put(self, item) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:   # the event loop is gone (the server stopped): nobody is left to tell
            pass

    def _work(self) -> None:
        staging, gen = None, None
        try:
            files: list[Path] = []
            if self.parts:
                staging, files = stage_media(self.parts, self.session.config)
            gen = (self.job(self.session, files) if self.job is not None
                   else self.api.controller.run(self.session, self.text, files))
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
            self._put(_END)
            self.ticket.finish()
            self.api.running(self, False)
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
        """The consumer is done (answered, gave up, or the client left): stop the run if it still goes.
        Idempotent: a route may close a run its disconnect watcher closed already."""
        with self._lock:
            closed, self._closed = self._closed, True
        if closed:
            return
        self.ticket.detach()
        self.cancel()
        self.end()

    async def while_connected(self, work: Awaitable[T]) -> T:
        """`work`'s result, unless the client disconnects first: then the run is closed (its slot
        freed) and ApiError 499 ends the request (nobody is left to read it)."""
        job, watch = asyncio.ensure_future(work), asyncio.ensure_future(self._disconnected())
        try:
            await asyncio.wait({job, watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:   # also when this request itself is cancelled (the server stopping)
            watch.cancel()
            abandoned = not job.done()
            if abandoned:
                job.cancel()
                self.close()
        if abandoned:
            raise ApiError(499, "the client closed the connection before the answer", "client_closed")
        return job.result()

    async def _disconnected(self) -> None:
        while (await self.request.receive())["type"] != "http.disconnect":
            pass

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
        """Run to the end (or until the client leaves); the Done result (ApiError 502 when the controller Failed)."""
        return await self.while_connected(self._result())

    async def _result(self) -> RunResult:
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
        self.share = FairShare(config.server.max_runs, config.server.max_runs_per_caller)
        self._runs: set[Run] = set()         # the runs going on: the server's stop ends them
        self._runs_lock = threading.Lock()
        # one body parsed at a time, in a worker thread: JSON and base64 decoding hold the GIL in long C
        # calls, and several at once would starve the event loop (every request on the port) between them
        self._parsing = asyncio.Semaphore(1)

    def running(self, run: Run, going: bool) -> None:
        with self._runs_lock:
            if going:
                self._runs.add(run)
            else:
                self._runs.discard(run)

    def stop_all(self) -> None:
        """The server is stopping (a signal): every running request stops now."""
        with self._runs_lock:
            runs = list(self._runs)
        for run in runs:
            run.cancel()

    def owner(self, request: Request) -> str:
        return authorize(request.headers.get("authorization", ""), self.tokens)

    async def chat_request(self, request: Request) -> tuple[str, dict, str, list, list]:
        """(owner, body, text, media parts, history) of a chat-style request, or a 400. The body is
        parsed and its media decoded in a worker thread."""
        owner = self.owner(request)
        raw = await self.body(request)
        async with self._parsing:
            body, text, parts, history = await run_in_threadpool(_parse_chat, raw)
        return owner, body, text, parts, history

    async def body(self, request: Request) -> bytes:
        """The raw body of a JSON request, refused before reading past server.max_body_mb."""
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
        return b"".join(chunks)

    async def config_for(self, request: Request, *, api_key: str = "", base_url: str = "",
                         model: str = "") -> Config:
        """The request's Config: its own upstream settings (headers, or the HuggingGPT body's
        fields) or else the server's."""
        h = request.headers
        base_url = h.get(H_BASE_URL, "") or base_url
        cfg = request_config(self.config, api_key=h.get(H_OPENAI_KEY, "") or api_key,
                             hf_token=h.get(H_HF_TOKEN, ""), base_url=base_url,
                             model=h.get(H_MODEL, "") or model, allow_private=self.allow_private_endpoints)
        await run_in_threadpool(check_endpoint, cfg)   # a clear 400 first; the LLM client re-checks each connection
        return cfg

    @staticmethod
    def base_url(request: Request) -> str:
        """The absolute URL prefix for links, from the request's scheme and Host as the host check
        left them (behind a trusted proxy: its forwarded values, validated); a malformed Host (only
        possible without that check) gives way to the address the server listens on."""
        scheme = "https" if request.url.scheme == "https" else "http"
        host = request.headers.get("host", "")
        if not well_formed_host(host):
            address, port = request.scope.get("server") or ("127.0.0.1", 80)
            host = f"[{address}]:{port}" if ":" in str(address) else f"{address}:{port}"
        return f"{scheme}://{host}{request.scope.get('root_path', '')}".rstrip("/")

    async def start(self, request: Request, cfg: Config, owner: str, text: str, parts: list[MediaPart],
                    history: list[dict], until: Callable[[Event], bool] | None = None, job: Job | None = None) -> Run:
        if len(parts) > self.max_files:
            raise ApiError(400, f"too many files: {len(parts)} attached, this server accepts at most "
                                f"{self.max_files} per request (server.max_files)", "too_many_files")
        if not text.strip() and not parts:
            raise ApiError(400, "the last user message is empty: say what you want done")
        ticket = self.share.admit(caller_key(owner, request.client.host if request.client else None))
        self.registry.sweep()
        try:
            return Run(self, request, cfg, owner, ticket, text, parts, history, until, job)
        except BaseException:
            ticket.finish()
            raise


def _parse_chat(raw: bytes) -> tuple[dict, str, list[MediaPart], list[dict]]:
    """(body, text, media parts, history) of a chat request's raw JSON body; ApiError 400 when it is
    not valid JSON, nested too deeply to read, not an object, or its messages are malformed."""
    try:
        data = json.loads(raw)
    except RecursionError:
        raise ApiError(400, "the body is nested too deeply to read: send plain chat messages") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"the body is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object")
    try:
        text, parts, history = parse_messages(data.get("messages"))
    except InputError as exc:
        raise ApiError(400, str(exc)) from None
    return data, text, parts, history
