"""The HTTP API: HuggingGPT's server-mode routes and an OpenAI-compatible chat endpoint, one more
thin consumer of the controller's event stream, and the MCP server (jarvis.frontends.mcp) at
/gradio_api/mcp/. `create_app` builds the FastAPI app (mountable beside the Gradio UI, which takes
"/"); `serve` runs it for `python -m jarvis serve`."""
from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from jarvis.config import Config
from jarvis.errors import ApiError, JarvisError
from jarvis.frontends.http.access import LOGIN_PATH, caller_owner, under
from jarvis.frontends.http.auth import match_token
from jarvis.frontends.http.files import FileRegistry
from jarvis.frontends.http.hugginggpt_routes import router as hugginggpt_router
from jarvis.frontends.http.openai_routes import router as openai_router
from jarvis.frontends.http.runs import Api
from jarvis.frontends.http.serving import API_PREFIXES, exposure_warnings, run, server_controller
from jarvis.frontends.mcp.server import McpEndpoint
from jarvis.pipeline.controller import Controller

log = logging.getLogger(__name__)

__all__ = ["API_PREFIXES", "create_app", "serve"]


def _error_body(path: str, status: int, message: str, code: str) -> dict[str, Any]:
    """The error body: OpenAI's shape under /v1, HuggingGPT's {"error", "code"} elsewhere."""
    if path.startswith("/v1"):
        kind = "invalid_request_error" if status < 500 else "server_error"
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return {"error": message, "code": code}


def create_app(config: Config, controller: Controller | None = None, *, request_timeout: float | None = None,
               allow_private_endpoints: bool | None = None, cors_origins: list[str] | None = None) -> FastAPI:
    """The API app. `allow_private_endpoints`: None lets callers name private or loopback LLM
    endpoints unless the deployment is public (server.public); True/False allows/forbids it for
    everyone. `cors_origins`: browser origins allowed to call the API (none by default)."""
    owned = controller is None   # a controller made here is closed here; a caller's stays the caller's
    if controller is None:
        controller = server_controller(config)
    registry = FileRegistry(config.server.file_ttl)
    timeout = (request_timeout or config.server.request_timeout
               or (config.inference.task_timeout + 4 * config.llm.timeout + 30))
    if cors_origins is None:
        cors_origins = [o.strip() for o in config.server.cors_origins.split(",") if o.strip()]
    api = Api(config, controller, registry, timeout, allow_private_endpoints)
    mcp = McpEndpoint(api)   # MCP over streamable HTTP at /gradio_api/mcp/ (docs/mcp.md)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async with mcp.running():
            yield
        registry.close()
        if owned:
            api.controller.close()

    app = FastAPI(title="Jarvis API", version="1", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.jarvis = api

    def error_response(request: Request, status: int, message: str, code: str,
                       headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse(_error_body(request.url.path, status, message, code), status_code=status,
                            headers=headers)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(request, exc.status, exc.message, exc.code, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        messages = {404: f"no such route: {request.method} {request.url.path}",
                    405: f"{request.method} is not allowed on {request.url.path}"}
        return error_response(request, exc.status_code, messages.get(exc.status_code, str(exc.detail)),
                              "not_found" if exc.status_code == 404 else "http_error", getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(request, 400, f"invalid request: {exc.errors()[:3]}", "invalid_request_error")

    @app.exception_handler(Exception)
    async def _any_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return error_response(request, 500, f"internal error ({type(exc).__name__}); the server log has "
                                            "the details", "internal_error")

    @app.get("/files/{token}/{name}", include_in_schema=False)
    async def download(token: str, name: str, request: Request) -> FileResponse:
        owner = match_token(request.headers.get("authorization", ""), api.tokens)
        path = registry.lookup(token, name, owner) if owner is not None else None
        if path is None:
            raise ApiError(404, "no such file (the link is wrong, expired, or not yours)", "not_found")
        return FileResponse(path, headers={"Cache-Control": "private, max-age=300",
                                           "X-Content-Type-Options": "nosniff"},
                            content_disposition_type="inline")

    def description_reader(request: Request) -> None:
        """The API's description is for callers with the access token too (bearer or sign-in cookie)."""
        if caller_owner(Headers(scope=request.scope), api.tokens) is None:
            raise ApiError(401, f"the API description needs this server's access token: send 'Authorization: "
                                f"Bearer <token>', or sign in at {LOGIN_PATH} in a browser first", "invalid_api_key",
                           {"WWW-Authenticate": "Bearer"})

    @app.get("/v1/openapi.json", include_in_schema=False)
    async def openapi(request: Request) -> JSONResponse:
        description_reader(request)
        return JSONResponse(app.openapi())

    @app.get("/v1/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        description_reader(request)
        return get_swagger_ui_html(openapi_url="/v1/openapi.json", title="Jarvis API")

    app.include_router(openai_router(api))
    app.include_router(hugginggpt_router(api))
    app.router.routes.extend(mcp.routes())

    if cors_origins:
        app.add_middleware(_OnlyApiPaths, inner=lambda a: CORSMiddleware(
            a, allow_origins=list(cors_origins), allow_methods=["GET", "POST"], allow_headers=["*"]))
    return app


class _OnlyApiPaths:
    """Applies a middleware to the API's own paths only (not to a Gradio app mounted at '/')."""

    def __init__(self, app: ASGIApp, inner: Callable[[ASGIApp], ASGIApp]):
        self.app, self.wrapped = app, inner(app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and under(path, API_PREFIXES):
            await self.wrapped(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def serve(config: Config, host: str | None = None, port: int | None = None) -> int:
    """Run the API until Ctrl-C; returns an exit code."""
    host = host or config.server.host
    port = config.server.port if port is None else port
    try:
        config = config.serving_on(host)   # reachable from other machines: caller-chosen URLs go public-only
        app = create_app(config)
    except Exception as exc:
        if not isinstance(exc, (JarvisError, OSError)):   # not one Jarvis explains: the log has the trace
            log.exception("the API server could not start")
        print(f"error: cannot start the API server: {exc}", flush=True)
        return 2
    for note in exposure_warnings(config, host):
        print(note, flush=True)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    print(f"Jarvis API on http://{shown}:{port} (OpenAI-compatible base URL: http://{shown}:{port}/v1)",
          flush=True)
    try:
        run(app, config, host, port, on_stop=app.state.jarvis.stop_all)
    except KeyboardInterrupt:
        pass
    gc.freeze()    # the interpreter's last collections would walk every object made: a second of the stop
    return 0
