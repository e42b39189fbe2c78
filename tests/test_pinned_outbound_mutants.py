"""What the pinned outbound connections (jarvis.outbound) and the HTTP API's early checks
(jarvis.frontends.http.auth) promise beyond the basics in test_pinned_outbound_transport.py, each
through real httpx requests to real sockets on 127.0.0.1 (names answered by the policy's resolver,
never by patching): how many connections a client opens at once, that a write is bounded by the
request's write timeout and by the overall deadline, that a TCP connect is bounded by the connect
timeout, that the socket really went to the vetted address, HTTP/1.1 only even when a server offers
HTTP/2, zone-suffixed spellings of an address, and the HTTP API's exact refusals (uvicorn)."""
from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from jarvis.catalog.entries import Catalog
from jarvis.errors import AddressRefused
from jarvis.frontends.http.app import create_app
from jarvis.outbound import OutboundPolicy, PinnedBackend, PinnedTransport, VettingTransport, binds_beyond_loopback
from jarvis.pipeline.controller import Controller
from tests.fakes.fake_executor import FakeExecutor
from tests.fakes.tls import self_signed
from tests.helpers import config_for
from tests.test_pinned_outbound_transport import Server, answering, pinned
from tests.test_server import Live

pytestmark = pytest.mark.timeout(60)
ONLY_PUBLIC = "this server contacts only public internet addresses for a URL a caller chooses"


@pytest.fixture()
def server():
    with Server() as srv:
        yield srv


def _open_policy() -> OutboundPolicy:
    return OutboundPolicy(public_only=False, resolver=answering({"svc.test": ["127.0.0.1"]}))


def _pinned_client() -> httpx.Client:
    backend = PinnedBackend()
    backend.pin("svc.test", ["127.0.0.1"])
    return httpx.Client(transport=PinnedTransport(backend))


@pytest.mark.parametrize("make_client, limit", [
    (lambda: _open_policy().http_client(), 10),                            # the LLM client's
    (lambda: _open_policy().http_client(max_connections=3), 3),
    (lambda: httpx.Client(transport=VettingTransport(_open_policy())), 10),
    (_pinned_client, 2),                                                   # the media fetcher's, per URL
], ids=["policy-client", "policy-client-of-3", "vetting-transport", "pinned-transport"])
def test_a_client_holds_at_most_its_connection_limit_at_once(server, make_client: Callable[[], httpx.Client],
                                                             limit: int):
    url = f"http://svc.test:{server.port}/ok"
    with make_client() as client, contextlib.ExitStack() as held:
        for _ in range(limit):      # each unread response keeps its connection
            held.enter_context(client.stream("GET", url, timeout=5))
        with pytest.raises(httpx.PoolTimeout):
            client.get(url, timeout=httpx.Timeout(5, pool=0.2))
        held.close()                # the connections go back to the pool and serve again
        assert client.get(url, timeout=5).text == "hello"
    assert len(server.seen) == limit + 1


def test_the_socket_goes_to_the_vetted_address_that_answered(server):
    policy = OutboundPolicy(public_only=False, resolver=answering({"svc.test": ["127.0.0.2", "127.0.0.1"]}))
    with policy.http_client() as client, client.stream("GET", f"http://svc.test:{server.port}/ok") as r:
        stream = r.extensions["network_stream"]
        assert stream.get_extra_info("server_addr") == ("127.0.0.1", server.port)
        assert r.read() == b"hello"


def test_a_transport_used_without_a_client_gives_errors_carrying_the_request(server):
    """The media fetcher calls PinnedTransport.handle_request itself: no httpx.Client attaches the
    request to an error, the transports do."""
    transport, base = pinned(None, server.port)
    request = httpx.Request("GET", f"{base}/short")            # promises 100 bytes, sends 10
    response = transport.handle_request(request)
    with pytest.raises(httpx.RemoteProtocolError) as cut_short:
        b"".join(response.iter_raw())
    response.close()
    assert cut_short.value.request is request
    refusing = PinnedBackend()
    refusing.pin("svc.test", ["127.0.0.2"])                     # nothing listens there
    request = httpx.Request("GET", f"{base}/ok")
    with pytest.raises(httpx.ConnectError) as refused:
        PinnedTransport(refusing).handle_request(request)
    assert refused.value.request is request
    request = httpx.Request("GET", "http://nohost.test/")
    with pytest.raises(httpx.ConnectError) as unknown:
        VettingTransport(OutboundPolicy(public_only=False, resolver=answering({}))).handle_request(request)
    assert unknown.value.request is request and str(unknown.value).startswith("could not find the host 'nohost.test'")
    assert server.seen == [("/short", f"svc.test:{server.port}")]


def test_pinned_connections_speak_http_1_1_even_to_a_server_offering_http_2(tmp_path):
    cert, key = self_signed(tmp_path, ["svc.test"])
    offering_h2 = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    offering_h2.load_cert_chain(cert, key)
    offering_h2.set_alpn_protocols(["h2", "http/1.1"])       # the server would pick h2 if offered
    trusting = ssl.create_default_context(cafile=str(cert))
    with Server(offering_h2) as srv, httpx.Client(transport=VettingTransport(_open_policy(), trusting)) as client:
        r = client.get(f"https://svc.test:{srv.port}/ok", timeout=10)
        assert (r.http_version, r.text) == ("HTTP/1.1", "hello")


