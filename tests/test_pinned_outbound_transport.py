"""The pinned connections behind every caller-chosen URL (jarvis.outbound), through real httpx
requests to a loopback HTTP(S) server: names are resolved once through the policy's resolver (the
seam a test answers; no real DNS), the socket goes only to a vetted address, trying each in turn;
the request's connect timeout bounds the lookup, its read timeout and the backend's overall
deadline bound the reads; failures arrive as the httpx errors callers handle, carrying the request;
proxy variables cannot route a request around the vetting, and redirects are not followed."""
from __future__ import annotations

import ipaddress
import shutil
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from jarvis.errors import AddressRefused, ResourceError
from jarvis.outbound import (
    OutboundPolicy,
    PinnedBackend,
    PinnedTransport,
    VettingTransport,
    address_refusal,
    binds_beyond_loopback,
    literal_address,
    shown_host,
    without_userinfo,
)
from tests.fakes.tls import self_signed
from tests.prerequisites import require

pytestmark = pytest.mark.timeout(60)
STALL = 3.0   # seconds /stall waits before answering


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        self.server.seen.append((self.path, self.headers.get("Host")))  # type: ignore[attr-defined]
        if self.path == "/stall":
            time.sleep(STALL)
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/ok")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path == "/short":      # promises 100 bytes, sends 10, hangs up
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"0123456789")
            self.wfile.flush()
            self.close_connection = True
            return
        body = b"proxied" if self.path.startswith("http://") else b"hello"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Server:
    """A ThreadingHTTPServer on 127.0.0.1 only (127.0.0.2 refuses connections to its port)."""

    def __init__(self, context: ssl.SSLContext | None = None):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.handle_error = lambda request, address: None   # a client hanging up early is the point
        self.httpd.seen = []   # type: ignore[attr-defined]
        if context is not None:
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]

    @property
    def seen(self) -> list[tuple[str, str]]:
        return self.httpd.seen   # type: ignore[attr-defined]

    def __enter__(self) -> Server:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server():
    with Server() as srv:
        yield srv


def answering(table: dict[str, list[str]], asked: list[tuple[str, int]] | None = None):
    def resolver(host: str, port: int) -> list[str]:
        if asked is not None:
            asked.append((host, port))
        if host not in table:
            raise OSError(f"[Errno -2] Name or service not known: {host}")
        return list(table[host])
    return resolver


def client_for(policy: OutboundPolicy) -> httpx.Client:
    return policy.http_client()


def test_a_name_is_resolved_through_the_policy_and_keeps_its_host_header(server):
    asked: list[tuple[str, int]] = []
    policy = OutboundPolicy(public_only=False, resolver=answering({"svc.test": ["127.0.0.1"]}, asked))
    with client_for(policy) as client:
        r = client.get(f"http://svc.test:{server.port}/ok")
        assert (r.status_code, r.text) == (200, "hello")
        assert r.request.url.host == "svc.test"
        moved = client.get(f"http://svc.test:{server.port}/redirect")
        assert moved.status_code == 302 and moved.headers["location"] == "/ok"     # not followed
    assert server.seen == [("/ok", f"svc.test:{server.port}"), ("/redirect", f"svc.test:{server.port}")]
    assert asked == [("svc.test", server.port)] * 2     # once per request, every request vetted again


def test_the_default_port_is_the_schemes():
    asked: list[tuple[str, int]] = []
    policy = OutboundPolicy(public_only=True, resolver=answering({"a.example": ["93.184.215.14"]}, asked))
    deadline = time.monotonic() + 5
    assert policy.vet(httpx.URL("http://a.example/x"), deadline) == ("a.example", ["93.184.215.14"])
    assert policy.vet(httpx.URL("https://A.example/x"), deadline) == ("a.example", ["93.184.215.14"])
    assert asked == [("a.example", 80), ("a.example", 443)]


def test_proxy_variables_cannot_route_a_request_around_the_vetting(server, monkeypatch):
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{server.port}")
    policy = OutboundPolicy(public_only=True, resolver=answering({}))
    with client_for(policy) as client, pytest.raises(AddressRefused, match="127.0.0.1 is a loopback address"):
        client.get(f"http://127.0.0.1:{server.port}/ok")
    assert server.seen == []


