"""Saved conversations through the web app's own endpoints (gradio_client, two visitors at once):
each visitor's turns, steps and files are saved under its owner; neither can open, rename, delete
or clear the other's, even knowing its id; and a new app on the same database (a restart) shows a
conversation again with its photo and the history the LLM will see."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.fakes.llm_server import ScriptedLLM
from tests.test_ui import STREET, ask, client, make_config, texts
from tests.uiapp import running_app, write_catalog

pytestmark = pytest.mark.timeout(240)


def _owner(db: Path, conversation: str) -> str:
    return sqlite3.connect(db).execute("SELECT owner FROM conversations WHERE id=?", (conversation,)).fetchone()[0]


def test_two_visitors_never_reach_each_others_conversations_and_a_restart_restores_them(tmp_path):
    catalog = write_catalog(tmp_path / "catalog.jsonl")
    db = tmp_path / "conversations.db"
    with ScriptedLLM(plan="[]", chat="Noted.", key="sk-a") as llm:
        config = make_config(catalog, llm.url).with_overrides(session={"store": str(db)})
        with running_app(config) as (url, demo):
            library = demo.jarvis_library
            a, b = client(url), client(url)
            ask(a, "alpha secret request", [STREET], key="sk-a")
            chat_b, resources_b, _ = ask(b, "bravo request", key="sk-a")
            assert not any("alpha" in t for t in texts(chat_b)) and "street.png" not in resources_b
            rows = sqlite3.connect(db).execute("SELECT id, title FROM conversations").fetchall()
            conv_a = next(i for i, title in rows if title.startswith("alpha"))
            conv_b = next(i for i, title in rows if title.startswith("bravo"))
            owner_a, owner_b = _owner(db, conv_a), _owner(db, conv_b)
            assert owner_a != owner_b and len(rows) == 2
            photo = library.store.folder(conv_a) / "street.png"
            assert photo.is_file()
            # b, knowing a's conversation id, asks for it through the panel's endpoint: refused
            try:
                shown = b.predict(conv_a, api_name="/open_conversation")
            except Exception as exc:                      # Gradio refuses a value not among b's choices
                assert conv_a in str(exc) or "not in the list" in str(exc)
            else:
                assert shown[0] == [] and "street.png" not in shown[1]
            # and the library, whatever reaches it, refuses b: no open, rename, delete, clear, stop
            assert library.open(owner_b, conv_a, config) is None and library.live(owner_b, conv_a) is None
            assert not library.rename(owner_b, conv_a, "taken") and not library.delete(owner_b, conv_a)
            library.clear(owner_b, conv_a, config)
            b.predict(api_name="/clear")                 # b clears its own chat
            assert photo.is_file() and library.store.turns(conv_a) and library.store.turns(conv_b) == []
            assert library.store.get(owner_a, conv_a).title == "alpha secret request"
            assert [title for title, _ in library.choices(owner_b)] == ["New conversation"]
        # a restart: a new app on the same database shows a's conversation again, photo and history
        with running_app(config) as (url, demo):
            library = demo.jarvis_library
            item = library.open(owner_a, conv_a, config)
            assert item is not None
            shown_files = [m["content"]["path"] for m in item.display if isinstance(m["content"], dict)]
            assert shown_files == [str(photo)]
            assert "Noted." in [m["content"] for m in item.display if isinstance(m["content"], str)]
            assert [r.name for r in item.session.store.list()] == ["street.png"]
            assert item.session.history[0]["content"].startswith("alpha secret request")
            assert library.open(owner_b, conv_a, config) is None
