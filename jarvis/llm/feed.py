"""One streamed HTTP answer read in a thread of its own, so that whoever takes its chunks can stop
waiting at deadlines httpx cannot express: the time to the first token, the silence between two
chunks, a ceiling on the whole call (httpx has one read timeout per socket read, and no total).

A read blocked in another thread is ended by shutting the connection's socket down, which wakes
that thread at once. Closing the socket instead could hand its number to a new connection while the
old thread still reads from it; the reading thread closes the response itself, in its own time.
"""
from __future__ import annotations

import queue
import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any, Literal

import httpx

Kind = Literal["item", "end", "error"]
Opener = Callable[[], tuple[httpx.Response, Iterable[Any]]]


class Feed:
    """`Feed(open)`: `open()` sends the request and returns (response, its items); the items are read
    in a daemon thread into a queue. `take(timeout)` hands them over one at a time: ("item", x),
    then ("end", None), or ("error", exc) when opening or reading failed. `close()` stops it."""

    def __init__(self, open_: Opener, name: str = "jarvis-llm-stream"):
        self._items: queue.Queue[tuple[Kind, Any]] = queue.Queue()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._response: httpx.Response | None = None
        threading.Thread(target=self._read, args=(open_,), name=name, daemon=True).start()

    def _read(self, open_: Opener) -> None:
        response: httpx.Response | None = None
        try:
            response, items = open_()
            with self._lock:
                self._response = response
            if self._stop.is_set():
                return
            for item in items:
                self._items.put(("item", item))
                if self._stop.is_set():
                    return
            self._items.put(("end", None))
        except BaseException as exc:  # handed to the taker, who explains it; a stopped feed's end is nobody's news
            if not self._stop.is_set():
                self._items.put(("error", exc))
        finally:
            if response is not None:
                response.close()

    def take(self, timeout: float) -> tuple[Kind, Any]:
        """The next item; queue.Empty when none came within `timeout` seconds."""
        return self._items.get(timeout=max(0.0, timeout))

    def close(self) -> None:
        """Stop reading: the thread ends at its next item, or at once when it waits on the socket."""
        self._stop.set()
        with self._lock:
            response = self._response
        sock = _socket_of(response)
        if sock is not None:
            try:
                socket.socket.shutdown(sock, socket.SHUT_RDWR)   # the plain socket's, also under TLS
            except OSError:
                pass   # already closed by the reading thread, or never connected


def _socket_of(response: httpx.Response | None) -> socket.socket | None:
    """The socket under a response, from httpcore's `network_stream` extension, when it has one."""
    stream = response.extensions.get("network_stream") if response is not None else None
    if stream is None:
        return None
    sock = stream.get_extra_info("socket")
    return sock if isinstance(sock, socket.socket) else None
