"""Jarvis's MCP server: streamable HTTP at /gradio_api/mcp/ (Gradio's path, so hosts that know Gradio
Spaces find it) on the port of the web app and of `python -m jarvis serve`, mounted by
jarvis.frontends.http.app.create_app.

Written on the `mcp` SDK's low-level server rather than Gradio's `mcp_server=True`, which would make
every Gradio endpoint a tool (the web chat with its six settings, status, stop, clear), call each tool
back through the app's own HTTP queue, hand out public `gradio_api/file=` links, and not exist at all
under `python -m jarvis serve` (no Gradio there). Here a tool call is one more consumer of the
controller's event stream, through the HTTP API's machinery (jarvis.frontends.http.runs): the same
credentials rule (the caller's own HF token and LLM key from X-* headers, or the server's, never a
mix), fair share, time limit and file links bound to the caller's access token. Progress
notifications follow the run's events. Stateless: each call is one HTTP request.
"""
from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from mcp import types
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from pydantic import ValidationError
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from jarvis import __version__
from jarvis.errors import ApiError, JarvisError
from jarvis.events import Done, Failed
from jarvis.frontends.http.access import caller_owner
from jarvis.frontends.http.runs import Api, Run, failed_error
from jarvis.frontends.mcp.content import Content, answer_content, data_content, media_parts, progress_line, task_content
from jarvis.frontends.mcp.tools import JarvisArguments, ListModelsArguments, Models, RunTaskArguments, TaskTypes, tool_specs
from jarvis.pipeline.records import RunResult
from jarvis.runners.registry import TASK_TYPES
from jarvis.runners.registry import get as task_type

log = logging.getLogger(__name__)

MCP_PATH = "/gradio_api/mcp"
MODELS_LISTED = 20
INSTRUCTIONS = ("Jarvis answers requests with Hugging Face models. Call `jarvis` with what you want done (and "
                "files as URLs or data: URLs); or plan yourself with list_task_types, list_models and run_task.")
Result = list[Content] | tuple[list[Content], dict[str, Any]]


