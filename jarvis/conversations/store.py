"""The conversation database: SQLite (the standard library's sqlite3) in WAL mode, every write one
transaction, so a crash or a kill leaves the last committed state and nothing half-written. A turn
is written as "running" when it starts and rewritten when it ends; one found still running when
the database opens was cut short by a crash or a restart and is marked "interrupted".

A conversation belongs to an owner key: the SHA-256 of the browser's unguessable id (the id itself
is never stored), and every query a person's request leads to names that key, so no one reaches
another's conversation by knowing its id. Each conversation's files live in its own folder beside
the database (`<name>-files/<conversation id>/`); deleting the rows is the caller's cue to delete
the folder (jarvis.frontends.web.library does both)."""
from __future__ import annotations

import contextlib
import hashlib
import json
import re
import secrets
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from jarvis.conversations.records import (
    RUNNING,
    Conversation,
    StoredFile,
    StoredTurn,
    TurnStatus,
    absolute_messages,
    relative_messages,
)
from jarvis.errors import StoreError

SCHEMA_VERSION = 1
BUSY_SECONDS = 10.0          # how long a write waits for another process's transaction
TITLE_CHARS = 80
_ID = re.compile(r"[0-9a-f]{32}")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, title TEXT NOT NULL,
    created REAL NOT NULL, updated REAL NOT NULL);
CREATE INDEX IF NOT EXISTS conversations_by_owner ON conversations (owner, updated);
CREATE TABLE IF NOT EXISTS turns (
    id INTEGER PRIMARY KEY, conversation TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    status TEXT NOT NULL, request TEXT NOT NULL, user TEXT NOT NULL, messages TEXT NOT NULL,
    history TEXT NOT NULL, record TEXT, started REAL NOT NULL, finished REAL);
CREATE INDEX IF NOT EXISTS turns_by_conversation ON turns (conversation, id);
CREATE TABLE IF NOT EXISTS files (
    conversation TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE, name TEXT NOT NULL,
    path TEXT NOT NULL, type TEXT NOT NULL, origin TEXT NOT NULL, PRIMARY KEY (conversation, name));
