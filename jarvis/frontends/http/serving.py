"""How Jarvis serves its port, the API alone (`python -m jarvis serve`) or the web app with it
(`app.py`, `python -m jarvis ui`): the layers every request passes, outermost first, and the
server's settings. docs/security.md explains each setting and what a deployment adds in front.

1. the connection layer (transport.py): header and body deadlines, connection caps;
2. the host check and forwarded headers (hosts.py);
3. the access token (access.py) for everything but the API's routes, which check it themselves;
4. a body limit for uploads and other non-API requests, equal to the API's (server.max_body_mb);
5. on the way out, `X-Content-Type-Options: nosniff` on every response.

SIGTERM and Ctrl-C stop it within about a second: `run`'s `on_stop` hook ends the running requests
at once, and what still streams after SHUTDOWN_GRACE is cut.
"""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading
from collections.abc import Callable
from types import FrameType

import uvicorn
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jarvis.config import Config
from jarvis.execution.local_slots import local_executor
from jarvis.frontends.http.access import AccessGate, under
from jarvis.frontends.http.auth import access_tokens
from jarvis.frontends.http.hosts import HostGuard, HostPolicy
from jarvis.frontends.http.transport import ConnectionLimits, protocol_for
from jarvis.outbound import binds_beyond_loopback
from jarvis.pipeline.controller import Controller

API_PREFIXES = ("/v1", "/hugginggpt", "/tasks", "/results", "/files")
LOCAL_SLOTS = 1            # local inferences at once in a server (one machine's CPU/GPU memory)
KEEP_ALIVE = 5             # seconds an idle kept-alive connection stays open
MAX_HEADER_BYTES = 16384   # a request line and headers larger than this are refused (400)
SHUTDOWN_GRACE = 1         # seconds open requests (and browsers' event streams) get when the server stops


def server_controller(config: Config) -> Controller:
    """A server's controller: its in-process local runs take one of LOCAL_SLOTS slots, only while they run
    (on Ray, local.backend: ray, the replicas are the limit instead)."""
    return Controller(config, local=local_executor(config.local, LOCAL_SLOTS))


def host_policy(config: Config, bound_host: str) -> HostPolicy:
    return HostPolicy.from_settings(config.server.allowed_hosts, config.server.trusted_proxies,
                                    bound_host=bound_host, env=dict(os.environ))


def guarded(app: ASGIApp, config: Config, bound_host: str) -> ASGIApp:
    """The app behind the host check, the access token and the body limit; every response nosniff."""
    limited = BodyLimit(app, int(config.server.max_body_mb * 2**20), config.server.max_body_mb)
    return NoSniff(HostGuard(AccessGate(limited, access_tokens(config), API_PREFIXES), host_policy(config, bound_host)))


def uvicorn_config(app: ASGIApp, config: Config, host: str, port: int) -> uvicorn.Config:
    """uvicorn's settings for a Jarvis server: our connection layer and no forwarded-header
    handling of its own (hosts.py does it, for configured proxies only)."""
    s = config.server
    limits = ConnectionLimits(s.header_timeout, s.body_timeout, s.max_connections,
                              exempt=host_policy(config, host).trusts)
    return uvicorn.Config(app, host=host, port=port, http=protocol_for(limits), ws="none", lifespan="on",
                          proxy_headers=False, server_header=False, timeout_keep_alive=KEEP_ALIVE,
                          h11_max_incomplete_event_size=MAX_HEADER_BYTES, timeout_graceful_shutdown=SHUTDOWN_GRACE,
                          log_level="warning")


def exposure_warnings(config: Config, host: str) -> list[str]:
    """What an operator should hear before serving on `host`: reachable from other machines without
    an access token, or under host names this server will refuse."""
    if not binds_beyond_loopback(host):
        return []
    notes = []
    if not access_tokens(config) and not os.environ.get("SPACE_ID"):
        notes.append(f"warning: serving on {host} without server.access_token (JARVIS_ACCESS_TOKEN): anyone who "
                     "can reach this port can use the web app and the API, and spend the server's keys")
    if not config.server.allowed_hosts and not os.environ.get("SPACE_HOST"):
        notes.append(f"note: requests are answered for IP addresses, localhost and {socket.gethostname()}; other "
                     "host names (a DNS name of this server) must be listed in server.allowed_hosts")
    return notes


def run(app: ASGIApp, config: Config, host: str, port: int, on_stop: Callable[[], None] | None = None) -> None:
    """Serve until Ctrl-C or SIGTERM; both end in KeyboardInterrupt, after the server stopped, so the
    caller's clean-up runs. `on_stop` runs (on the event loop) as soon as the signal comes: it stops
    the running requests, whose streams would otherwise hold the shutdown for SHUTDOWN_GRACE."""
    server = _Server(uvicorn_config(guarded(app, config, host), config, host, port), on_stop)
    if threading.current_thread() is not threading.main_thread():
        server.run()
        return
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        server.run()
    finally:
        signal.signal(signal.SIGTERM, previous)


def _terminated(sig: int, frame: FrameType | None) -> None:
    """uvicorn re-raises SIGTERM once it has stopped: end like Ctrl-C instead of dying on the spot."""
    raise KeyboardInterrupt


class _Server(uvicorn.Server):
    """uvicorn's server that tells the app at once when a stop signal arrives."""

    def __init__(self, config: uvicorn.Config, on_stop: Callable[[], None] | None):
        super().__init__(config)
        self._on_stop = on_stop

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        on_stop, self._on_stop = self._on_stop, None
        if on_stop is None:
            return
        try:    # a signal handler may interrupt code holding a lock: the loop runs the hook instead
            asyncio.get_running_loop().call_soon_threadsafe(on_stop)
        except RuntimeError:    # no loop runs yet (or any more): no request runs either
            pass


class NoSniff:
    """ASGI middleware: every response carries `X-Content-Type-Options: nosniff`, so a browser never
    treats a served file (an upload, a generated file) as another type than the one it is sent as
    (Gradio's file route sends anything but plain media as an application/octet-stream download)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_nosniff(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"x-content-type-options"]
                message = {**message, "headers": [*headers, (b"x-content-type-options", b"nosniff")]}
            await send(message)

        await self.app(scope, receive, send_nosniff)


class BodyLimit:
    """ASGI middleware: request bodies (web uploads...) beyond `max_bytes` get 413 before the app
    reads them, or as soon as a body without a length passes the limit. The API's own routes
    check their bodies themselves (with errors in the API's shape) and are left to them."""

    def __init__(self, app: ASGIApp, max_bytes: int, max_mb: float):
        self.app, self.max_bytes, self.max_mb = app, max_bytes, max_mb

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or under(scope.get("path", ""), API_PREFIXES):
            await self.app(scope, receive, send)
            return
        length = Headers(scope=scope).get("content-length", "")
        if length.isdigit() and int(length) > self.max_bytes:
            await self._refuse(send)
            return
        seen, refused, started = 0, False, False

        async def limited_receive() -> Message:
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    refused = True
                    if not started:
                        await self._refuse(send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:      # our 413 went out: what the app sends after it is dropped
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, limited_receive, guarded_send)

    async def _refuse(self, send: Send) -> None:
        body = (f'{{"error": "the upload is larger than this server\'s limit of {self.max_mb:g} MiB '
                f'(server.max_body_mb)", "code": "request_too_large"}}').encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"connection", b"close"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
