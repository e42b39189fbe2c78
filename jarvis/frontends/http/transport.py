"""The connection layer of the server (uvicorn's h11 protocol with limits it lacks): a client must
send a request's headers within `header_timeout` seconds and its body within `body_timeout`
(uvicorn has no such timeouts: a connection trickling a byte now and then stays open for ever,
and a few hundred of them lock everyone out), and at most `max_connections` connections are open
at once, a quarter of them per client address (proxies excepted, which carry many clients).
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

_BUSY_TEXT = b"too many connections: try again shortly\n"
BUSY = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\nconnection: close\r\n"
        b"content-length: %d\r\n\r\n%s" % (len(_BUSY_TEXT), _BUSY_TEXT))


@dataclass
class ConnectionLimits:
    """The limits of one server, shared by its connections (all on the event loop's thread)."""
    header_timeout: float
    body_timeout: float
    max_connections: int
    exempt: Callable[[str], bool] = lambda address: False     # proxies: no per-address cap
    per_address: dict[str, int] = field(default_factory=dict)

    @property
    def max_per_address(self) -> int:
        return max(1, self.max_connections // 4)


class LimitedH11Protocol(H11Protocol):
    """H11Protocol that cuts connections too slow to send a request and refuses those beyond the caps."""
    limits: ConnectionLimits

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._timer: asyncio.TimerHandle | None = None
        self._phase: str | None = None
        self._address = ""
        self._counted = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._address = self.client[0] if self.client else ""
        limits = self.limits
        mine = limits.per_address.get(self._address, 0)
        if len(self.connections) > limits.max_connections or (
                mine >= limits.max_per_address and not limits.exempt(self._address)):
            log.info("refused a connection from %s: %s", self._address,
                        "too many from this address" if mine >= limits.max_per_address else "too many in all")
            transport.write(BUSY)
            transport.close()
            return
        limits.per_address[self._address] = mine + 1
        self._counted = True
        self._track()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        if self._counted:
            self._counted = False
            left = self.limits.per_address.get(self._address, 1) - 1
            if left > 0:
                self.limits.per_address[self._address] = left
            else:
                self.limits.per_address.pop(self._address, None)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._track()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._track()

    # -- the deadlines ---------------------------------------------------------------------------
    def _track(self) -> None:
        """Start the deadline of what the client must send next: headers (idle), a body, or nothing."""
        if self.transport.is_closing():
            self._cancel()
            return
        state = self.conn.their_state
        phase = "headers" if state is h11.IDLE else "body" if state is h11.SEND_BODY else None
        if phase == self._phase:
            return
        self._cancel()
        self._phase = phase
        if phase is not None:
            seconds = self.limits.header_timeout if phase == "headers" else self.limits.body_timeout
            self._timer = self.loop.call_later(seconds, self._expire)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._phase = None, None

    def _expire(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        if self._phase == "body" and self.flow.read_paused:   # the app is not reading: not the client's fault
            self._timer = self.loop.call_later(self.limits.header_timeout, self._expire)
            return
        log.info("closed a connection from %s: its request %s did not arrive in time", self._address, self._phase)
        self.transport.close()


def protocol_for(limits: ConnectionLimits) -> type[LimitedH11Protocol]:
    """The protocol class of one server, bound to its limits (uvicorn builds one per connection)."""
    return type("JarvisH11Protocol", (LimitedH11Protocol,), {"limits": limits})
