"""What a person sees: Debian's chromium, driven by Playwright, types a request, attaches an image,
and sees the plan steps, a generated image and a playable audio answer. Screenshots go to
tests/screenshots/ for people to look at."""
from __future__ import annotations

import importlib.util
import json
import os
import time
from pathlib import Path

import pytest

from jarvis.config import Config
from tests.fakes.llm_server import ScriptedLLM
from tests.prerequisites import require
from tests.uiapp import UI_MODELS, ensure_models, running_app, write_catalog

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
SHOTS = Path(__file__).resolve().parent / "screenshots"
STREET = Path(__file__).resolve().parent.parent / "examples" / "street.png"

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]


def _plan(messages) -> str:
    """Edges of the attached photo for the first request; caption then speech for the second."""
    request = str(messages[-1]["content"])
    if "aloud" in request:
        return json.dumps([{"task": "image-to-text", "id": 0, "dep": [-1], "args": {"image": "photo.png"}},
                           {"task": "text-to-speech", "id": 1, "dep": [0], "args": {"text": "<GENERATED>-0"}}])
    return json.dumps([{"task": "canny-control", "id": 0, "dep": [-1], "args": {"image": "street.png"}}])


def test_a_person_sees_steps_generated_image_and_audio(tmp_path, hub_cache):
    require(os.path.exists(CHROMIUM), "Debian's chromium at /usr/bin/chromium", "apt-get install chromium")
    require(importlib.util.find_spec("playwright") is not None, "playwright", "pip install -r requirements-dev.txt")
    from playwright import sync_api
    ensure_models(hub_cache, UI_MODELS)
    SHOTS.mkdir(exist_ok=True)
    catalog = write_catalog(tmp_path / "catalog.jsonl")
    photo = tmp_path / "photo.png"
    photo.write_bytes(STREET.read_bytes())
    # no key typed in the browser: the endpoint stands for a local server without authentication
    with ScriptedLLM(plan=_plan, answer="Here is the result, with the files below.", key=None) as llm:
        # not saved (test_ui_persistence has the saved case): closing the tab ends the conversation
        config = Config().with_overrides(llm={"base_url": llm.url, "model": "scripted"},
                                         catalog={"path": str(catalog)}, local={"device": "cpu"},
                                         session={"store": "off"})
        with running_app(config) as (url, demo), sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            try:
                page = browser.new_page(viewport={"width": 1360, "height": 1000})
                page.goto(url, wait_until="load")
                page.get_by_text("Advanced settings").wait_for(timeout=30_000)
                page.screenshot(path=str(SHOTS / "ui-1-start.png"), full_page=True)
                box = page.locator("#jarvis-input")
                box.locator("input[type=file]").set_input_files(str(STREET))
                box.locator("textarea").fill("Show me the edges of this photo")
                box.locator("img").first.wait_for(timeout=20_000)
                box.locator("textarea").press("Enter")
                chat = page.locator("#jarvis-chat")
                chat.get_by_text("Plan: 1 task").wait_for(timeout=60_000)
                chat.get_by_text("Here is the result").wait_for(timeout=60_000)
                generated = chat.locator("img[src*='canny']")
                generated.first.wait_for(timeout=30_000)
                assert generated.first.evaluate("img => img.complete && img.naturalWidth > 0")
                assert chat.locator("img[src*='street']").count() >= 1          # the user's photo in their turn
                assert "canny-control" in chat.inner_text()
                page.locator("#jarvis-resources").get_by_text("canny-").first.wait_for()
                page.screenshot(path=str(SHOTS / "ui-2-generated-image.png"), full_page=True)
                # caption then speak: the audio answer is a playable <audio>
                page.wait_for_function("() => !document.querySelector('#jarvis-input textarea').disabled",
                                       timeout=30_000)
                box.locator("input[type=file]").set_input_files(str(photo))
                box.locator("textarea").fill("Caption this photo and read the caption aloud")
                box.locator("img").first.wait_for(timeout=20_000)
                box.locator("textarea").press("Enter")
                chat.get_by_text("Plan: 2 tasks").wait_for(timeout=60_000)
                audio = chat.locator("audio")
                audio.first.wait_for(state="attached", timeout=60_000)
                for _ in range(60):   # the player has loaded the WAV: it knows its duration
                    if audio.evaluate_all("els => els.some(a => a.readyState >= 1 && a.duration > 0)"):
                        break
                    page.wait_for_timeout(500)
                else:
                    pytest.fail("the audio answer never became playable")
                chat.get_by_text("Task 1: text-to-speech").first.click()  # open a collapsed step
                chat.get_by_text("Produced audio").first.wait_for(timeout=10_000)
                page.screenshot(path=str(SHOTS / "ui-3-audio-answer.png"), full_page=True)
                # closing the tab ends the session: its files are deleted
                registry = demo.jarvis_library.registry
                (item,) = [registry.peek(k) for k in list(registry.keys())]
                root = item.session.store.root
                assert root.is_dir()
                page.close()
                for _ in range(40):
                    if len(registry) == 0 and not root.exists():
                        break
                    time.sleep(0.25)
                else:
                    pytest.fail("closing the tab did not end the session")
            except Exception:
                page.screenshot(path=str(SHOTS / "ui-failed.png"), full_page=True)
                raise
            finally:
                browser.close()