class McpEndpoint:
    """The MCP server of one app: its tools over the app's Api (controller, file links, limits)."""

    def __init__(self, api: Api):
        self.api = api
        self.ttl = float(api.config.server.file_ttl)
        self.specs = tool_specs(self.ttl)
        self.server: Server[Any, Request] = Server("Jarvis", version=__version__, instructions=INSTRUCTIONS)
        self.server.list_tools()(self._list_tools)
        self.server.call_tool()(self._call_tool)
        # the API's body limit, plus room for the JSON-RPC envelope around a data: URL
        self.manager = StreamableHTTPSessionManager(self.server, json_response=False, stateless=True,
                                                    max_request_body_size=api.max_body + 65536)

    # -- serving ---------------------------------------------------------------------------
    def routes(self) -> list[Route]:
        """The endpoint, with and without its trailing slash (clients write both)."""
        transport = _Transport(self.manager)
        return [Route(MCP_PATH, transport), Route(MCP_PATH + "/", transport)]

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """While the app runs: the transport's task group (calls in flight end with it)."""
        async with self.manager.run():
            yield

    # -- the protocol's handlers -------------------------------------------------------------
    async def _list_tools(self) -> list[types.Tool]:
        return [spec.tool() for spec in self.specs.values()]

    async def _call_tool(self, name: str, arguments: dict[str, Any]) -> Result:
        spec = self.specs.get(name)
        if spec is None:
            raise ApiError(404, f"no tool named {name!r}; the tools are: {', '.join(self.specs)}")
        try:
            args = spec.arguments.model_validate(arguments)
        except ValidationError as exc:
            raise ApiError(400, f"invalid arguments for {name}: {exc.errors()[:3]}") from None
        try:
            if isinstance(args, JarvisArguments):
                return await self._jarvis(args)
            if isinstance(args, ListModelsArguments):
                return self._list_models(args)
            if isinstance(args, RunTaskArguments):
                return await self._run_task(args)
            return self._list_task_types()
        except JarvisError:
            raise          # its message is for the caller: the SDK returns it as the tool's error
        except Exception as exc:
            log.exception("MCP tool %s failed", name)
            raise ApiError(500, f"internal error ({type(exc).__name__}); the server log has the details") from None

    # -- tools -----------------------------------------------------------------------------------
    def _list_task_types(self) -> Result:
        mode = self.api.config.inference.mode
        catalog = self.api.controller.catalog
        items = []
        for t in TASK_TYPES.values():
            runs_here = bool(catalog.candidates(t.name, k=1, mode=mode)) if t.needs_model else mode != "remote"
            if not runs_here:
                continue
            names = t.input_names or t.inputs
            items.append({"name": t.name, "description": t.description,
                          "inputs": [{"type": r, "meaning": n} for r, n in zip(t.inputs, names)],
                          "outputs": list(t.outputs), "needs_model": t.needs_model})
        return data_content(TaskTypes.model_validate({"mode": mode, "task_types": items}))

    def _list_models(self, args: ListModelsArguments) -> Result:
        spec = task_type(args.task)
        mode = self.api.config.inference.mode
        models = []
        for m in self.api.controller.catalog.candidates(spec.name, k=MODELS_LISTED, mode=mode):
            runs = ["space"] if m.space else [side for side, ok in (("local", mode != "remote" and m.runs_locally()),
                                                                    ("remote", mode != "local" and m.remote)) if ok]
            models.append({"id": m.id, "downloads": m.downloads, "likes": m.likes, "runs": runs,
                           "description": m.description})
        return data_content(Models.model_validate({"task": spec.name, "mode": mode, "models": models}))

    async def _jarvis(self, args: JarvisArguments) -> Result:
        request, owner = self._caller()
        parts = media_parts(args.files)
        cfg = await self.api.config_for(request)
        run = await self.api.start(request, cfg, owner, args.request, parts, [])
        try:
            return answer_content(run, await self._follow(run), self.ttl)
        finally:
            run.close()

    async def _run_task(self, args: RunTaskArguments) -> Result:
        request, owner = self._caller()
        parts = media_parts(args.files)
        cfg = await self.api.config_for(request)
        texts, controller = list(args.text or []), self.api.controller
        run = await self.api.start(request, cfg, owner, f"{args.task} on {args.model}", parts, [],
                                   job=lambda session, files: controller.run_task(session, args.task, args.model,
                                                                                  texts, files))
        try:
            return task_content(run, await self._follow(run), self.ttl)
        finally:
            run.close()

    # -- pieces --------------------------------------------------------------------------------
    def _caller(self) -> tuple[Request, str]:
        """The HTTP request carrying this call, and the owner id of its access token."""
        request = self.server.request_context.request
        if request is None:
            raise ApiError(400, "this MCP server is served over HTTP only")
        owner = caller_owner(Headers(scope=request.scope), self.api.tokens)
        if owner is None:
            raise ApiError(401, "this server needs its access token: send 'Authorization: Bearer <token>'",
                           "invalid_api_key")
        return request, owner

    async def _follow(self, run: Run) -> RunResult:
        """The run's result; each new progress line goes to the caller when it asked for progress."""
        ctx = self.server.request_context
        token = ctx.meta.progressToken if ctx.meta is not None else None
        step, last, result = 0, None, None
        async for event in run.events():
            if isinstance(event, Failed):
                raise failed_error(event)
            if isinstance(event, Done):
                result = event.result
                continue
            line = progress_line(event)
            if token is None or line is None or line == last:
                continue
            step, last = step + 1, line
            await ctx.session.send_progress_notification(token, float(step), None, line,
                                                         related_request_id=str(ctx.request_id))
        if result is None:
            raise ApiError(502, "the request ended without an answer", "upstream_error")
        return result


class _Transport:
    """The ASGI app behind both routes: MCP clients go to the SDK's transport; a browser that opens
    the URL gets a line saying what it is."""

    def __init__(self, manager: StreamableHTTPSessionManager):
        self.manager = manager

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        accept = Headers(scope=scope).get("accept", "")
        if scope.get("method") == "GET" and "text/event-stream" not in accept:
            response = PlainTextResponse("Jarvis MCP server (streamable HTTP): add this URL to an MCP client; "
                                         "docs/mcp.md says how.")
            await response(scope, receive, send)
            return
        await self.manager.handle_request(scope, receive, send)
