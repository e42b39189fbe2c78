"""Caller-chosen LLM endpoints, attacked from outside, on loopback only: the server's keys never reach a
look-alike of a known endpoint, a public deployment reaches no internal address (not by a typed URL,
a redirect, a DNS answer mixing in a private address, nor a name that rebinds after the early check),
upstream error bodies are not reflected, and no user name or password in a URL reaches a message.

Everything runs through the real front ends (the web app with gradio_client, the HTTP API with httpx)
or the real LLM client, against real servers on 127.0.0.1 (the scripted OpenAI-compatible server, over
TLS where the attack needs https). Names are pointed at 127.0.0.1 by the resolver the outbound policy
takes, never by patching. A process audit hook makes any connection off this machine fail.
"""
from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import socket
import sys
from http.server import BaseHTTPRequestHandler

import httpx
import pytest
import uvicorn

from jarvis.config import Config, load_config
from jarvis.credentials import is_hf_router, names_other_endpoint
from jarvis.errors import ApiError, LLMError, ResourceError
from jarvis.files.store import ResourceStore
from jarvis.files.url_fetch import fetch_to_store
from jarvis.frontends.http.app import create_app
from jarvis.frontends.http.auth import endpoint_refusal, request_config
from jarvis.frontends.web.credentials import resolve, status_markdown
from jarvis.llm.client import LLM, Usage
from jarvis.pipeline.controller import Controller
from tests.fakes.llm_server import Fault, ScriptedLLM
from tests.fakes.loopback import HandlerThread, UvicornThread
from tests.fakes.tls import self_signed, serve_tls
from tests.uiapp import free_port, write_catalog

pytestmark = pytest.mark.timeout(240)

LOOKALIKE = "router.huggingface.co.attacker.example"
SERVER_HF = "hf_server_secret_0123456789"
SERVER_SK = "sk-server-secret-0123456789"
PASSWORD = "hunter2pw"
MSG = [{"role": "user", "content": "hi"}]
_GUARD = {"on": False}
_CONNECTS: list[tuple] = []


def _audit(event: str, args: tuple) -> None:
    if _GUARD["on"] and event == "socket.connect" and isinstance(args[1], tuple):
        _CONNECTS.append(args[1])
        if not ipaddress.ip_address(str(args[1][0]).split("%")[0]).is_loopback:
            raise RuntimeError(f"test tried to connect off this machine: {args[1]}")


sys.addaudithook(_audit)


@pytest.fixture(autouse=True)
def loopback_only():
    _CONNECTS.clear()
    _GUARD["on"] = True
    yield
    _GUARD["on"] = False


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    return write_catalog(tmp_path_factory.mktemp("endpoints") / "catalog.jsonl")


def resolver_for(names: dict[str, list[str]]):
    """A resolver that knows only `names` (as a test's DNS would answer them)."""
    def lookup(host: str, port: int) -> list[str]:
        if host in names:
            return names[host]
        raise socket.gaierror(socket.EAI_NONAME, f"{host} is unknown to this test")
    return lookup


def server_config(catalog, env: dict[str, str], **sections) -> Config:
    cfg = load_config(env=env)
    return cfg.with_overrides(llm={"model": "scripted", "max_retries": 0, "timeout": 10, **sections.pop("llm", {})},
                              catalog={"path": str(catalog)}, local={"device": "cpu"}, **sections)


def port_of(llm: ScriptedLLM) -> int:
    return int(llm.url.rsplit(":", 1)[1].split("/")[0])


def seen_by(llm: ScriptedLLM) -> list[dict]:
    """Every request the fake received, accepted or refused by its key check."""
    return llm.requests + llm.refused


# -- the front ends, live ----------------------------------------------------------
@contextlib.contextmanager
def web_app(config: Config, controller: Controller):
    from gradio_client import Client

    from jarvis.frontends.web.app import build_ui
    demo = build_ui(config, controller).queue()
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, ssr_mode=False)
    try:
        yield Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=False)
    finally:
        demo.jarvis_library.close_all()
        demo.close()


