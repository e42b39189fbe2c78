"""Live sessions of the web app: a registry keyed by conversation (jarvis.frontends.web.library
decides the keys and which conversation a browser may open), and expiry of idle sessions (their
files are deleted, and Gradio's copies of them through `on_close`).

The registry is owned by one built app (build_ui), never a module global: two apps in one
process share nothing."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jarvis.config import Config
from jarvis.session import Session

log = logging.getLogger(__name__)


@dataclass
class UISession:
    """What the web app keeps for one browser session: the controller's Session and the chat as shown."""
    session: Session
    display: list[dict[str, Any]] = field(default_factory=list)   # chat messages in Gradio's messages format
    cached: set[str] = field(default_factory=set)                 # Gradio's copies of the files shown
    copies: dict[str, str] = field(default_factory=dict)          # a saved file -> its copy in Gradio's cache
    restored: bool = False                                        # its saved turns and files are loaded


class SessionRegistry:
    """Sessions by Gradio session hash; closes (and deletes the files of) sessions idle past the TTL.
    `on_close(item)` runs for each session closed, after its own files are gone."""

    def __init__(self, ttl_seconds: float, on_close: Callable[[UISession], None] | None = None):
        self.ttl = float(ttl_seconds)
        self._on_close = on_close
        self._items: dict[str, UISession] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None

    def get(self, key: str, config: Config, root: Path | None = None) -> UISession:
        """The session under `key` (created on first use, its files in `root`, else a new temporary
        folder) configured with `config`."""
        self.expire()
        with self._lock:
            item = self._items.get(key)
            if item is None:
                item = UISession(Session.create(config, root))
                self._items[key] = item
        item.session.touch()
        return item

    def peek(self, key: str) -> UISession | None:
        with self._lock:
            return self._items.get(key)

    def close(self, key: str, delete_files: bool = True) -> None:
        """End one session: stop its run and delete its files (or, with delete_files=False, only
        forget it here: its files stay, saved with its conversation)."""
        with self._lock:
            item = self._items.pop(key, None)
        if item is None:
            return
        if not delete_files:
            item.session.cancel.set()
            return
        item.session.close()
        if self._on_close is not None:
            self._on_close(item)
        log.info("web session closed; its files were deleted")

    def expire(self, now: float | None = None) -> int:
        """Close every session idle for longer than the TTL (not one that is running); returns how many."""
        now = time.time() if now is None else now
        with self._lock:
            stale = [k for k, v in self._items.items()
                     if now - v.session.last_active > self.ttl and not v.session.busy.locked()]
        for key in stale:
            self.close(key)
        return len(stale)

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._items)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def start_sweeper(self, interval: float = 60.0) -> None:
        """A daemon thread that expires idle sessions every `interval` seconds."""
        if self._sweeper is None:
            self._sweeper = sweep_every(interval, self.expire, self._stop, "web sessions")

    def close_all(self, delete_files: bool = True) -> None:
        self._stop.set()
        with self._lock:
            keys = list(self._items)
        for key in keys:
            self.close(key, delete_files)


def sweep_every(interval: float, expire: Callable[[], object], stop: threading.Event, what: str) -> threading.Thread:
    """A daemon thread that calls `expire` every `interval` seconds until `stop` is set; a failing
    sweep is logged and the next one still runs."""
    def loop() -> None:
        while not stop.wait(interval):
            try:
                expire()
            except Exception:
                log.exception("expiring %s failed", what)

    thread = threading.Thread(target=loop, name=f"jarvis-sweeper-{what.replace(' ', '-')}", daemon=True)
    thread.start()
    return thread