"""


def owner_key(browser_id: str) -> str:
    """What the database knows a browser by: a hash of its id, useless to anyone reading the file."""
    return hashlib.sha256(browser_id.encode("utf-8")).hexdigest()


def short_title(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= TITLE_CHARS else text[:TITLE_CHARS - 1].rstrip() + "…"


def _problem(path: Path, exc: BaseException) -> StoreError:
    return StoreError(f"cannot use the conversation database {path}: {exc}. Make its folder writable, or set "
                      "session.store (or JARVIS_SESSION_STORE) to another file, or to off")


class ConversationStore:
    """One SQLite file and the folder of its conversations' files. Thread-safe: one connection,
    used under a lock (writes are short); other processes on the same file wait up to BUSY_SECONDS."""

    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser().resolve()
        self.files_root = self.path.parent / f"{self.path.stem}-files"
        self._lock = threading.RLock()
        try:
            self.files_root.mkdir(parents=True, exist_ok=True)
            probe = self.files_root / f".probe-{uuid.uuid4().hex}"
            probe.touch()
            probe.unlink()
            self._db = sqlite3.connect(self.path, timeout=BUSY_SECONDS, isolation_level=None,
                                       check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise _problem(self.path, exc) from None
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")    # with WAL: a crash of the app loses nothing committed
            self._db.execute("PRAGMA foreign_keys=ON")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(f"the conversation database {self.path} was written by a newer Jarvis (schema "
                                 f"{version}); upgrade Jarvis, or set session.store to another file")
            with self._write() as db:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('browser_secret', ?)",
                           (secrets.token_urlsafe(24),))
                self.interrupted = db.execute("UPDATE turns SET status='interrupted' WHERE status=?",
                                              (RUNNING,)).rowcount
            self.secret: str = self._db.execute("SELECT value FROM meta WHERE key='browser_secret'").fetchone()[0]
        except sqlite3.Error as exc:
            self._db.close()
            raise _problem(self.path, exc) from None
        except BaseException:
            self._db.close()
            raise

    # -- plumbing ---------------------------------------------------------
    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One transaction: all of it is written, or none of it."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise _problem(self.path, exc) from None
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise _problem(self.path, exc) from None
                raise

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                cur = self._db.execute(sql, args)
                cur.row_factory = sqlite3.Row
                return cur.fetchall()
            except sqlite3.Error as exc:
                raise _problem(self.path, exc) from None

    def folder(self, conversation: str) -> Path:
        """The folder of a conversation's files (not created here)."""
        if not _ID.fullmatch(conversation):
            raise StoreError(f"not a conversation id: {conversation[:40]!r}")
        return self.files_root / conversation

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- conversations ----------------------------------------------------
    def create(self, owner: str, title: str) -> Conversation:
        now = time.time()
        conv = Conversation(uuid.uuid4().hex, short_title(title) or "New conversation", now, now)
        with self._write() as db:
            db.execute("INSERT INTO conversations (id, owner, title, created, updated) VALUES (?, ?, ?, ?, ?)",
                       (conv.id, owner, conv.title, now, now))
        return conv

    def get(self, owner: str, conversation: str) -> Conversation | None:
        """The conversation if `owner` has it, else None."""
        rows = self._read("SELECT id, title, created, updated FROM conversations WHERE id=? AND owner=?",
                          (conversation, owner))
        return Conversation(*rows[0]) if rows else None

    def conversations(self, owner: str) -> list[Conversation]:
        """The owner's conversations, the most recently active first."""
        rows = self._read("SELECT id, title, created, updated FROM conversations WHERE owner=? "
                          "ORDER BY updated DESC, created DESC", (owner,))
        return [Conversation(*r) for r in rows]

    def rename(self, owner: str, conversation: str, title: str) -> bool:
        title = short_title(title)
        if not title:
            return False
        with self._write() as db:
            return db.execute("UPDATE conversations SET title=?, updated=? WHERE id=? AND owner=?",
                              (title, time.time(), conversation, owner)).rowcount == 1

    def touch(self, conversation: str) -> None:
        with self._write() as db:
            db.execute("UPDATE conversations SET updated=? WHERE id=?", (time.time(), conversation))

    def delete(self, conversation: str) -> None:
        """Its rows (turns and files with it); the caller deletes its folder."""
        with self._write() as db:
            db.execute("DELETE FROM conversations WHERE id=?", (conversation,))

    def clear(self, conversation: str, title: str = "New conversation") -> None:
        """Forget its turns and files; the conversation stays, under `title`."""
        with self._write() as db:
            db.execute("DELETE FROM turns WHERE conversation=?", (conversation,))
            db.execute("DELETE FROM files WHERE conversation=?", (conversation,))
            db.execute("UPDATE conversations SET title=?, updated=? WHERE id=?", (title, time.time(), conversation))

    def owned_by(self, owner: str) -> list[str]:
        return [r[0] for r in self._read("SELECT id FROM conversations WHERE owner=?", (owner,))]

    def idle_since(self, cutoff: float) -> list[str]:
        """Conversations with no activity after `cutoff` (a time.time() value)."""
        return [r[0] for r in self._read("SELECT id FROM conversations WHERE updated < ?", (cutoff,))]

    # -- turns ------------------------------------------------------------
    def start_turn(self, conversation: str, request: str, user: list[dict[str, Any]], title: str | None = None) -> int:
        """The turn, written as running before anything runs (and the conversation's new title, if
        given); returns its id."""
        root = self.folder(conversation)
        now = time.time()
        with self._write() as db:
            cur = db.execute("INSERT INTO turns (conversation, status, request, user, messages, history, started) "
                             "VALUES (?, ?, ?, ?, '[]', '[]', ?)",
                             (conversation, RUNNING, request, json.dumps(relative_messages(user, root)), now))
            db.execute("UPDATE conversations SET updated=? WHERE id=?", (now, conversation))
            if title is not None and short_title(title):
                db.execute("UPDATE conversations SET title=? WHERE id=?", (short_title(title), conversation))
            assert cur.lastrowid is not None
            return cur.lastrowid

    def save_turn(self, conversation: str, turn: int, *, user: list[dict[str, Any]] | None = None,
                  messages: list[dict[str, Any]] | None = None, files: Sequence[StoredFile] = ()) -> None:
        """What a running turn has shown so far (and the files it has added), so a crash keeps it."""
        root = self.folder(conversation)
        with self._write() as db:
            if user is not None:
                db.execute("UPDATE turns SET user=? WHERE id=?", (json.dumps(relative_messages(user, root)), turn))
            if messages is not None:
                db.execute("UPDATE turns SET messages=? WHERE id=?",
                           (json.dumps(relative_messages(messages, root)), turn))
            self._put_files(db, conversation, files)

    def finish_turn(self, conversation: str, turn: int, status: TurnStatus, messages: list[dict[str, Any]],
                    history: list[dict[str, Any]], record: dict[str, Any] | None,
                    files: Sequence[StoredFile]) -> None:
        """The turn as it ended, its conversation's files, and the conversation's last activity: at once."""
        root = self.folder(conversation)
        now = time.time()
        with self._write() as db:
            db.execute("UPDATE turns SET status=?, messages=?, history=?, record=?, finished=? WHERE id=?",
                       (status, json.dumps(relative_messages(messages, root)), json.dumps(history),
                        None if record is None else json.dumps(record, default=str), now, turn))
            self._put_files(db, conversation, files)
            db.execute("UPDATE conversations SET updated=? WHERE id=?", (now, conversation))

    @staticmethod
    def _put_files(db: sqlite3.Connection, conversation: str, files: Sequence[StoredFile]) -> None:
        db.executemany("INSERT OR REPLACE INTO files (conversation, name, path, type, origin) VALUES (?, ?, ?, ?, ?)",
                       [(conversation, f.name, f.path, f.type, f.origin) for f in files])

    def turns(self, conversation: str) -> list[StoredTurn]:
        root = self.folder(conversation)
        rows = self._read("SELECT id, status, request, user, messages, history, record, started, finished "
                          "FROM turns WHERE conversation=? ORDER BY id", (conversation,))
        return [StoredTurn(r["id"], r["status"], r["request"], absolute_messages(json.loads(r["user"]), root),
                           absolute_messages(json.loads(r["messages"]), root), json.loads(r["history"]),
                           json.loads(r["record"]) if r["record"] else None, r["started"], r["finished"])
                for r in rows]

    def files(self, conversation: str) -> list[StoredFile]:
        rows = self._read("SELECT name, path, type, origin FROM files WHERE conversation=? ORDER BY rowid",
                          (conversation,))
        return [StoredFile(*r) for r in rows]