def test_an_address_that_refuses_is_skipped_for_the_next_vetted_one(server):
    policy = OutboundPolicy(public_only=False, resolver=answering({"svc.test": ["127.0.0.2", "127.0.0.1"]}))
    with client_for(policy) as client:
        assert client.get(f"http://svc.test:{server.port}/ok").text == "hello"


def test_when_every_address_refuses_the_caller_gets_a_connect_error_with_its_request(server):
    policy = OutboundPolicy(public_only=False, resolver=answering({"svc.test": ["127.0.0.2", "127.0.0.3"]}))
    url = f"http://svc.test:{server.port}/ok"
    with client_for(policy) as client, pytest.raises(httpx.ConnectError) as failed:
        client.get(url)
    assert str(failed.value.request.url) == url
    assert server.seen == []


def test_a_name_without_an_address_is_a_connect_error_saying_why(server):
    url = f"http://nohost.test:{server.port}/ok"
    policy = OutboundPolicy(public_only=False, resolver=answering({}))
    with client_for(policy) as client, pytest.raises(httpx.ConnectError) as failed:
        client.get(url)
    assert str(failed.value.request.url) == url
    assert str(failed.value) == ("could not find the host 'nohost.test' (DNS lookup failed: "
                                 "[Errno -2] Name or service not known: nohost.test)")


@pytest.mark.parametrize("answer, message", [
    ([], "could not find the host 'odd.test' (no addresses)"),
    (["not-an-address"], "could not find the host 'odd.test' (the lookup gave 'not-an-address')"),
])
def test_an_unusable_dns_answer_is_a_connect_error_saying_why(answer, message):
    policy = OutboundPolicy(public_only=False, resolver=answering({"odd.test": answer}))
    with client_for(policy) as client, pytest.raises(httpx.ConnectError) as failed:
        client.get("http://odd.test/")
    assert str(failed.value) == message


def test_an_answer_with_a_zone_id_is_vetted_as_its_address():
    policy = OutboundPolicy(public_only=True, resolver=answering({"z.test": ["93.184.215.14", "fe80::1%eth0"]}))
    with pytest.raises(AddressRefused, match="z.test resolves to fe80::1, a link-local address"):
        policy.vet(httpx.URL("https://z.test/"), time.monotonic() + 5)
    open_policy = OutboundPolicy(public_only=False, resolver=answering({"z.test": ["fe80::1%eth0", "fe80::1%2"]}))
    assert open_policy.vet(httpx.URL("https://z.test/"), time.monotonic() + 5) == ("z.test", ["fe80::1"])


def test_the_requests_connect_timeout_bounds_a_hung_lookup_in_a_daemon_thread():
    release = threading.Event()
    seen_threads: list[threading.Thread] = []

    def hung(host: str, port: int) -> list[str]:
        seen_threads.append(threading.current_thread())
        release.wait(STALL)
        return ["127.0.0.1"]
    try:
        with client_for(OutboundPolicy(public_only=False, resolver=hung)) as client:
            start = time.monotonic()
            with pytest.raises(httpx.ConnectTimeout, match="DNS lookup of slow.test did not finish"):
                client.get("http://slow.test:9/", timeout=httpx.Timeout(30, connect=0.1))
            assert time.monotonic() - start < 0.8
        assert [(t.name, t.daemon) for t in seen_threads] == [("jarvis-dns", True)]  # cannot hold up exit
    finally:
        release.set()


def test_the_requests_read_timeout_reaches_the_socket(server):
    policy = OutboundPolicy(public_only=False, resolver=answering({"svc.test": ["127.0.0.1"]}))
    with client_for(policy) as client:
        start = time.monotonic()
        with pytest.raises(httpx.ReadTimeout) as failed:
            client.get(f"http://svc.test:{server.port}/stall", timeout=httpx.Timeout(30, read=0.3))
        assert time.monotonic() - start < STALL - 1
    assert failed.value.request.url.path == "/stall"


def pinned(deadline: float | None, port: int) -> tuple[PinnedTransport, str]:
    backend = PinnedBackend(deadline)
    backend.pin("svc.test", ["127.0.0.1"])
    return PinnedTransport(backend), f"http://svc.test:{port}"


