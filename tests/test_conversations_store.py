"""The conversation store (jarvis.conversations) on real SQLite files: what a turn writes comes back,
owners never see each other's conversations, concurrent writers (threads, and a second connection)
lose nothing, a process killed in the middle of a transaction leaves the last committed state with
its running turn marked interrupted, idle conversations expire with their files, and a database
that cannot be opened is one clear error (the web app then serves without saving, saying so)."""
from __future__ import annotations

import json
import logging
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from jarvis.config import Config, load_config
from jarvis.conversations.location import store_path
from jarvis.conversations.records import INTERRUPTED_NOTE, StoredFile
from jarvis.conversations.store import ConversationStore, owner_key
from jarvis.errors import StoreError

ROOT = Path(__file__).resolve().parent.parent
ALICE, BOB = owner_key("alice-browser-id"), owner_key("bob-browser-id")


def _turn(store: ConversationStore, conv: str, n: int, picture: Path | None = None) -> int:
    user = [{"role": "user", "content": f"request {n}"}]
    turn = store.start_turn(conv, f"request {n}", user)
    messages = [{"role": "assistant", "content": "plan", "metadata": {"title": "Plan: 1 task", "status": "done"}},
                {"role": "assistant", "content": f"answer {n}"}]
    files = []
    if picture is not None:
        messages.append({"role": "assistant", "content": {"path": str(picture), "alt_text": picture.name}})
        files.append(StoredFile(picture.name, picture.name, "image", "generated"))
    store.finish_turn(conv, turn, "done", messages, [{"role": "user", "content": f"request {n}"},
                                                     {"role": "assistant", "content": f"answer {n}"}],
                      {"request": f"request {n}", "tasks": []}, files)
    return turn


def test_a_turn_comes_back_as_written_with_paths_relative_to_its_folder(tmp_path):
    store = ConversationStore(tmp_path / "c.db")
    conv = store.create(ALICE, "Edges of my photo")
    folder = store.folder(conv.id)
    folder.mkdir()
    picture = folder / "canny-1.png"
    picture.write_bytes(b"png")
    _turn(store, conv.id, 1, picture)
    (turn,) = store.turns(conv.id)
    assert turn.status == "done" and turn.request == "request 1" and turn.finished
    assert turn.messages[-1]["content"]["path"] == str(picture)           # absolute again when read
    assert turn.history[1] == {"role": "assistant", "content": "answer 1"}
    assert store.files(conv.id) == [StoredFile("canny-1.png", "canny-1.png", "image", "generated")]
    raw = sqlite3.connect(tmp_path / "c.db").execute("SELECT messages FROM turns").fetchone()[0]
    assert json.loads(raw)[-1]["content"]["path"] == "canny-1.png"        # stored relative: the folder may move
    assert sqlite3.connect(tmp_path / "c.db").execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert "alice-browser-id" not in (tmp_path / "c.db").read_bytes().decode("latin-1")   # only its hash


def test_owners_see_only_their_own_conversations(tmp_path):
    store = ConversationStore(tmp_path / "c.db")
    mine = store.create(ALICE, "alice's")
    assert [c.id for c in store.conversations(ALICE)] == [mine.id] and store.conversations(BOB) == []
    assert store.get(BOB, mine.id) is None and not store.rename(BOB, mine.id, "taken")
    assert store.get(ALICE, mine.id).title == "alice's"
    with pytest.raises(StoreError):
        store.folder("../../etc")             # an id is never a path


