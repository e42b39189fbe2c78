"""Servers on a free 127.0.0.1 port, run in a daemon thread, for the tests' fakes and the apps under test.

- `UvicornThread`: an ASGI app under uvicorn. The port is bound when the object is made, so `url` and
  `port` are known before `with` starts it (a config may need the port, a fake may hand out its URL).
- `HandlerThread`: an `http.server` handler class under a ThreadingHTTPServer.

Both start on `__enter__` (or `start()`) and stop on `__exit__` (or `close()`), joining the thread.
"""
from __future__ import annotations

import abc
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

import uvicorn

HOST = "127.0.0.1"


class _Served(abc.ABC):
    """A server that `with` starts and stops."""

    @abc.abstractmethod
    def start(self) -> Self: ...

    @abc.abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


class UvicornThread(_Served):
    """`config(port)` makes the uvicorn.Config at start. `force_exit` stops without waiting for open
    connections (a browser's event streams) and without the app's lifespan shutdown."""

    def __init__(self, config: Callable[[int], uvicorn.Config], *, force_exit: bool = False, start_timeout: float = 15.0,
                 what: str = "the server"):
        self.sock = socket.socket()
        self.sock.bind((HOST, 0))
        self.port: int = self.sock.getsockname()[1]
        self.url = f"http://{HOST}:{self.port}"
        self._config, self._force_exit = config, force_exit
        self._start_timeout, self._what = start_timeout, what
        self.server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        self.server = uvicorn.Server(self._config(self.port))
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self._thread.start()
        deadline = time.time() + self._start_timeout
        while not self.server.started:
            assert time.time() < deadline, f"{self._what} did not start"
            time.sleep(0.02)
        return self

    def close(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
            self.server.force_exit = self._force_exit
        if self._thread is not None:
            self._thread.join(15)
        self.sock.close()


class HandlerThread(_Served):
    """Each request served by `handler` in a thread of its own (daemon threads: closing does not wait
    for a keep-alive client to hang up)."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], *, poll_interval: float = 0.5):
        self.httpd = ThreadingHTTPServer((HOST, 0), handler)
        self.httpd.daemon_threads = True
        self.port: int = self.httpd.server_address[1]
        self.url = f"http://{HOST}:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": poll_interval},
                                        daemon=True)

    def start(self) -> Self:
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread.is_alive():
            self.httpd.shutdown()
            self._thread.join(15)
        self.httpd.server_close()
