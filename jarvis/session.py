"""One chat: its configuration and credentials, history, resource directory and stop switch.
Nothing about a user lives in module globals; the web UI keeps one Session per browser tab."""
from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from jarvis.config import Config
from jarvis.files.store import ResourceStore

HISTORY_MESSAGES = 8      # messages of earlier turns sent to the planner and the answerer
HISTORY_CHARS = 600       # each trimmed to this many characters


def _store(config: Config, root: str | Path | None) -> ResourceStore:
    files = config.files
    return ResourceStore(root, max_download_mb=files.max_download_mb, fetch_timeout=files.fetch_timeout,
                         max_image_megapixels=files.max_image_megapixels)


@dataclass
class Session:
    config: Config
    store: ResourceStore
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    history: list[dict] = field(default_factory=list)
    cancel: threading.Event = field(default_factory=threading.Event)
    busy: threading.Lock = field(default_factory=threading.Lock)
    last_active: float = field(default_factory=time.time)

    @classmethod
    def create(cls, config: Config, root: str | Path | None = None) -> Session:
        return cls(config=config, store=_store(config, root))

    def touch(self) -> None:
        self.last_active = time.time()

    def recent_history(self) -> list[dict]:
        out = []
        for msg in self.history[-HISTORY_MESSAGES:]:
            content = msg["content"]
            if len(content) > HISTORY_CHARS:
                content = content[:HISTORY_CHARS] + " ..."
            out.append({"role": msg["role"], "content": content})
        return out

    def remember(self, request: str, files: list[str], answer: str, generated: list[str]) -> None:
        user = request + (f"\n(attached: {', '.join(files)})" if files else "")
        assistant = answer + (f"\n(generated: {', '.join(generated)})" if generated else "")
        self.history += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]

    def clear(self) -> None:
        """Forget the chat and delete its files; the session stays usable."""
        self.history.clear()
        root = self.store.root
        self.store.cleanup()
        self.store = _store(self.config, root)

    def close(self) -> None:
        self.cancel.set()
        self.store.cleanup()