@contextlib.contextmanager
def _listener(behaviour: Callable[[socket.socket], None]) -> Iterator[int]:
    """A raw TCP listener on 127.0.0.1 whose first connection gets `behaviour`; yields its port."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        with contextlib.suppress(OSError):
            conn, _ = listener.accept()
            with conn:
                behaviour(conn)
    threading.Thread(target=serve, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


def _never_reads_then_hangs_up(conn: socket.socket) -> None:
    time.sleep(6)          # long past the write timeout and the deadline; closing unread data resets the connection


def test_the_requests_write_timeout_bounds_an_upload_nobody_reads():
    with _listener(_never_reads_then_hangs_up) as port:
        transport, base = pinned(time.monotonic() + 5, port)    # an overall deadline further away
        with httpx.Client(transport=transport) as client:
            start = time.monotonic()
            with pytest.raises(httpx.WriteTimeout):
                client.post(f"{base}/upload", content=b"x" * (64 << 20), timeout=httpx.Timeout(30, write=0.3))
            assert time.monotonic() - start < 3


def _reads_everything(conn: socket.socket) -> None:
    conn.settimeout(5)
    with contextlib.suppress(OSError):
        while conn.recv(65536):
            pass


def test_the_overall_deadline_stops_an_upload_between_two_writes():
    def body() -> Iterator[bytes]:
        yield b"a" * 1000
        time.sleep(2)                # the deadline passes here
        yield b"b" * 1000
    with _listener(_reads_everything) as port:
        transport, base = pinned(time.monotonic() + 1.5, port)
        with httpx.Client(transport=transport) as client, pytest.raises(httpx.WriteTimeout) as failed:
            client.post(f"{base}/upload", content=body(), timeout=30)
    assert str(failed.value) == "the overall time limit was reached"


def test_the_requests_connect_timeout_bounds_a_tcp_connect_that_gets_no_answer():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)                       # a backlog of one connection, taken by `filler`:
    filler = socket.create_connection(listener.getsockname())   # the kernel now drops new SYNs
    closer = threading.Timer(4.5, listener.close)   # then refuses them: nothing hangs past this
    closer.start()
    try:
        transport, base = pinned(time.monotonic() + 5, listener.getsockname()[1])
        with httpx.Client(transport=transport) as client:
            start = time.monotonic()
            with pytest.raises(httpx.ConnectTimeout):
                client.get(f"{base}/ok", timeout=httpx.Timeout(30, connect=0.3))
            assert time.monotonic() - start < 3
    finally:
        closer.cancel()
        filler.close()
        listener.close()


def test_a_literal_address_with_zone_suffixes_is_vetted_as_that_address():
    policy = OutboundPolicy(public_only=True, resolver=answering({}))
    with pytest.raises(AddressRefused) as refused:
        policy.vet(httpx.URL("http://127.0.0.1%25eth0%25x:8000/"), time.monotonic() + 5)
    assert str(refused.value) == (f"refused: 127.0.0.1%25eth0%25x (= 127.0.0.1) is a loopback address "
                                  f"(this machine); {ONLY_PUBLIC}")


def test_a_name_that_merely_contains_localhost_binds_beyond_loopback():
    for host in ("XLOCALHOST", "localhost.example.org", "localhostx"):
        assert binds_beyond_loopback(host), host


# -- the HTTP API's refusals, over uvicorn ------------------------------------
TOKEN = "tok-alice-7f3a"
ASK = {"model": "jarvis", "messages": [{"role": "user", "content": "hello"}]}


@pytest.fixture(scope="module")
def public_api():
    cfg = config_for("http://127.0.0.1:9/v1", key="sk-server", server={"access_token": TOKEN, "public": True})
    with Live(create_app(cfg, Controller(cfg, Catalog.load(), local=FakeExecutor()))) as live:
        yield live


@pytest.mark.parametrize("authorization, what", [(None, "is missing"), ("Bearer tok-alice", "is not valid")])
def test_a_refused_caller_gets_the_whole_401_message(public_api, authorization, what):
    headers = {"Authorization": authorization} if authorization else {}
    r = httpx.post(f"{public_api.url}/v1/chat/completions", json=ASK, headers=headers, timeout=30)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert r.json()["error"]["message"] == (f"the access token {what}: send 'Authorization: Bearer <token>' "
                                            "with this server's access token")


def test_a_refused_endpoint_is_named_by_its_first_80_characters_without_its_password(public_api):
    named = "http://user:hunter2@10.0.0.5:8000/" + "v" * 100
    r = httpx.post(f"{public_api.url}/v1/chat/completions", json=ASK, timeout=30,
                   headers={"Authorization": f"Bearer {TOKEN}", "X-LLM-Base-URL": named,
                            "X-OpenAI-Api-Key": "sk-caller"})
    shown = ("http://10.0.0.5:8000/" + "v" * 100)[:80]
    assert r.status_code == 400 and r.json()["error"]["code"] == "endpoint_refused"
    assert r.json()["error"]["message"] == (f"refused LLM endpoint {shown!r}: 10.0.0.5 is a private address; "
                                            f"{ONLY_PUBLIC}")