def test_concurrent_writers_lose_nothing(tmp_path):
    """Eight threads on one store and two more with connections of their own, writing at once."""
    path = tmp_path / "c.db"
    shared = ConversationStore(path)
    errors: list[BaseException] = []
    conversations: list[str] = []
    lock = threading.Lock()

    def writer(store: ConversationStore, who: int) -> None:
        try:
            conv = store.create(owner_key(f"writer-{who}"), f"writer {who}")
            with lock:
                conversations.append(conv.id)
            for n in range(25):
                _turn(store, conv.id, n)
        except BaseException as exc:       # reported below
            errors.append(exc)

    stores = [shared] * 8 + [ConversationStore(path), ConversationStore(path)]
    threads = [threading.Thread(target=writer, args=(s, i)) for i, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    reader = ConversationStore(path)
    assert len(conversations) == 10
    for conv in conversations:
        turns = reader.turns(conv)
        assert [t.request for t in turns] == [f"request {n}" for n in range(25)]
        assert all(t.status == "done" and t.messages[-1]["content"] == t.request.replace("request", "answer")
                   for t in turns)


_KILLED_MID_WRITE = textwrap.dedent("""
    import os, signal, sqlite3, sys
    from jarvis.conversations.store import ConversationStore
    path, owner = sys.argv[1], sys.argv[2]
    store = ConversationStore(path)
    conv = store.create(owner, "before the crash")
    turn = store.start_turn(conv.id, "first", [{"role": "user", "content": "first"}])
    store.finish_turn(conv.id, turn, "done", [{"role": "assistant", "content": "first answer"}], [], None, [])
    store.start_turn(conv.id, "second", [{"role": "user", "content": "second"}])
    print(conv.id, flush=True)
    # a write in progress when the process dies: half of it done, never committed
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("BEGIN IMMEDIATE")
    db.execute("UPDATE turns SET messages='[\\"half-written\\"]', status='done'")
    db.execute("DELETE FROM conversations")
    os.kill(os.getpid(), signal.SIGKILL)
""")


def test_a_process_killed_mid_transaction_leaves_the_last_committed_state(tmp_path):
    path = tmp_path / "c.db"
    out = subprocess.run([sys.executable, "-c", _KILLED_MID_WRITE, str(path), ALICE], capture_output=True,
                         text=True, timeout=60, cwd=ROOT)
    assert out.returncode == -9, out.stderr
    conv = out.stdout.strip()
    store = ConversationStore(path)            # the app starting again
    assert store.interrupted == 1
    assert [c.id for c in store.conversations(ALICE)] == [conv]
    first, second = store.turns(conv)
    assert first.status == "done" and first.messages == [{"role": "assistant", "content": "first answer"}]
    assert second.status == "interrupted" and second.messages == []
    assert second.display()[-1]["content"] == INTERRUPTED_NOTE


def test_a_write_waits_for_another_connections_transaction(tmp_path):
    path = tmp_path / "c.db"
    store = ConversationStore(path)
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")           # another process holds the write lock for a moment
    other.execute("INSERT INTO meta (key, value) VALUES ('other', 'x')")
    threading.Timer(0.5, lambda: other.execute("COMMIT")).start()
    started = time.perf_counter()
    conv = store.create(ALICE, "waited")
    assert time.perf_counter() - started >= 0.4
    assert store.get(ALICE, conv.id) is not None


@pytest.mark.parametrize("kind", ["under a file", "not a database", "read-only folder"])
def test_a_database_that_cannot_be_used_is_one_clear_error(tmp_path, kind):
    if kind == "under a file":
        (tmp_path / "plain").write_text("x")
        path = tmp_path / "plain" / "c.db"
    elif kind == "not a database":
        path = tmp_path / "c.db"
        path.write_bytes(b"this is not SQLite" * 100)
    else:
        folder = tmp_path / "ro"
        folder.mkdir()
        folder.chmod(0o500)
        path = folder / "c.db"
        import os
        if os.access(folder, os.W_OK):                # root writes anywhere, but not into procfs
            path = Path("/proc") / "c.db"
    with pytest.raises(StoreError) as caught:
        ConversationStore(path)
    message = str(caught.value)
    assert str(path) in message and "session.store" in message and "off" in message


def test_the_web_app_serves_without_saving_when_the_database_cannot_be_opened(tmp_path, caplog):
    from jarvis.frontends.web.library import Library
    (tmp_path / "plain").write_text("x")
    config = Config().with_overrides(session={"store": str(tmp_path / "plain" / "c.db")})
    with caplog.at_level(logging.ERROR, logger="jarvis.frontends.web.library"):
        library = Library(config)
    try:
        assert not library.saved and "not saved" in library.note and "plain" in library.note
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == [
            f"conversations will not be saved: {library.note.split(': ', 1)[1].rstrip('.')}"]
        owner = library.identify(None, "page-1")[1]
        conv, item = library.create(owner, "still works", config)
        assert library.open(owner, conv, config) is item
    finally:
        library.close_all()


def test_idle_conversations_expire_with_their_rows_and_files(tmp_path):
    from jarvis.frontends.web.library import Library
    config = Config().with_overrides(session={"store": str(tmp_path / "c.db"), "ttl_minutes": 1, "keep_days": 2})
    library = Library(config)
    try:
        assert library.ttl == 2 * 86400  # saved conversations last keep_days; ttl_minutes is for unsaved ones
        owner = library.identify("x" * 43, "page")[1]
        old, item = library.create(owner, "old", config)
        picture = item.session.store.root / "picture.png"
        picture.write_bytes(b"png")
        item.session.store.restore(picture, "upload")
        _turn(library.store, old, 1, picture)
        time.sleep(0.05)
        fresh, _ = library.create(owner, "fresh", config)
        assert picture.parent == library.store.folder(old) and picture.is_file()
        cutoff = library.store.conversations(owner)[0].updated      # "fresh" is active now, "old" not since
        assert library.expire(now=cutoff - 0.01 + library.ttl) == 1
        assert not picture.parent.exists() and library.store.turns(old) == [] and library.store.files(old) == []
        assert [c.id for c in library.store.conversations(owner)] == [fresh]
        assert library.registry.peek(old) is None
    finally:
        library.close_all()


def test_where_the_database_lives(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("SPACE_ID", raising=False)
    auto = Config()
    assert auto.session.store == "auto"
    assert store_path(auto) == tmp_path / "xdg" / "jarvis" / "conversations.db"
    for off in ("off", "", "OFF"):
        assert store_path(Config().with_overrides(session={"store": off})) is None
    assert store_path(Config().with_overrides(session={"store": str(tmp_path / "x.db")})) == tmp_path / "x.db"
    volume = tmp_path / "data"
    volume.mkdir()
    monkeypatch.setenv("SPACE_ID", "someone/jarvis")
    assert store_path(auto, space_volume=volume) == volume / "jarvis" / "conversations.db"
    assert store_path(auto, space_volume=tmp_path / "absent") == tmp_path / "xdg" / "jarvis" / "conversations.db"
    assert load_config(env={"JARVIS_SESSION_STORE": "off"}).session.store == "off"
    assert load_config(env={"JARVIS_SESSION_STORE": str(tmp_path / "y.db")}).session.store == str(tmp_path / "y.db")