def test_the_overall_deadline_cuts_a_read_short_whatever_the_request_allows(server):
    transport, base = pinned(time.monotonic() + 0.5, server.port)
    with httpx.Client(transport=transport) as client:
        start = time.monotonic()
        with pytest.raises(httpx.ReadTimeout, match="the overall time limit was reached|timed out"):
            client.get(f"{base}/stall", timeout=30)
        assert time.monotonic() - start < STALL - 1


def test_a_shorter_request_timeout_wins_over_the_overall_deadline(server):
    transport, base = pinned(time.monotonic() + 30, server.port)
    with httpx.Client(transport=transport) as client:
        start = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            client.get(f"{base}/stall", timeout=httpx.Timeout(30, read=0.3))
        assert time.monotonic() - start < STALL - 1
        assert client.get(f"{base}/ok", timeout=5).text == "hello"    # the deadline leaves the rest alone


def test_a_deadline_already_past_refuses_to_connect(server):
    transport, base = pinned(time.monotonic() - 1, server.port)
    with httpx.Client(transport=transport) as client, pytest.raises(httpx.ConnectTimeout) as failed:
        client.get(f"{base}/ok", timeout=30)
    assert str(failed.value) == "the overall time limit was reached"
    assert server.seen == []


def test_a_body_cut_short_is_an_httpx_error_carrying_the_request(server):
    transport, base = pinned(None, server.port)
    with httpx.Client(transport=transport) as client, client.stream("GET", f"{base}/short", timeout=5) as r:
        assert r.status_code == 200
        with pytest.raises(httpx.RemoteProtocolError) as failed:
            r.read()
    assert failed.value.request.url.path == "/short"


def test_an_unpinned_host_is_never_connected_to(server):
    transport, _ = pinned(None, server.port)
    with httpx.Client(transport=transport) as client, pytest.raises(ResourceError, match="was not checked"):
        client.get(f"http://127.0.0.1:{server.port}/ok")
    assert server.seen == []


def test_the_ssl_context_given_is_the_one_that_checks_the_certificate(tmp_path, monkeypatch):
    require(bool(shutil.which("openssl")), "the openssl command", "apt-get install openssl")
    cert, key = self_signed(tmp_path, ["svc.test"])
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(cert, key)
    trusting = ssl.create_default_context(cafile=str(cert))
    policy = OutboundPolicy(public_only=False, resolver=answering({"svc.test": ["127.0.0.1"]}))
    with Server(server_side) as srv:
        with httpx.Client(transport=VettingTransport(policy, trusting)) as client:
            assert client.get(f"https://svc.test:{srv.port}/ok", timeout=10).text == "hello"
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))     # the environment is no trust store for pinned connections
        with httpx.Client(transport=VettingTransport(policy)) as client, pytest.raises(httpx.ConnectError):
            client.get(f"https://svc.test:{srv.port}/ok", timeout=10)     # the default trust store refuses it


V4, V6 = ipaddress.IPv4Address, ipaddress.IPv6Address


@pytest.mark.parametrize("address, reason", [
    ("0.0.0.0", "the unspecified address"),
    ("127.0.0.1", "a loopback address (this machine)"),
    ("169.254.1.1", "a link-local address"),
    ("169.254.169.254", "a link-local address (the cloud metadata service)"),
    ("224.0.0.1", "a multicast address"),
    ("100.64.0.1", "a carrier-grade NAT (shared) address"),
    ("240.0.0.1", "a reserved address"),
    ("10.1.2.3", "a private address"),
    ("fec0::1", "a site-local address"),
    ("fe80::1%eth0", "a link-local address"),
    ("::ffff:10.0.0.1", "a private address (10.0.0.1, written as IPv6)"),
    ("2002:a00:1::", "a private address (10.0.0.1, written as IPv6)"),                 # 6to4
    ("64:ff9b::a9fe:a9fe", "a link-local address (the cloud metadata service) (169.254.169.254, written as IPv6)"),
    ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "a private address (10.0.0.1, written as IPv6)"),   # Teredo client
    ("93.184.215.14", None),
    ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", None),
])
def test_why_an_address_is_refused(address, reason):
    assert address_refusal(ipaddress.ip_address(address)) == reason


