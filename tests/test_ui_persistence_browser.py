"""Saved conversations as a person meets them (issue 13), in Debian's Chromium driven by Playwright:
a conversation with an attached photo and a generated image survives a reload, and a crash and
restart of the app (`python app.py` killed with SIGKILL mid-request, started again on the same
database): the finished turn is intact with its images loaded, the cut one is marked interrupted.
Another browser sees none of it. The side panel's new, switch, rename and delete work."""
from __future__ import annotations

import importlib.util
import json
import os
import sqlite3
import time

import pytest

from jarvis.config import Config
from tests.fakes.llm_server import ScriptedLLM
from tests.prerequisites import require
from tests.test_ui_browser import ARGS, CHROMIUM, SHOTS, STREET
from tests.uiapp import AppProcess, free_port, running_app, write_catalog

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]
EDGES = json.dumps([{"task": "canny-control", "id": 0, "dep": [-1], "args": {"image": "street.png"}}])


def _browser(pw):
    require(os.path.exists(CHROMIUM), "Debian's chromium at /usr/bin/chromium", "apt-get install chromium")
    return pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)


def _open(page, url: str) -> None:
    page.goto(url, wait_until="load")
    page.get_by_text("Advanced settings").wait_for(timeout=30_000)


def _send(page, text: str, files=()) -> None:
    box = page.locator("#jarvis-input")
    page.wait_for_function("() => !document.querySelector('#jarvis-input textarea').disabled", timeout=60_000)
    if files:
        box.locator("input[type=file]").set_input_files([str(f) for f in files])
        box.locator("img").first.wait_for(timeout=20_000)
    box.locator("textarea").fill(text)
    box.locator("textarea").press("Enter")


def _loaded(page, selector: str) -> None:
    """Images matching `selector` in the chat are there and loaded."""
    images = page.locator(f"#jarvis-chat {selector}")
    images.first.wait_for(timeout=30_000)
    page.wait_for_function("sel => [...document.querySelectorAll(sel)].some(i => i.complete && i.naturalWidth > 0)",
                           arg=f"#jarvis-chat {selector}", timeout=30_000)


def _first_turn_is_shown(page) -> None:
    chat = page.locator("#jarvis-chat")
    chat.get_by_text("Show me the edges of this photo").wait_for(timeout=30_000)
    chat.get_by_text("Here are the edges of your photo.").wait_for(timeout=30_000)
    assert "Plan: 1 task" in chat.inner_text() and "canny-control" in chat.inner_text()
    _loaded(page, "img[src*='street']")          # the person's photo, inline again
    _loaded(page, "img[src*='canny']")           # the generated image, inline again


def _running_turns(db) -> int:
    with sqlite3.connect(db) as con:
        return con.execute("SELECT count(*) FROM turns WHERE status='running'").fetchone()[0]


def test_a_conversation_survives_reload_and_a_crash_and_another_browser_sees_none_of_it(tmp_path):
    require(importlib.util.find_spec("playwright") is not None, "playwright", "pip install -r requirements-dev.txt")
    from playwright import sync_api
    SHOTS.mkdir(exist_ok=True)
    db = tmp_path / "saved" / "conversations.db"
    port = free_port()
    with ScriptedLLM(plan=EDGES, answer="Here are the edges of your photo.", key=None) as llm, \
            sync_api.sync_playwright() as pw:
        env = {"JARVIS_SESSION_STORE": str(db), "OPENAI_BASE_URL": llm.url, "JARVIS_LLM_MODEL": "scripted",
               "JARVIS_CATALOG": str(write_catalog(tmp_path / "catalog.jsonl")), "JARVIS_INFERENCE_MODE": "local",
               "GRADIO_TEMP_DIR": str(tmp_path / "gradio")}
        browser = _browser(pw)
        app = AppProcess(port, env)
        page = browser.new_page(viewport={"width": 1360, "height": 1000})
        try:
            _open(page, app.url)
            _send(page, "Show me the edges of this photo", [STREET])
            _first_turn_is_shown(page)
            page.reload()
            _first_turn_is_shown(page)
            page.locator("#jarvis-conversations").get_by_text("Show me the edges of this photo").wait_for()
            # a second request, cut short: the app is killed while the LLM is still planning it
            llm.delay = 60.0
            asked = len(llm.requests)
            _send(page, "Caption it, slowly")
            deadline = time.time() + 30
            while len(llm.requests) == asked or _running_turns(db) == 0:
                assert time.time() < deadline, "the second request never started"
                time.sleep(0.1)
            app.kill()
            llm.delay = 0.0
            app = AppProcess(port, env)          # the same address: the browser keeps its id per origin
            _open(page, app.url)
            _first_turn_is_shown(page)
            chat = page.locator("#jarvis-chat")
            chat.get_by_text("Caption it, slowly").wait_for(timeout=30_000)
            chat.get_by_text("Interrupted").wait_for(timeout=30_000)
            assert _running_turns(db) == 0
            page.screenshot(path=str(SHOTS / "ui-saved-after-restart.png"), full_page=True)
            # another browser (its own storage, as another person's) sees none of it
            other = browser.new_context(viewport={"width": 1360, "height": 1000}).new_page()
            _open(other, app.url)
            other.locator("#jarvis-kept").wait_for()
            other.wait_for_timeout(1500)                                      # its page load has run
            assert other.locator("#jarvis-conversations label").count() == 0
            assert "Show me the edges" not in other.locator("body").inner_text()
            assert other.locator("img[src*='street'], img[src*='canny']").count() == 0
            other.screenshot(path=str(SHOTS / "ui-saved-other-browser.png"), full_page=True)
        except Exception:
            page.screenshot(path=str(SHOTS / "ui-saved-failed.png"), full_page=True)
            print(app.log[-5000:])
            raise
        finally:
            app.kill()
            browser.close()


