"""Fair share of a server's runs: each caller (an access token, else a client address) may run a
few requests at once, so one caller stalling on a slow endpoint cannot hold every slot.

A run counts as *attended* while its client waits for it; when the client leaves (answered,
disconnected, gave up) the slot is free at once, even if the run's worker thread still winds down
(an LLM call cannot be interrupted). Such winding-down runs are bounded too, per caller and in
all (BACKLOG times the attended limits), so leaving and retrying cannot pile up threads.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

from jarvis.errors import ApiError

BACKLOG = 4     # runs still winding down, allowed as a multiple of the attended limits
RETRY_AFTER = {"Retry-After": "5"}


def caller_key(owner: str, client_host: str | None) -> str:
    """Who a caller is for the limits: their access token's owner id, else their address."""
    return f"token:{owner}" if owner else f"address:{client_host or 'unknown'}"


@dataclass
class _Count:
    attended: int = 0
    alive: int = 0


class Ticket:
    """One admitted run. `detach()` when its client is gone, `finish()` when its work has ended;
    both are idempotent and may come in either order, from any thread."""

    def __init__(self, share: FairShare, caller: str):
        self._share, self.caller = share, caller
        self._attended = self._alive = True

    def detach(self) -> None:
        with self._share.lock:
            if self._attended:
                self._attended = False
                self._share.change(self.caller, attended=-1)

    def finish(self) -> None:
        self.detach()
        with self._share.lock:
            if self._alive:
                self._alive = False
                self._share.change(self.caller, alive=-1)


class FairShare:
    """Admission of runs: `admit(caller)` returns a Ticket or raises ApiError 429 saying why."""

    def __init__(self, max_runs: int, per_caller: int):
        self.max_runs, self.per_caller = max(1, max_runs), max(1, per_caller)
        self.lock = threading.Lock()
        self._callers: dict[str, _Count] = {}
        self._all = _Count()

    def admit(self, caller: str) -> Ticket:
        with self.lock:
            mine = self._callers.get(caller, _Count())
            if mine.attended >= self.per_caller:
                running = f"{mine.attended} request{'s' if mine.attended > 1 else ''}"
                raise ApiError(429, f"you already have {running} running on this server, its limit per caller "
                                    "(server.max_runs_per_caller): wait for one to finish",
                               "too_many_requests", dict(RETRY_AFTER))
            if mine.alive >= BACKLOG * self.per_caller:
                raise ApiError(429, "your earlier requests are still stopping on this server: try again in a minute",
                               "too_many_requests", {"Retry-After": "30"})
            if self._all.attended >= self.max_runs or self._all.alive >= BACKLOG * self.max_runs:
                raise ApiError(429, f"the server is answering {self.max_runs} requests already: try again shortly",
                               "server_busy", dict(RETRY_AFTER))
            self.change(caller, attended=1, alive=1)
        return Ticket(self, caller)

    def change(self, caller: str, attended: int = 0, alive: int = 0) -> None:
        """Adjust the counts (the caller holds `lock`); a caller with nothing left is forgotten."""
        mine = self._callers.setdefault(caller, _Count())
        for count in (mine, self._all):
            count.attended += attended
            count.alive += alive
        if mine.alive <= 0 and mine.attended <= 0:
            del self._callers[caller]

