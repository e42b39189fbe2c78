"""Hostile model output in a real browser (issue 13): Debian's Chromium, driven by Playwright, uses the
web app served as app.py serves it. A prompt-injected LLM and model write HTML, scripts,
`javascript:` links, an iframe, SVG, remote Markdown images (plain, titled, by reference, inside
links) and code-fence tricks into the plan, the model choice, a task's result, a task's error and
the answer; the person's own message carries some too. Every remote address points at a loopback
server that counts its requests: none may arrive, no script may run, no such element may exist,
and the text must be readable as text. An SVG upload is refused and served only as a download.

Run with -s to see what each hostile input became on the page."""
from __future__ import annotations

import importlib.util
import json
import os
import re
from http.server import BaseHTTPRequestHandler

import httpx
import pytest

from tests.fakes.inference_server import InferenceServer, png_bytes
from tests.fakes.llm_server import ScriptedLLM
from tests.fakes.loopback import HandlerThread
from tests.helpers import config_for, plan_json
from tests.prerequisites import require
from tests.test_hardening_web import web
from tests.test_inert_output import hostile
from tests.test_ui_browser import ARGS, CHROMIUM, SHOTS, STREET

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

LAST = "unclosed fence"          # swallows what follows: shown last
END = "END-OF-ANSWER"


class Beacon:
    """A loopback 'attacker' server: answers everything (a PNG for images) and records each request."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                outer.requests.append(self.path)
                body = png_bytes() if ".png" in self.path else b"<html><script>window.__pwned=1</script></html>"
                self.send_response(200)
                self.send_header("Content-Type", "image/png" if ".png" in self.path else "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET

        self.server = HandlerThread(Handler).start()
        self.url = self.server.url

    def close(self) -> None:
        self.server.close()


def _answer(bad: dict[str, str]) -> list[str]:
    """The answer: the session's own photo, then each hostile input under its label; streamed slowly."""
    names = [n for n in bad if n != LAST] + [LAST]
    text = "Your photo: ![your photo](street.png)\n\n" + "\n\n".join(f"#### item: {n}\n\n{bad[n]}" for n in names)
    text = text.replace(f"#### item: {LAST}", f"{END}\n\n#### item: {LAST}")
    return [text[i:i + 40] for i in range(0, len(text), 40)]


def test_hostile_model_output_is_inert_in_chromium(tmp_path):
    require(os.path.exists(CHROMIUM), "Debian's chromium at /usr/bin/chromium", "apt-get install chromium")
    require(importlib.util.find_spec("playwright") is not None, "playwright", "pip install -r requirements-dev.txt")
    from playwright import sync_api
    SHOTS.mkdir(exist_ok=True)
    beacon = Beacon()
    bad = hostile(beacon.url)
    catalog = tmp_path / "catalog.jsonl"
    catalog.write_text("\n".join(json.dumps(r) for r in [
        {"id": "openai-community/gpt2", "task": "text-generation", "downloads": 100},
        {"id": "distilbert/distilgpt2", "task": "text-generation", "downloads": 50}]))

    def plan(messages) -> str:
        if "evil.svg" in str(messages[-1]["content"]):
            return "[]"
        return plan_json(("text-generation", {"text": bad["img onerror"] + " " + bad["remote image"]}),
                         (bad["svg"], {"text": bad["iframe"]}))

    select = json.dumps({"0": {"id": "openai-community/gpt2", "reason": bad["iframe"] + " " + bad["javascript link"]}})
    evil_svg = tmp_path / "evil.svg"
    evil_svg.write_text(f'<svg xmlns="http://www.w3.org/2000/svg" onload="window.__pwned=1">'
                        f'<image href="{beacon.url}/svg-image.png"/></svg>')
    try:
        with InferenceServer(models={"openai-community/gpt2": "text-generation",
                                     "distilbert/distilgpt2": "text-generation"}) as service, \
                ScriptedLLM(plan=plan, select=select, answer=_answer(bad), key=None, chunk_delay=0.03) as llm, \
                web(config_for(llm.url, inference={"mode": "remote"}, catalog={"path": str(catalog)},
                               remote={"base_url": service.url, "timeout": 10, "max_retries": 1},
                               llm={"model": "scripted", "max_answer_tokens": 8000}, server={"access_token": ""})) as site, \
                sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            seen: list[str] = []
            try:
                page = browser.new_page(viewport={"width": 1360, "height": 1000})
                page.on("request", lambda r: seen.append(r.url))
                page.goto(site.url, wait_until="load")
                page.get_by_text("Advanced settings").wait_for(timeout=30_000)
                stop = page.locator("#jarvis-stop")
                assert stop.is_disabled()                                   # nothing runs yet
                box = page.locator("#jarvis-input")
                box.locator("input[type=file]").set_input_files(str(STREET))
                box.locator("textarea").fill(f"Continue this: {bad['remote image']} {bad['script']}")
                box.locator("img").first.wait_for(timeout=20_000)
                box.locator("textarea").press("Enter")
                page.wait_for_function("() => !document.querySelector('#jarvis-stop').disabled", timeout=30_000)
                chat = page.locator("#jarvis-chat")
                chat.get_by_text(END).wait_for(timeout=90_000)
                page.wait_for_function("() => document.querySelector('#jarvis-stop').disabled", timeout=30_000)
                for title in ("Plan: 2 tasks", "Task 0:", "Task 1:"):      # open the steps: their text renders
                    chat.get_by_text(title).first.click()
                chat.get_by_text("and then some more words").first.wait_for(timeout=10_000)
                page.wait_for_timeout(2000)                                # time for anything to load, if it could
                page.screenshot(path=str(SHOTS / "ui-hostile-output.png"), full_page=True)
                report = page.evaluate(_INSPECT, {"origin": site.url, "evil": beacon.url})
                # an SVG upload: refused, and Gradio's copy of it is a download that no browser sniffs
                box.locator("input[type=file]").set_input_files(str(evil_svg))
                box.locator("textarea").fill("Describe evil.svg")
                box.locator("textarea").press("Enter")
                chat.get_by_text("Cannot attach evil.svg").wait_for(timeout=30_000)
                page.wait_for_timeout(1000)
                svg_urls = page.evaluate("() => [...document.querySelectorAll('#jarvis-chat img')]"
                                         ".map(i => i.src).filter(s => s.includes('evil.svg'))")
                svg_served = [httpx.get(url).headers for url in svg_urls]
                pwned = page.evaluate("() => window.__pwned")
            except Exception:
                page.screenshot(path=str(SHOTS / "ui-hostile-failed.png"), full_page=True)
                raise
            finally:
                browser.close()
    finally:
        beacon.close()
    _print_report(bad, report)
    assert beacon.requests == [] and not [u for u in seen if u.startswith(beacon.url)], beacon.requests
    assert pwned is None
    assert report["active"] == [], report["active"]
    assert report["foreign_images"] == [], report["foreign_images"]
    assert report["bad_links"] == [], report["bad_links"]
    assert report["own_photo_images"] >= 2          # the person's photo, and the answer's image of it
    text = report["text"]
    for shown in (bad["script"], bad["iframe"], bad["svg"], bad["form"], f"{beacon.url}/leak.png?conversation=secret%20words",
                  f"{beacon.url}/reference.png", "[click me]", "javascript:window.__pwned=1"):
        assert shown in text, shown
    assert svg_served, "the refused SVG is not shown in the person's turn"
    for headers in svg_served:
        assert headers["content-type"] == "application/octet-stream"
        assert headers["content-disposition"].startswith("attachment")
        assert headers["x-content-type-options"] == "nosniff"