def test_the_side_panel_switches_renames_and_deletes(tmp_path):
    require(importlib.util.find_spec("playwright") is not None, "playwright", "pip install -r requirements-dev.txt")
    from playwright import sync_api
    db = tmp_path / "conversations.db"
    with ScriptedLLM(plan="[]", chat="Plain answer.", key=None) as llm:
        config = Config().with_overrides(llm={"base_url": llm.url, "model": "scripted"},
                                         catalog={"path": str(write_catalog(tmp_path / "catalog.jsonl"))},
                                         session={"store": str(db)})
        with running_app(config) as (url, demo), sync_api.sync_playwright() as pw:
            library = demo.jarvis_library
            browser = _browser(pw)
            page = browser.new_page(viewport={"width": 1360, "height": 1000})
            panel, chat = page.locator("#jarvis-conversations"), page.locator("#jarvis-chat")
            try:
                _open(page, url)
                _send(page, "alpha request", [STREET])
                chat.get_by_text("Plain answer.").wait_for(timeout=60_000)
                panel.get_by_text("alpha request").wait_for(timeout=10_000)
                page.locator("#jarvis-new-conversation").click()
                page.wait_for_function("() => !document.querySelector('#jarvis-chat').innerText.includes('alpha')",
                                       timeout=10_000)
                _send(page, "bravo request")
                chat.get_by_text("bravo request").wait_for(timeout=60_000)
                panel.get_by_text("bravo request").wait_for(timeout=10_000)
                assert panel.locator("label").count() == 2
                # switch back: alpha's chat and its photo
                panel.get_by_text("alpha request").click()
                chat.get_by_text("alpha request").wait_for(timeout=10_000)
                _loaded(page, "img[src*='street']")
                assert "bravo" not in chat.inner_text()
                # rename: the list says so, after a reload too
                title = page.locator("#jarvis-title").locator("input, textarea").first
                title.fill("Photo of the street")
                page.locator("#jarvis-rename").click()
                panel.get_by_text("Photo of the street").wait_for(timeout=10_000)
                page.reload()
                page.locator("#jarvis-conversations").get_by_text("Photo of the street").wait_for(timeout=30_000)
                chat.get_by_text("alpha request").wait_for(timeout=10_000)     # the latest used opens
                # delete: gone from the list, the database and the disk; the other one shows
                with sqlite3.connect(db) as con:
                    (alpha,), = con.execute("SELECT id FROM conversations WHERE title='Photo of the street'")
                folder = library.store.folder(alpha)
                assert (folder / "street.png").is_file()
                page.locator("#jarvis-delete").click()
                chat.get_by_text("bravo request").wait_for(timeout=10_000)
                page.wait_for_function("() => !document.querySelector('#jarvis-conversations')"
                                       ".innerText.includes('Photo of the street')", timeout=10_000)
                assert panel.locator("label").count() == 1
                assert not folder.exists() and library.store.turns(alpha) == []
                page.screenshot(path=str(SHOTS / "ui-saved-panel.png"), full_page=True)
            except Exception:
                page.screenshot(path=str(SHOTS / "ui-saved-panel-failed.png"), full_page=True)
                raise
            finally:
                browser.close()
