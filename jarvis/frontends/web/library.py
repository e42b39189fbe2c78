"""A person's conversations in the web app: saved in the conversation store (jarvis.conversations)
and kept live in the session registry. A browser is known by an unguessable id it keeps (Gradio's
BrowserState); the store knows only its hash, and every request names it, so another browser never
sees, opens, renames or deletes a conversation that is not its own.

When saving is off (session.store: off), or the database cannot be opened or written, the same code
runs on a database in a temporary folder that goes with the app: a page's conversations last while
the page is open (the page is the owner), and the status says why they are not saved.

Idle conversations (session.keep_days without activity when saved, session.ttl_minutes when not)
are deleted, rows and files together, by
`expire` (a sweeper thread calls it); so are deleted and cleared ones, at once."""
from __future__ import annotations

import logging
import re
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jarvis.config import Config
from jarvis.conversations.location import store_path
from jarvis.conversations.records import StoredFile, TurnStatus
from jarvis.conversations.store import ConversationStore, owner_key
from jarvis.errors import StoreError
from jarvis.frontends.safe_text import code_span
from jarvis.frontends.web.gradio_cache import copies_of, shown_paths
from jarvis.frontends.web.render import user_messages
from jarvis.frontends.web.sessions import SessionRegistry, UISession, sweep_every

log = logging.getLogger(__name__)

NEW_TITLE = "New conversation"
_BROWSER_ID = re.compile(r"[A-Za-z0-9_-]{32,64}")


def _title(text: str, files: list[str]) -> str:
    if text.strip():
        return text
    return ("Files: " + ", ".join(Path(f).name for f in files)) if files else NEW_TITLE


def _present(message: dict[str, Any]) -> dict[str, Any]:
    """A saved message as shown again: a file that is gone (a refused upload's temporary copy) is named."""
    content = message.get("content")
    if isinstance(content, dict) and content.get("path") and not Path(content["path"]).is_file():
        return {"role": message["role"], "content": f"📎 {code_span(Path(content['path']).name)} (no longer available)"}
    return message


