"""The web app as a stranger meets it (issue 16): served as `app.py` serves it (the web app and the
API on one port, behind jarvis.frontends.http.serving's guards), on loopback, driven by httpx and
gradio_client. The scripted LLM, a loopback endpoint that never answers and a tiny real TTS model
stand for the outside world; nothing in jarvis is patched."""
from __future__ import annotations

import contextlib
import time
from pathlib import Path
from urllib.parse import unquote

import httpx
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AuthenticationError

from jarvis.frontends.http.serving import server_controller
from jarvis.frontends.web.app import server_app
from tests.fakes.llm_server import ScriptedLLM
from tests.helpers import config_for, plan_json
from tests.test_hardening_server import Served, Stall
from tests.uiapp import TTS, ensure_models, write_catalog

pytestmark = pytest.mark.timeout(180)
STREET = Path(__file__).resolve().parent.parent / "examples" / "street.png"


class Site:
    """The served app: its URL, its session registry, and gradio_client visitors (closed at the end,
    so that their event streams do not hold the server's shutdown)."""

    def __init__(self, url: str, sessions):
        self.url, self.sessions, self.clients = url, sessions, []

    def client(self, token: str = "") -> Client:
        headers = {"Authorization": f"Bearer {token}"} if token else None
        self.clients.append(Client(self.url, verbose=False, download_files=False, headers=headers))
        return self.clients[-1]


@contextlib.contextmanager
def web(config):
    """The web app with the API, served as app.py serves them."""
    controller = server_controller(config)
    app, sessions = server_app(config, controller)
    try:
        with Served(app, config) as live:
            site = Site(live.url, sessions)
            try:
                yield site
            finally:
                for c in site.clients:
                    c.close()
    finally:
        sessions.close_all()
        controller.close()


def submit(c: Client, text: str, files=(), key: str = "", base_url: str = "", model: str = "", mode: str = "local"):
    return c.submit({"text": text, "files": [handle_file(str(f)) for f in files]}, key, "", base_url, model, mode,
                    api_name="/chat")


def texts(chat) -> list[str]:
    return [part["text"] for m in chat for part in m["content"] if part.get("type") == "text"]


def file_urls(chat) -> list[str]:
    return [part["file"]["url"] for m in chat for part in m["content"] if part.get("type") == "file"]


# -- the access token ------------------------------------------------------------------------------
def test_web_app_uploads_and_api_description_need_the_access_token():
    with ScriptedLLM(plan="[]", chat="hello") as llm, \
            web(config_for(llm.url, server={"access_token": "tok-a,tok-b"})) as site:
        url = site.url
        page = httpx.get(url, headers={"Accept": "text/html"})
        assert page.status_code == 401 and 'name="token"' in page.text and "gradio" not in page.text.lower()
        for path in ("/config", "/gradio_api/info", "/v1/docs", "/v1/openapi.json", "/filesystem", "/v1x"):
            assert httpx.get(url + path).status_code == 401, path
        upload = httpx.post(url + "/gradio_api/upload", files={"files": ("a.png", STREET.read_bytes(), "image/png")})
        assert upload.status_code == 401
        with pytest.raises(AuthenticationError):
            Client(url, verbose=False, download_files=False)
        # a person: the token once in the address, then a cookie (the token leaves the address)
        signed = httpx.get(url + "/?token=tok-a&lang=en")
        assert signed.status_code == 303 and signed.headers["location"] == "/?lang=en"
        cookie = signed.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "tok-a" not in cookie
        browser = httpx.Client(base_url=url, cookies=signed.cookies)
        assert browser.get("/").status_code == 200 and browser.get("/v1/docs").status_code == 200
        assert browser.get("/v1/models").status_code == 401      # the API itself wants the bearer header
        assert httpx.get(url + "/?token=tok-wrong").status_code == 401
        # or the sign-in page's form
        assert httpx.post(url + "/access", data={"token": "nope", "next": "/"}).status_code == 401
        form = httpx.post(url + "/access", data={"token": "tok-b", "next": "//evil.example/"})
        assert form.status_code == 303 and form.headers["location"] == "/" and "jarvis_access=" in form.headers["set-cookie"]
        # a program: the bearer header
        status = site.client("tok-b").predict("", "", "", "", "local", api_name="/status")
        assert "scripted" in status or "LLM" in status
        answered = submit(site.client("tok-a"), "hi").result()[0]
        assert "hello" in texts(answered)


def test_uploads_are_limited_like_api_bodies():
    with ScriptedLLM() as llm, web(config_for(llm.url, server={"max_body_mb": 1})) as site:
        url = site.url
        big, part, small = b"\x89PNG" + bytes(1_600_000), b"\x89PNG" + bytes(600_000), STREET.read_bytes()
        assert len(small) < 2**20
        r = httpx.post(url + "/gradio_api/upload", files={"files": ("big.png", big, "image/png")})
        assert r.status_code == 413 and "1 MiB" in r.json()["error"]
        # two files under the limit each, over it together
        two = [("files", ("a.png", part, "image/png")), ("files", ("b.png", part, "image/png"))]
        assert httpx.post(url + "/gradio_api/upload", files=two).status_code == 413

        def streamed():          # the same two files without a Content-Length: counted as they arrive
            for name in ("a.png", "b.png"):
                yield (f'--x\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
                       "Content-Type: image/png\r\n\r\n").encode()
                for i in range(0, len(part), 100_000):
                    yield part[i:i + 100_000]
                yield b"\r\n"
            yield b"--x--\r\n"
        r = httpx.post(url + "/gradio_api/upload", content=streamed(),
                       headers={"Content-Type": "multipart/form-data; boundary=x"})
        assert r.status_code == 413
        assert httpx.post(url + "/gradio_api/upload",
                          files={"files": ("street.png", small, "image/png")}).status_code == 200
        assert httpx.get(url + "/config").json()["max_file_size"] == 2**20