def ask(client, text: str, key: str = "", base_url: str = "") -> str:
    """One chat turn in the web app; the text of the messages answering it."""
    chat, _, _ = client.predict({"text": text, "files": []}, key, "", base_url, "scripted", "local", api_name="/chat")
    last_user = max(i for i, m in enumerate(chat) if m["role"] == "user")
    return " ".join(part["text"] for m in chat[last_user + 1:] for part in m["content"] if part.get("type") == "text")


@contextlib.contextmanager
def api_server(config: Config, controller: Controller | None = None):
    """The HTTP API under uvicorn on a free loopback port; yields its base URL."""
    app = create_app(config, controller or Controller(config))
    with UvicornThread(lambda port: uvicorn.Config(app, log_level="warning", lifespan="on"),
                       what="the API server") as live:
        yield live.url


def api_chat(base: str, **headers: str) -> httpx.Response:
    return httpx.post(f"{base}/v1/chat/completions", timeout=60,
                      headers={"Authorization": "Bearer tok", **headers},
                      json={"model": "jarvis", "messages": [{"role": "user", "content": "hi"}]})


@contextlib.contextmanager
def redirector(location: str):
    """A server answering every POST with 307 to `location`, its body naming what it is."""
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = b'{"error": {"message": "REDIRECTOR-BODY: go to the internal service"}}'
            self.send_response(307)
            self.send_header("Location", location)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with HandlerThread(Handler) as server:
        yield server.port


# -- 1. exact endpoint identity ---------------------------------------------------------
IDENTITY = [
    ("https://router.huggingface.co/v1", True),
    ("https://ROUTER.huggingface.co./v1", True),               # the same host: case and the root's dot
    ("https://router.huggingface.co:443/v1", True),
    ("https://api-inference.huggingface.co/models", True),
    (f"https://{LOOKALIKE}/v1", False),
    ("https://router.huggingface.co@evil.example/v1", False),
    ("https://router.huggingface.co\\@evil.example/v1", False),
    ("https://router.huggingface.co%2eevil.example/v1", False),
    ("http://router.huggingface.co/v1", False),                # wrong scheme
    ("https://router.huggingface.co:8443/v1", False),
    ("https://user:pw@router.huggingface.co/v1", False),       # userinfo: never a known endpoint
]


def test_known_endpoints_are_recognised_by_scheme_host_and_port():
    assert {url: is_hf_router(url) for url, _ in IDENTITY} == dict(IDENTITY)
    server = "https://llm.example.org/v1"
    assert not names_other_endpoint("https://LLM.example.org./v1/", server)
    for other in ("https://llm.example.org.evil.example/v1", "https://llm.example.org@evil.example/v1",
                  "http://llm.example.org/v1", "https://llm.example.org:8443/v1", "https://u:p@llm.example.org/v1"):
        assert names_other_endpoint(other, server), other
    # an API caller naming a look-alike with an HF token: that token is no key for it
    cfg = load_config(env={"HF_TOKEN": SERVER_HF})
    with pytest.raises(ApiError, match="must bring its own key"):
        request_config(cfg, base_url=f"https://{LOOKALIKE}/v1", hf_token="hf_caller")


def test_web_app_never_sends_the_server_token_to_a_lookalike(tmp_path, monkeypatch, catalog):
    cert, key = self_signed(tmp_path, [LOOKALIKE])
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))      # the look-alike's certificate is trusted: only the key policy stands
    config = server_config(catalog, {"HF_TOKEN": SERVER_HF})
    lookup = resolver_for({LOOKALIKE: ["127.0.0.1"]})
    controller = Controller(config, llm=lambda cfg: LLM(cfg, resolver=lookup))
    with serve_tls(ScriptedLLM(chat="hello from the look-alike", key=SERVER_HF), cert, key) as fake, \
            web_app(config, controller) as client:
        urls = [f"https://router.huggingface.co@127.0.0.1:{port_of(fake)}/v1",
                f"https://{LOOKALIKE}:{port_of(fake)}/v1"]
        for url in urls:
            status = client.predict("", "", url, "", "local", api_name="/status")
            assert "server's HF token" not in status and "needs your key" in status, status
            answer = ask(client, "hi", base_url=url)
            assert "rejected the API key" in answer and "paste your key" in answer, answer
        seen = seen_by(fake)
        assert len(seen) == len(urls), "each look-alike was really contacted (over TLS, on loopback)"
        assert all(SERVER_HF not in json.dumps(r["headers"]) for r in seen)
        # the real router's own spelling variants still get the server's token: it is the server's endpoint
        same = status_markdown(resolve(config, "", "", "https://ROUTER.huggingface.co./v1", "", "local", None))
        assert "the server's HF token" in same


