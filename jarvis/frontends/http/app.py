"""The HTTP API: HuggingGPT's server-mode routes and an OpenAI-compatible chat endpoint, one more
thin consumer of the controller's event stream. `create_app` builds the FastAPI app (mountable
beside the Gradio UI, which takes "/"); `serve` runs it for `python -m jarvis serve`."""
from __future__ import annotations

import asyncio
import json
import logging
import shutil
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from jarvis.config import Config
from jarvis.events import Done, Event, Failed
from jarvis.frontends.http.auth import (
    H_BASE_URL,
    H_HF_TOKEN,
    H_MODEL,
    H_OPENAI_KEY,
    ApiError,
    access_tokens,
    authorize,
    endpoint_refusal,
    is_loopback,
    match_token,
    request_config,
)
from jarvis.frontends.http.files import FileRegistry, InputError, MediaPart, stage_media
from jarvis.session import Session

log = logging.getLogger(__name__)

API_PREFIXES = ("/v1", "/hugginggpt", "/tasks", "/results", "/files")
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

    async def result(self) -> dict:
        """Run to the end; the Done result (ApiError 502 when the controller Failed)."""
        result = None
        async for event in self.events():
            if isinstance(event, Failed):
                raise failed_error(event)
            if isinstance(event, Done):
                result = event.result
        if result is None:
            raise ApiError(502, "the request ended without an answer", "upstream_error")
        return result

    def files(self, records: list[dict]) -> list[dict]:
        """The generated files of a run's task records: name, type, task id and download URL."""
        out = []
        for rec in records:
            for rtype, value in (rec.get("outputs") or {}).items():
                if rtype != "text" and self.owns(value):
                    out.append({"name": Path(value).name, "type": rtype, "task_id": rec.get("id"),
                                "url": self.link(value)})
        return out

    def public_tasks(self, records: list[dict]) -> list[dict]:
        """Task records fit for the caller: file outputs as URLs, no server paths."""
        keys = ("id", "task", "dep", "args", "model", "reason", "executor", "status", "error", "started",
                "finished")
        out = []
        for rec in records:
            item = {k: rec.get(k) for k in keys}
            item["outputs"] = {k: (v if k == "text" else self.link(v) if self.owns(v) else Path(v).name)
                               for k, v in (rec.get("outputs") or {}).items()}
            item["detail"] = json.loads(json.dumps(rec.get("detail"), default=str))
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

    def __init__(self, config: Config, controller, registry: FileRegistry, request_timeout: float,
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
        from jarvis.frontends.http.files import InputError, parse_messages
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


def _error_body(path: str, status: int, message: str, code: str) -> dict:
    if path.startswith("/v1"):
        kind = "invalid_request_error" if status < 500 else "server_error"
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return {"error": message, "code": code}


def create_app(config: Config, controller=None, *, request_timeout: float | None = None,
               allow_private_endpoints: bool | None = None, cors_origins: list[str] | None = None) -> FastAPI:
    """The API app. `allow_private_endpoints`: None lets only callers on this machine name private
    or loopback LLM endpoints; True/False allows/forbids it for everyone. `cors_origins`: browser
    origins allowed to call the API (none by default)."""
    if controller is None:
        from jarvis.pipeline.controller import Controller
        controller = Controller(config)
    registry = FileRegistry(config.server.file_ttl)
    timeout = (request_timeout or config.server.request_timeout
               or (config.inference.task_timeout + 4 * config.llm.timeout + 30))
    if cors_origins is None:
        cors_origins = [o.strip() for o in config.server.cors_origins.split(",") if o.strip()]
    api = Api(config, controller, registry, timeout, allow_private_endpoints)

    @asynccontextmanager
    async def lifespan(_app):
        yield
        registry.close()

    app = FastAPI(title="Jarvis API", version="1", lifespan=lifespan, docs_url="/v1/docs",
                  redoc_url=None, openapi_url="/v1/openapi.json",
                  swagger_ui_oauth2_redirect_url="/v1/docs/oauth2-redirect")
    app.state.jarvis = api

    def error_response(request: Request, status: int, message: str, code: str, headers=None) -> JSONResponse:
        return JSONResponse(_error_body(request.url.path, status, message, code), status_code=status,
                            headers=headers)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return error_response(request, exc.status, exc.message, exc.code, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        messages = {404: f"no such route: {request.method} {request.url.path}",
                    405: f"{request.method} is not allowed on {request.url.path}"}
        return error_response(request, exc.status_code, messages.get(exc.status_code, str(exc.detail)),
                              "not_found" if exc.status_code == 404 else "http_error", getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        return error_response(request, 400, f"invalid request: {exc.errors()[:3]}", "invalid_request_error")

    @app.exception_handler(Exception)
    async def _any_error(request: Request, exc: Exception):
        log.exception("unhandled error on %s", request.url.path)
        return error_response(request, 500, f"internal error ({type(exc).__name__}); the server log has "
                                            "the details", "internal_error")

    @app.get("/files/{token}/{name}", include_in_schema=False)
    async def download(token: str, name: str, request: Request):
        owner = match_token(request.headers.get("authorization", ""), api.tokens)
        path = registry.lookup(token, name, owner) if owner is not None else None
        if path is None:
            raise ApiError(404, "no such file (the link is wrong, expired, or not yours)", "not_found")
        return FileResponse(path, headers={"Cache-Control": "private, max-age=300",
                                           "X-Content-Type-Options": "nosniff"},
                            content_disposition_type="inline")

    from jarvis.frontends.http.hugginggpt_routes import router as hugginggpt_router
    from jarvis.frontends.http.openai_routes import router as openai_router
    app.include_router(openai_router(api))
    app.include_router(hugginggpt_router(api))

    if cors_origins:
        from starlette.middleware.cors import CORSMiddleware
        app.add_middleware(_OnlyApiPaths, inner=lambda a: CORSMiddleware(
            a, allow_origins=list(cors_origins), allow_methods=["GET", "POST"], allow_headers=["*"]))
    return app


class _OnlyApiPaths:
    """Applies a middleware to the API's own paths only (not to a Gradio app mounted at '/')."""

    def __init__(self, app, inner):
        self.app, self.wrapped = app, inner(app)

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "")
        if scope["type"] == "http" and path.startswith(API_PREFIXES):
            await self.wrapped(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def serve(config: Config, host: str | None = None, port: int | None = None) -> int:
    """Run the API until Ctrl-C; returns an exit code."""
    import uvicorn

    host = host or config.server.host
    port = config.server.port if port is None else port
    try:
        app = create_app(config)
    except Exception as exc:
        print(f"error: cannot start the API server: {exc}", flush=True)
        return 2
    if not access_tokens(config) and not is_loopback(host) and host != "localhost":
        print(f"warning: serving on {host} without server.access_token: anyone who can reach this port "
              "can spend the server's keys", flush=True)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    print(f"Jarvis API on http://{shown}:{port} (OpenAI-compatible base URL: http://{shown}:{port}/v1)",
          flush=True)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    except KeyboardInterrupt:
        pass
    return 0