# What the page holds: anything active inside the chat, images not served by this app, links that
# do not show their address, the chat's text, and each labelled answer item as rendered.
_INSPECT = """({origin, evil}) => {
  const chat = document.querySelector('#jarvis-chat');
  const active = [...chat.querySelectorAll(
      'script, iframe, object, embed, form, input, meta, link, style:not([data-gradio]), video[poster], ' +
      'svg#evil-svg, [name=evil], [onerror], [onload], [ontoggle], a[href^="javascript:"], a[href^="data:"]')]
    .filter(e => e.closest('.message, .message-row, .bubble-wrap'))
    .map(e => e.outerHTML.slice(0, 200));
  const foreign_images = [...chat.querySelectorAll('img, image, video, audio, source')]
    .map(e => e.getAttribute('src') || e.getAttribute('href') || e.getAttribute('poster') || '')
    .filter(s => s && !s.startsWith(origin) && !s.startsWith('/') && !s.startsWith('data:') && !s.startsWith('blob:'));
  const bad_links = [...chat.querySelectorAll('.md a, .prose a')]
    .filter(a => !a.href.startsWith(origin))
    .filter(a => { try { const u = new URL(a.href), t = new URL(a.textContent.trim());
                         return !['http:', 'https:'].includes(u.protocol) || u.host !== t.host; }
                   catch (e) { return true; } })
    .map(a => a.outerHTML.slice(0, 200));
  const own_photo_images = [...chat.querySelectorAll('img')].filter(i => i.src.includes('street')).length;
  const items = {};
  for (const h of chat.querySelectorAll('h4')) {
    const name = h.textContent.replace(/^item: /, '');
    let html = '', text = '', n = h.nextElementSibling;
    while (n && n.tagName !== 'H4') { html += n.outerHTML; text += n.innerText + ' '; n = n.nextElementSibling; }
    items[name] = {html: html.slice(0, 5000), text: text.trim().slice(0, 200)};
  }
  return {active, foreign_images, bad_links, own_photo_images, text: chat.innerText, items};
}"""


def _print_report(bad: dict[str, str], report: dict) -> None:
    print("\nWhat each hostile input became on the page (visible text | elements):")
    for name in bad:
        item = report["items"].get(name)
        if item is None:
            print(f"- {name}: (not found under its label)")
            continue
        tags = sorted(set(t.lower() for t in re.findall(r"<([a-zA-Z0-9]+)", item["html"])))
        print(f"- {name}: {item['text']!r} | {' '.join(tags)}")