# -- 2. one outbound policy ------------------------------------------------------------------
def test_a_deployment_is_public_on_a_space_beyond_loopback_or_by_setting():
    base = load_config(env={})
    assert not base.server.public and load_config(env={"SPACE_ID": "someone/jarvis"}).server.public
    hosts = ("127.0.0.1", "localhost", "::1", "0.0.0.0", "::", "192.168.1.5", "jarvis.example")
    assert [base.serving_on(h).server.public for h in hosts] == [False, False, False, True, True, True, True]
    assert base.with_overrides(server={"public": True}).server.public


def test_web_visitor_url_reaches_internal_addresses_only_on_a_loopback_install(catalog):
    with ScriptedLLM(chat="the internal service answers") as internal:
        public = server_config(catalog, {"SPACE_ID": "someone/jarvis", "OPENAI_API_KEY": SERVER_SK})
        with web_app(public, Controller(public)) as client:
            assert "cannot be used here" in client.predict("sk-test", "", internal.url, "", "local", api_name="/status")
            for url in (internal.url, internal.url.replace("127.0.0.1", "localhost"),
                        f"http://[::ffff:127.0.0.1]:{port_of(internal)}/v1", "http://169.254.169.254/v1",
                        "http://10.0.0.1:8000/v1"):
                answer = ask(client, "hi", key="sk-test", base_url=url)
                assert "not contacted" in answer and "only public internet addresses" in answer, (url, answer)
            assert seen_by(internal) == []
        local = server_config(catalog, {"OPENAI_API_KEY": SERVER_SK})
        with web_app(local, Controller(local)) as client:
            assert "the internal service answers" in ask(client, "hi", key="sk-test", base_url=internal.url)
        assert {r["headers"]["authorization"] for r in seen_by(internal)} == {"Bearer sk-test"}


def test_api_refuses_named_endpoints_off_the_public_internet_on_a_public_deployment(catalog):
    with ScriptedLLM(chat="the server's own LLM") as own, ScriptedLLM(chat="internal") as internal:
        config = server_config(catalog, {"SPACE_ID": "someone/jarvis", "OPENAI_API_KEY": "sk-test",
                                         "OPENAI_BASE_URL": own.url}, server={"access_token": "tok"})
        with api_server(config) as base:
            ok = api_chat(base)      # the operator's own endpoint may be internal: it is not caller-chosen
            assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"] == "the server's own LLM"
            port = port_of(internal)
            for url in (internal.url, f"http://localhost:{port}/v1", f"http://jarvis:{PASSWORD}@127.0.0.1:{port}/v1",
                        "http://169.254.169.254/latest", "http://10.0.0.1:8000/v1", f"http://[::1]:{port}/v1"):
                r = api_chat(base, **{"X-LLM-Base-URL": url, "X-OpenAI-Api-Key": "sk-test"})
                assert r.status_code == 400 and r.json()["error"]["code"] == "endpoint_refused", (url, r.text)
                assert PASSWORD not in r.text
        assert seen_by(internal) == []