def test_allow_loopback_lets_loopback_through_in_every_spelling():
    for address in ("127.0.0.1", "::1", "::ffff:127.0.0.1"):
        assert address_refusal(ipaddress.ip_address(address), allow_loopback=True) is None, address
    assert address_refusal(ipaddress.ip_address("::ffff:10.0.0.1"), allow_loopback=True) is not None


def test_literal_hosts_and_where_a_server_binds():
    assert literal_address("fe80::1%eth0") == V6("fe80::1")
    assert literal_address("2130706433") == V4("127.0.0.1") and literal_address("0x7f.1") == V4("127.0.0.1")
    assert literal_address("svc.test") is None and literal_address("1.2.3.4.5") is None
    assert [binds_beyond_loopback(h) for h in ("127.0.0.1", "[::1]", "::1%lo", " LOCALHOST ")] == [False] * 4
    assert [binds_beyond_loopback(h) for h in ("0.0.0.0", "[::]", "fe80::1%eth0", "myhost")] == [True] * 4


def test_a_url_is_shown_as_its_host_and_port_only():
    assert shown_host("http://user:pw@[::1]:8080/x") == "[::1]:8080"
    assert shown_host("https://Example.org/path?q=1") == "example.org"
    assert shown_host("https://example.org:8443/") == "example.org:8443"
    broken = "http://user:pw@[::1/" + "x" * 200        # not a URL httpx can parse
    shown = shown_host(broken)
    assert "pw" not in shown and shown == ("http://[::1/" + "x" * 200)[:100]


def test_a_slow_lookup_that_finishes_within_the_connect_timeout_is_used(server):
    def slow(host: str, port: int) -> list[str]:
        time.sleep(0.3)
        return ["127.0.0.1"]
    with client_for(OutboundPolicy(public_only=False, resolver=slow)) as client:
        assert client.get(f"http://svc.test:{server.port}/ok", timeout=httpx.Timeout(30, connect=5)).text == "hello"


def test_a_stalled_tls_handshake_is_bounded_by_the_connect_timeout():
    listener = socket.create_server(("127.0.0.1", 0))     # accepts, then never speaks TLS
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True).start()
    policy = OutboundPolicy(public_only=False, resolver=answering({"svc.test": ["127.0.0.1"]}))
    try:
        with client_for(policy) as client:
            start = time.monotonic()
            with pytest.raises(httpx.ConnectTimeout):
                client.get(f"https://svc.test:{listener.getsockname()[1]}/", timeout=httpx.Timeout(30, connect=0.3))
            assert time.monotonic() - start < 2.5
    finally:
        for conn in accepted:
            conn.close()
        listener.close()


def test_a_reader_that_comes_back_after_the_deadline_gets_a_read_timeout():
    listener = socket.create_server(("127.0.0.1", 0))
    release = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234")
            release.wait(5)
    threading.Thread(target=serve, daemon=True).start()
    transport, base = pinned(time.monotonic() + 0.5, listener.getsockname()[1])
    try:
        with httpx.Client(transport=transport) as client, client.stream("GET", f"{base}/", timeout=30) as r:
            time.sleep(0.7)                            # past the overall deadline before reading the body
            with pytest.raises(httpx.ReadTimeout, match="the overall time limit was reached"):
                r.read()
    finally:
        release.set()
        listener.close()


def test_only_http_urls_with_a_host_are_contacted():
    only_http = "refused: only http and https URLs are contacted, not ftp:"
    with client_for(OutboundPolicy(public_only=False, resolver=answering({}))) as client, \
            pytest.raises(AddressRefused, match=only_http):
        client.get("ftp://files.example/x")
    with pytest.raises(ResourceError, match="^refused: the URL names no host$"):
        OutboundPolicy(public_only=False).vet(httpx.URL("file:///etc/passwd"), time.monotonic() + 5)


def test_user_names_and_passwords_never_reach_a_message():
    assert without_userinfo("see //user:pw@host.example/x and https://a:b@c.example/") == (
        "see //host.example/x and https://c.example/")
    assert shown_host("file:///" + "x" * 200) == ("file:///" + "x" * 200)[:100]