def test_a_visitors_model_choice_is_ignored_when_the_server_key_pays():
    with ScriptedLLM(plan="[]", chat="hello", key=["sk-server", "sk-mine"]) as llm, \
            web(config_for(llm.url, key="sk-server", llm={"model": "scripted"})) as site:
        submit(site.client(), "hi", model="gpt-4o-mini").result()
        assert {r["json"]["model"] for r in llm.requests} == {"scripted"}
        llm.requests.clear()
        submit(site.client(), "hi", key="sk-mine", model="gpt-4o-mini").result()   # their own key: their choice
        assert {r["json"]["model"] for r in llm.requests} == {"gpt-4o-mini"}


# -- fair share ------------------------------------------------------------------------------------
def test_a_visitor_stalled_on_the_llm_holds_no_local_slot():
    with ScriptedLLM(plan="[]", chat="hello") as llm, Stall() as stall, \
            web(config_for(llm.url, llm={"timeout": 20})) as site:
        stalled = submit(site.client(), "hi", key="sk-own", base_url=stall.url, mode="local")
        time.sleep(1.0)
        started = time.time()
        other = submit(site.client(), "hi", mode="local").result(timeout=60)[0]
        assert "hello" in texts(other) and time.time() - started < 8
        assert not stalled.done()
        stall.__exit__()
        stalled.result(timeout=60)


def test_one_visitor_gets_a_fair_share_of_the_runs():
    with ScriptedLLM(plan="[]", chat="hello") as llm, Stall() as stall, \
            web(config_for(llm.url, llm={"timeout": 20},
                           server={"access_token": "tok-a,tok-b", "max_runs_per_caller": 1})) as site:
        stalled = submit(site.client("tok-a"), "hi", key="sk-own", base_url=stall.url, mode="remote")
        time.sleep(1.0)
        second = submit(site.client("tok-a"), "hi", mode="remote").result(timeout=30)[0]
        assert any("already have 1 request running" in t for t in texts(second))
        assert "hello" in texts(submit(site.client("tok-b"), "hi", mode="remote").result(timeout=30)[0])
        stall.__exit__()
        stalled.result(timeout=60)
        assert "hello" in texts(submit(site.client("tok-a"), "hi", mode="remote").result(timeout=30)[0])


# -- Gradio's copies of a session's files ----------------------------------------------------------------
@pytest.fixture(scope="module")
def tts_catalog(tmp_path_factory, hub_cache) -> Path:
    ensure_models(hub_cache, {TTS})
    return write_catalog(tmp_path_factory.mktemp("web-hardening") / "catalog.jsonl")


def test_clear_and_expiry_delete_gradios_copies_of_the_files(tts_catalog):
    plan = plan_json(("text-to-speech", {"text": "hello there"}))
    cfg = config_for("", catalog={"path": str(tts_catalog)}, local={"device": "cpu"})
    with ScriptedLLM(plan=plan, answer="Here it is.") as llm, \
            web(cfg.with_overrides(llm={"base_url": llm.url})) as site:
        def turn(c: Client) -> list[str]:
            chat = submit(c, "read this aloud", [STREET]).result(timeout=120)[0]
            urls = file_urls(chat)
            assert len(urls) == 2 and any(u.endswith(".wav") for u in urls), texts(chat)   # the photo, the speech
            assert all(httpx.get(u).status_code == 200 for u in urls)
            return urls

        def gone(urls: list[str]) -> bool:
            """Not served any more (403: not one of Gradio's files now; 404), and deleted."""
            copies = [Path(unquote(u.split("/file=", 1)[1])) for u in urls]
            return all(httpx.get(u).status_code in (403, 404) for u in urls) and not any(p.exists() for p in copies)

        c = site.client()
        urls = turn(c)
        chat, _ = c.predict(api_name="/clear")
        assert chat == [] and gone(urls)
        urls = turn(c)
        assert site.sessions.expire(now=time.time() + site.sessions.ttl + 1) == 1
        assert gone(urls)


# -- a person with a browser ---------------------------------------------------------------------------
@pytest.mark.browser
def test_a_person_signs_in_with_the_token_and_chats():
    import importlib.util
    import os

    from tests.prerequisites import require
    chromium = "/usr/bin/chromium"
    require(os.path.exists(chromium), "Debian's chromium at /usr/bin/chromium", "apt-get install chromium")
    require(importlib.util.find_spec("playwright") is not None, "playwright", "pip install -r requirements-dev.txt")
    from playwright import sync_api
    with ScriptedLLM(plan="[]", chat="Hello from behind the door.") as llm, \
            web(config_for(llm.url, server={"access_token": "tok-a"})) as site, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True,
                                     args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"])
        try:
            page = browser.new_page()
            page.goto(site.url, wait_until="load")
            page.get_by_label("Access token").fill("tok-wrong")
            page.get_by_role("button", name="Sign in").click()
            page.get_by_text("The access token was not valid.").wait_for(timeout=10_000)
            page.get_by_label("Access token").fill("tok-a")
            page.get_by_role("button", name="Sign in").click()
            page.get_by_text("Advanced settings").wait_for(timeout=30_000)      # the app itself
            page.locator("#jarvis-input textarea").fill("hi")
            page.locator("#jarvis-input textarea").press("Enter")
            page.get_by_text("Hello from behind the door.").wait_for(timeout=30_000)
        finally:
            browser.close()
