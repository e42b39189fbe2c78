"""The port as a stranger meets it (issue 16): the API served the way `python -m jarvis serve` serves
it (jarvis.frontends.http.serving: connection limits, host check, access token), on loopback,
driven by raw sockets, httpx and the openai SDK. A scripted LLM and a loopback endpoint that never
answers stand for the outside world; nothing in jarvis is patched."""
from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest

from jarvis.frontends.http.app import create_app
from jarvis.frontends.http.serving import guarded, server_controller, uvicorn_config
from tests.fakes.llm_server import ScriptedLLM
from tests.fakes.loopback import UvicornThread
from tests.helpers import config_for, plan_json
from tests.uiapp import TTS, ensure_models, write_catalog

pytestmark = pytest.mark.timeout(120)
TOKENS = "tok-alice,tok-bob"


class Served(UvicornThread):
    """An ASGI app behind Jarvis's guards and connection layer, on a free loopback port; stopped
    without waiting for browsers' event streams."""

    def __init__(self, app, config):
        super().__init__(lambda port: uvicorn_config(guarded(app, config, "127.0.0.1"), config, "127.0.0.1", port),
                         force_exit=True, start_timeout=20)


class Stall:
    """A loopback 'LLM endpoint' that accepts connections and never answers."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                self.held.append(self.sock.accept()[0])

    def __enter__(self) -> Stall:
        return self

    def __exit__(self, *exc) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


def api(llm_url: str, controller=None, **server):
    server.setdefault("access_token", TOKENS)
    cfg = config_for(llm_url, server=server, llm={"timeout": 5})
    return Served(create_app(cfg, controller), cfg)


def auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def raw_request(port: int, body: dict, token: str, headers: dict | None = None,
                source: str = "127.0.0.1") -> socket.socket:
    """A chat request written on a raw socket, so the test decides when the client disconnects."""
    data = json.dumps(body).encode()
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    sock = socket.create_connection(("127.0.0.1", port), source_address=(source, 0))
    sock.sendall((f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                  f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
                  f"Content-Length: {len(data)}\r\n{extra}\r\n").encode() + data)
    return sock


def status_of(sock: socket.socket, wait: float) -> int | None:
    """The HTTP status the server answered on a raw socket within `wait` seconds, else None."""
    sock.settimeout(wait)
    try:
        head = sock.recv(64)
    except TimeoutError:
        return None
    return int(head.split()[1]) if head.startswith(b"HTTP/1.1") else None


def closed_by_server(sock: socket.socket, within: float) -> bool:
    """Whether the server closed the connection within `within` seconds (reads until EOF)."""
    sock.settimeout(within)
    deadline = time.time() + within
    try:
        while time.time() < deadline:
            if sock.recv(4096) == b"":
                return True
    except (TimeoutError, ConnectionResetError):
        return False
    return False


# -- the API's description ---------------------------------------------------------------------
def test_api_description_needs_the_access_token():
    with ScriptedLLM() as llm, api(llm.url) as live:
        for path in ("/v1/docs", "/v1/openapi.json"):
            r = httpx.get(live.url + path)
            assert r.status_code == 401 and "access token" in r.json()["error"]["message"], path
            assert httpx.get(live.url + path, headers=auth("tok-wrong")).status_code == 401
        spec = httpx.get(live.url + "/v1/openapi.json", headers=auth("tok-bob"))
        assert spec.status_code == 200 and "/v1/chat/completions" in spec.json()["paths"]
        assert "swagger" in httpx.get(live.url + "/v1/docs", headers=auth("tok-alice")).text.lower()


# -- fair share --------------------------------------------------------------------------------
def test_a_caller_stalling_blocks_no_one_and_a_disconnect_frees_its_slot():
    """Eight requests by alice to a stalling endpoint of her own: two run (her share), six get 429
    at once; bob is answered meanwhile; once alice's clients disconnect (one streamed, one not),
    her two slots are free again at once, although the stalled LLM calls have not ended."""
    stalled = {"X-LLM-Base-URL": None, "X-OpenAI-Api-Key": "sk-alice"}
    with ScriptedLLM(plan="[]", chat="hello bob") as llm, Stall() as stall, api(llm.url) as live:
        stalled["X-LLM-Base-URL"] = stall.url
        ask = {"model": "jarvis", "messages": [{"role": "user", "content": "hi"}]}
        held = [raw_request(live.port, {**ask, "stream": True}, "tok-alice", stalled),
                raw_request(live.port, ask, "tok-alice", stalled)]
        time.sleep(0.5)
        refused = [raw_request(live.port, ask, "tok-alice", stalled) for _ in range(6)]
        assert [status_of(s, 5) for s in refused] == [429] * 6
        assert [status_of(s, 0.5) for s in held] == [None, None]        # still waiting on the stalled endpoint
        started = time.time()
        answer = openai.OpenAI(base_url=f"{live.url}/v1", api_key="tok-bob", max_retries=0).chat.completions.create(
            **ask)
        assert answer.choices[0].message.content.startswith("hello bob") and time.time() - started < 5
        for sock in held + refused:
            sock.close()
        time.sleep(0.5)
        alice = openai.OpenAI(base_url=f"{live.url}/v1", api_key="tok-alice", max_retries=0)
        results: list = []
        threads = [threading.Thread(target=lambda: results.append(alice.chat.completions.create(**ask)))
                   for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert len(results) == 2 and all(r.choices[0].message.content == "hello bob" for r in results)


# -- slow clients ------------------------------------------------------------------------------
def test_slow_connections_are_cut_and_one_address_cannot_take_every_connection():
    with ScriptedLLM() as llm, api(llm.url, header_timeout=1.5, body_timeout=2, max_connections=8) as live:
        def slow(first: bytes) -> socket.socket:
            sock = socket.create_connection(("127.0.0.1", live.port))
            sock.sendall(first)
            return sock
        headers = slow(b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n")      # headers never finish
        body = slow(f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{live.port}\r\nAuthorization: "
                    "Bearer tok-alice\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{".encode())
        # a quarter of the connections per address: a third from 127.0.0.1 is turned away at once
        third = slow(b"G")
        assert status_of(third, 3) == 503
        # another address is served meanwhile
        other = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"))
        assert other.get(f"{live.url}/v1/models", headers=auth("tok-bob")).status_code == 200
        other.close()
        started = time.time()
        for _ in range(4):                      # trickling more bytes does not buy time
            time.sleep(0.3)
            with contextlib.suppress(OSError):
                headers.sendall(b"X")
                body.sendall(b" ")
        assert closed_by_server(headers, 3) and closed_by_server(body, 3)
        assert time.time() - started < 4.5
        assert httpx.get(f"{live.url}/v1/models", headers=auth("tok-alice")).status_code == 200


# -- host names and forwarded headers -------------------------------------------------------------
def test_rebinding_host_names_are_refused():
    with ScriptedLLM() as llm, api(llm.url) as live:
        for host in ("attacker.example", f"attacker.example:{live.port}", "<img src=x>", ""):
            r = httpx.get(f"{live.url}/v1/models", headers={**auth("tok-alice"), "Host": host})
            assert r.status_code == 400 and r.json()["code"] == "unknown_host", host
        for host in (f"127.0.0.1:{live.port}", f"localhost:{live.port}", f"[::1]:{live.port}", socket.gethostname()):
            assert httpx.get(f"{live.url}/v1/models", headers={**auth("tok-alice"), "Host": host}).status_code == 200
    with ScriptedLLM() as llm, api(llm.url, allowed_hosts="jarvis.example.com") as live:
        r = httpx.get(f"{live.url}/v1/models", headers={**auth("tok-alice"), "Host": "jarvis.example.com"})
        assert r.status_code == 200


@pytest.fixture(scope="module")
def tts_catalog(tmp_path_factory, hub_cache) -> Path:
    ensure_models(hub_cache, {TTS})
    return write_catalog(tmp_path_factory.mktemp("hardening") / "catalog.jsonl")


def test_file_links_are_built_from_validated_hosts_only(tts_catalog):
    plan = plan_json(("text-to-speech", {"text": "hi"}))
    ask = {"model": "jarvis", "messages": [{"role": "user", "content": "say hi"}]}

    def links(live, **headers) -> tuple[int, list[str]]:
        r = httpx.post(f"{live.url}/v1/chat/completions", json=ask, headers={**auth("tok-alice"), **headers},
                       timeout=60)
        return r.status_code, (re.findall(r"\]\(([^)]*)\)", r.json()["choices"][0]["message"]["content"])
                               if r.status_code == 200 else [])

    markup = "<img src=x onerror=alert(1)>"
    cfg = config_for("http://127.0.0.1:9/v1", catalog={"path": str(tts_catalog)}, local={"device": "cpu"})
    controller = server_controller(cfg)
    try:
        with ScriptedLLM(plan=plan, answer="ok") as llm, api(llm.url, controller) as live:
            # a stranger's forwarded headers are ignored: the links keep the validated Host
            status, urls = links(live, **{"X-Forwarded-Host": markup, "X-Forwarded-Proto": "https"})
            assert status == 200 and urls and all(u.startswith(f"http://127.0.0.1:{live.port}/files/") for u in urls)
        with ScriptedLLM(plan=plan, answer="ok") as llm, \
                api(llm.url, controller, trusted_proxies="127.0.0.1", allowed_hosts="jarvis.example.com") as live:
            status, urls = links(live, **{"X-Forwarded-Host": "jarvis.example.com", "X-Forwarded-Proto": "https"})
            assert status == 200 and urls and all(u.startswith("https://jarvis.example.com/files/") for u in urls)
            assert links(live, **{"X-Forwarded-Host": markup})[0] == 400
            assert links(live, **{"X-Forwarded-Host": "attacker.example"})[0] == 400
    finally:
        controller.close()


# -- bodies ----------------------------------------------------------------------------------------
def test_deeply_nested_json_is_a_400():
    with ScriptedLLM() as llm, api(llm.url) as live:
        depth = 200_000
        body = '{"model": "jarvis", "messages": ' + "[" * depth + "]" * depth + "}"
        r = httpx.post(f"{live.url}/v1/chat/completions", content=body, timeout=30,
                       headers={**auth("tok-alice"), "Content-Type": "application/json"})
        assert r.status_code == 400 and "nested too deeply" in r.json()["error"]["message"]
        r = httpx.post(f"{live.url}/hugginggpt", content=body, timeout=30,
                       headers={**auth("tok-alice"), "Content-Type": "application/json"})
        assert r.status_code == 400 and "nested too deeply" in r.json()["error"]
        assert llm.requests == []