def test_a_redirect_to_an_internal_service_is_not_followed(catalog):
    with ScriptedLLM(chat="INTERNAL-SERVICE-ANSWER") as internal, \
            redirector(internal.url + "/chat/completions") as port:
        config = server_config(catalog, {"OPENAI_API_KEY": SERVER_SK}, server={"access_token": "tok"})
        lookup = resolver_for({"llm.public-looking.example": ["127.0.0.1"]})
        for url, controller in ((f"http://127.0.0.1:{port}/v1", Controller(config)),
                                (f"http://llm.public-looking.example:{port}/v1",
                                 Controller(config, llm=lambda cfg: LLM(cfg, resolver=lookup)))):
            with api_server(config, controller) as base:
                r = api_chat(base, **{"X-LLM-Base-URL": url, "X-OpenAI-Api-Key": "sk-test"})
            assert r.status_code == 502 and "redirect (HTTP 307)" in r.text, r.text
            assert "INTERNAL-SERVICE-ANSWER" not in r.text and "REDIRECTOR-BODY" not in r.text
            assert seen_by(internal) == []


def test_connect_time_vetting_refuses_mixed_and_rebinding_answers():
    config = load_config(env={"SPACE_ID": "someone/jarvis", "OPENAI_API_KEY": SERVER_SK})
    cfg = request_config(config, base_url="https://llm.rebind.example/v1", api_key="sk-caller")
    mixed = resolver_for({"llm.rebind.example": ["93.184.215.14", "10.0.0.5"]})
    assert "10.0.0.5, a private address" in endpoint_refusal(cfg.llm.base_url, resolver=mixed)
    with pytest.raises(LLMError, match="10.0.0.5, a private address"):
        LLM(cfg.with_overrides(llm={"max_retries": 2}), resolver=mixed).complete(MSG, Usage())
    answers = iter([["93.184.215.14"], ["127.0.0.1"]])      # public for the early check, loopback afterwards

    def rebinding(host: str, port: int) -> list[str]:
        return next(answers)
    assert endpoint_refusal(cfg.llm.base_url, resolver=rebinding) is None
    with pytest.raises(LLMError, match="127.0.0.1, a loopback address"):
        LLM(cfg, resolver=rebinding).complete(MSG, Usage())
    assert _CONNECTS == [], "refused before any connection"


def test_caller_endpoint_error_bodies_are_not_reflected(catalog):
    secret = "INTERNAL-SECRET-BODY-7f3a"
    with ScriptedLLM() as caller_llm:
        config = server_config(catalog, {"OPENAI_API_KEY": SERVER_SK}, server={"access_token": "tok"})
        with api_server(config) as base:
            for status in (400, 418, 500):
                caller_llm.faults.append(Fault(status, body=json.dumps({"error": {"message": secret}})))
                r = api_chat(base, **{"X-LLM-Base-URL": caller_llm.url, "X-OpenAI-Api-Key": "sk-test"})
                assert r.status_code == 502 and str(status) in r.json()["error"]["message"], r.text
                assert secret not in r.text


# -- 3. no user name or password in any message or log ---------------------------------------
def test_userinfo_never_reaches_a_message_or_log(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    closed = free_port()
    cfg = load_config(env={"OPENAI_BASE_URL": f"http://jarvis:{PASSWORD}@127.0.0.1:{closed}/v1",
                           "OPENAI_API_KEY": "sk-test"}).with_overrides(llm={"max_retries": 0})
    with pytest.raises(LLMError, match=f"cannot reach the LLM endpoint 127.0.0.1:{closed}") as unreachable:
        LLM(cfg).complete(MSG, Usage())
    with ScriptedLLM() as live:
        cfg = cfg.with_overrides(llm={"base_url": live.url.replace("//", f"//jarvis:{PASSWORD}@")})
        with pytest.raises(LLMError, match="rejected the API key") as rejected:
            LLM(cfg).complete(MSG, Usage())
        assert live.refused[0]["headers"]["authorization"].startswith("Basic ")   # as httpx sends a URL's userinfo
    typed = resolve(Config(), "sk-mine", "", f"http://jarvis:{PASSWORD}@10.1.2.3:8000/v1", "", "local", None)
    status = status_markdown(typed)
    with pytest.raises(ResourceError) as fetch:
        fetch_to_store(f"http://jarvis:{PASSWORD}@example.com:99999/a.png", ResourceStore(tmp_path / "s"))
    for text in (str(unreachable.value), str(rejected.value), status, str(fetch.value), caplog.text):
        assert PASSWORD not in text, text
    assert "10.1.2.3:8000" in status