class Library:
    """The conversations of one built app (build_ui): store, live sessions, who owns what."""

    def __init__(self, config: Config, on_close: Callable[[UISession], None] | None = None):
        self.note = ""            # why conversations are not saved, for the page's status; "" when they are
        self._temp: Path | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._failed_write = False
        path = store_path(config)
        store: ConversationStore | None = None
        if path is not None:
            try:
                store = ConversationStore(path)
            except StoreError as exc:
                log.error("conversations will not be saved: %s", exc)
                self.note = f"⚠️ Conversations are not saved on this server: {exc}."
        self.saved = store is not None
        self.ttl = config.session.keep_days * 86400 if self.saved else config.session.ttl_minutes * 60
        if store is None:
            self._temp = Path(tempfile.mkdtemp(prefix="jarvis-conversations-"))
            store = ConversationStore(self._temp / "conversations.db")
        else:
            log.info("conversations are saved in %s", store.path)
            if store.interrupted:
                log.info("%d request(s) cut short by the last stop are shown as interrupted", store.interrupted)
        self.store = store
        self.secret = store.secret
        # the library expires conversations (rows and files together); the registry never does on its own
        self.registry = SessionRegistry(float("inf"), on_close=on_close)
        self._on_close = on_close

    # -- who -------------------------------------------------------------------
    def identify(self, browser_id: Any, page: str) -> tuple[str, str]:
        """(the id the browser keeps, the owner key of its conversations). Saved: the browser's id,
        or a new one when it has none; not saved: the page is the owner."""
        if not self.saved:
            return str(browser_id or ""), owner_key(f"page:{page}")
        if not isinstance(browser_id, str) or not _BROWSER_ID.fullmatch(browser_id):
            browser_id = secrets.token_urlsafe(32)
        return browser_id, owner_key(browser_id)

    # -- conversations ------------------------------------------------------------
    def choices(self, owner: str) -> list[tuple[str, str]]:
        """(title, id) of the owner's conversations, the most recent first."""
        return [(c.title, c.id) for c in self.store.conversations(owner)] if owner else []

    def title(self, owner: str, conversation: str) -> str:
        conv = self.store.get(owner, conversation) if owner and conversation else None
        return conv.title if conv else ""

    def live(self, owner: str, conversation: str) -> UISession | None:
        """The owner's conversation if it is live in this app (never loaded from the store)."""
        item = self.registry.peek(conversation) if conversation else None
        return item if item is not None and self.store.get(owner, conversation) is not None else None

    def latest(self, owner: str) -> str:
        found = self.store.conversations(owner) if owner else []
        return found[0].id if found else ""

    def open(self, owner: str, conversation: str, config: Config) -> UISession | None:
        """The live session of the owner's conversation (loaded from the store when it is not live),
        or None when the owner has no such conversation."""
        if not owner or not conversation or self.store.get(owner, conversation) is None:
            return None
        root = self.store.folder(conversation) if self.saved else None
        item = self.registry.get(conversation, config, root)
        with self._lock:
            if not item.restored:
                self._restore(conversation, item)
                item.restored = True
        return item

    def _restore(self, conversation: str, item: UISession) -> None:
        display: list[dict[str, Any]] = []
        for turn in self.store.turns(conversation):
            display += turn.display()
            item.session.history += turn.history
        root = item.session.store.root
        for f in self.store.files(conversation):
            path = root / f.path
            if path.is_file():
                item.session.store.restore(path, f.origin)
        item.display = [_present(m) for m in display]
        item.cached |= copies_of(shown_paths(item.display))

    def create(self, owner: str, title: str, config: Config) -> tuple[str, UISession]:
        conv = self.store.create(owner, title)
        item = self.open(owner, conv.id, config)
        assert item is not None
        return conv.id, item

    def rename(self, owner: str, conversation: str, title: str) -> bool:
        return bool(owner and conversation) and self.store.rename(owner, conversation, title)

    def delete(self, owner: str, conversation: str) -> bool:
        """Delete the owner's conversation: its run stops, its rows and files go."""
        if not owner or not conversation or self.store.get(owner, conversation) is None:
            return False
        self._discard(conversation)
        return True

    def clear(self, owner: str, conversation: str, config: Config) -> None:
        """Empty the owner's conversation: its run stops, its turns and files go; it stays listed."""
        item = self.open(owner, conversation, config)
        if item is None:
            return
        session = item.session
        session.cancel.set()
        if not session.busy.acquire(timeout=30):
            return
        try:
            session.clear()
            item.display = []
            if self._on_close is not None:
                self._on_close(item)
            self.store.clear(conversation, NEW_TITLE)
        finally:
            session.busy.release()

    def _discard(self, conversation: str) -> None:
        item = self.registry.peek(conversation)
        if item is not None:
            item.session.cancel.set()
            if item.session.busy.acquire(timeout=30):
                item.session.busy.release()
        self.registry.close(conversation, delete_files=True)
        self.store.delete(conversation)
        if self.saved:
            shutil.rmtree(self.store.folder(conversation), ignore_errors=True)

    def forget_page(self, owner: str) -> None:
        """The page closed: without saving, its conversations and files go with it."""
        if not self.saved:
            for conversation in self.store.owned_by(owner):
                self._discard(conversation)

    def expire(self, now: float | None = None) -> int:
        """Delete every conversation idle for longer than the TTL (not one that runs); returns how many."""
        now = time.time() if now is None else now
        gone = 0
        for conversation in self.store.idle_since(now - self.ttl):
            item = self.registry.peek(conversation)
            if item is not None and item.session.busy.locked():
                continue
            self._discard(conversation)
            gone += 1
        if gone:
            log.info("%d idle conversation(s) deleted with their files", gone)
        return gone

    def start_sweeper(self, interval: float) -> None:
        sweep_every(interval, self.expire, self._stop, "conversations")

    def close_all(self) -> None:
        """The app stops: live sessions end (saved ones keep their files), the database closes."""
        self._stop.set()
        self.registry.close_all(delete_files=not self.saved)
        self.store.close()
        if self._temp is not None:
            shutil.rmtree(self._temp, ignore_errors=True)

    # -- writing a turn ---------------------------------------------------------------
    def write(self, action: Callable[[], Any]) -> Any:
        """Run a store write; a failure is logged (loudly the first time) and the chat goes on."""
        try:
            return action()
        except StoreError as exc:
            (log.warning if self._failed_write else log.error)("a conversation could not be saved: %s", exc)
            self._failed_write = True
            return None


class TurnLog:
    """Saves one turn as it goes: written as running before anything runs, what it has shown at each
    step (so a crash keeps it), then how it ended with its history, records and files."""

    def __init__(self, library: Library, conversation: str, item: UISession, text: str, files: list[str]):
        self.library, self.conversation, self.item, self.text, self.files = library, conversation, item, text, files
        self.session = item.session
        self._before = {r.path for r in self.session.store.list()}
        self._history = len(self.session.history)
        title = None if item.display else _title(text, files)       # the first turn names the conversation
        self.turn: int | None = library.write(
            lambda: library.store.start_turn(conversation, text, user_messages(text, files), title))

    def user(self) -> list[dict[str, Any]]:
        """The person's turn with their files as this session's copies (Gradio's upload copies go);
        files the session refused (copied in order, up to the first refused) stay as they came."""
        uploads = [str(r.path) for r in self.session.store.list() if r.origin == "upload" and r.path not in self._before]
        return user_messages(self.text, uploads + self.files[len(uploads):])

    def _files(self) -> list[StoredFile]:
        root = self.session.store.root
        return [StoredFile(r.name, str(r.path.relative_to(root)) if r.path.is_relative_to(root) else str(r.path),
                           r.type, r.origin) for r in self.session.store.list()]

    def step(self, messages: list[dict[str, Any]], first: bool = False) -> None:
        if self.turn is not None:
            turn = self.turn
            self.library.write(lambda: self.library.store.save_turn(
                self.conversation, turn, user=self.user() if first else None, messages=messages, files=self._files()))

    def finish(self, status: TurnStatus, messages: list[dict[str, Any]], record: dict[str, Any] | None) -> None:
        if self.turn is None:
            return
        turn, history = self.turn, self.session.history[self._history:]
        self.library.write(lambda: self.library.store.finish_turn(
            self.conversation, turn, status, messages, history, record, self._files()))
