"""fetch_to_store against a real loopback HTTP server; refusals are proven to happen before any connection.

A process audit hook records every socket connect and name lookup while these tests run, and makes
any connect outside 127.0.0.0/8 / ::1 fail, so no test can ever send traffic off this machine.
"""
from __future__ import annotations

import io
import ipaddress
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler

import httpx
import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from jarvis.errors import ResourceError
from jarvis.files.store import ResourceStore
from jarvis.files.url_fetch import PinnedBackend, PinnedTransport, fetch_to_store
from tests.fakes.loopback import HandlerThread
from tests.prerequisites import require

_GUARD = {"on": False}
_CONNECTS: list[tuple] = []
_LOOKUPS: list[str] = []


def _audit(event: str, args: tuple) -> None:
    if not _GUARD["on"]:
        return
    if event == "socket.connect" and isinstance(args[1], tuple):
        _CONNECTS.append(args[1])
        if not ipaddress.ip_address(str(args[1][0]).split("%")[0]).is_loopback:
            raise RuntimeError(f"test tried to connect off this machine: {args[1]}")
    elif event == "socket.getaddrinfo":
        _LOOKUPS.append(str(args[0]))


sys.addaudithook(_audit)


def _png(size: int = 16) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), (200, 30, 30)).save(buf, "PNG")
    return buf.getvalue()


def _wav() -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.zeros(1600, dtype=np.int16), 16000, format="WAV", subtype="PCM_16")
    return buf.getvalue()


PNG, WAV = _png(), _wav()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def _send(self, status: int, body: bytes = b"", ctype: str | None = None, **headers: str) -> None:
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        for key, value in headers.items():
            self.send_header(key.replace("_", "-"), value)
        if "Content_Length" not in headers:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location: str, **headers: str) -> None:
        self._send(302, Location=location, **headers)

    def do_GET(self) -> None:
        self.server.seen.append((self.path, dict(self.headers)))  # type: ignore[attr-defined]
        path = self.path
        try:
            if path in ("/img.png", "/dir/My%20Cat!.png"):
                self._send(200, PNG, "image/png")
            elif path == "/photo.jpg":  # PNG bytes announced as JPEG: the content decides the suffix
                self._send(200, PNG, "image/jpeg")
            elif path == "/octet/clip.wav" or path == "/octet/blob":
                self._send(200, WAV, "application/octet-stream")
            elif path == "/page":
                self._send(200, b"<html>hi</html>", "text/html; charset=utf-8")
            elif path == "/fake.png":
                self._send(200, b"this is plain text, not a picture", "image/png")
            elif path == "/gzip.png":
                self._send(200, PNG, "image/png", Content_Encoding="gzip")
            elif path == "/to-private":
                self._redirect("http://10.0.0.5/x.png")
            elif path == "/to-metadata":
                self._redirect("http://169.254.169.254/latest/meta-data/")
            elif path == "/to-file":
                self._redirect("file:///etc/passwd")
            elif path == "/loop":
                self._redirect("/loop")
            elif path.startswith("/chain/"):
                n = int(path.rsplit("/", 1)[1])
                self._redirect(f"/chain/{n - 1}") if n > 0 else self._send(200, PNG, "image/png")
            elif path == "/cookie":
                self._redirect("/img.png", Set_Cookie="session=secret; Path=/")
            elif path == "/huge-declared":
                self._send(200, b"", "image/png", Content_Length=str(10 * 2**30))
            elif path == "/huge":
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Connection", "close")
                self.end_headers()
                for _ in range(48):  # 3 MiB, no Content-Length
                    self.wfile.write(PNG[:8] + bytes(65528))
            elif path in ("/typed.png", "/odd/%21%21.png"):
                self._send(200, PNG, "image/png; charset=binary")
            elif path == "/vendor.png":
                self._send(200, PNG, "image/x-vendor-format")
            elif path == "/drawing.png":
                self._send(200, PNG, "image/svg+xml")
            elif path == "/binary/clip.wav":
                self._send(200, WAV, "binary/octet-stream")
            elif path == "/empty.png":
                self._send(200, b"", "image/png")
            elif path == "/nowhere":
                self._send(302)
            elif path.startswith("/status/"):
                self._send(int(path.rsplit("/", 1)[1]), PNG, "image/png")
            elif path == "/slow":
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(PNG)))
                self.end_headers()
                for byte in PNG[:30]:  # one byte every 0.2 s: never idle long, but far too slow
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(0.2)
            else:
                self._send(404, b"not here", "text/plain")
        except (ConnectionError, OSError):
            pass


@pytest.fixture(scope="module")
def server():
    with HandlerThread(_Handler) as served:
        served.httpd.seen = []  # type: ignore[attr-defined]
        yield served.httpd


@pytest.fixture(autouse=True)
def guard():
    _CONNECTS.clear()
    _LOOKUPS.clear()
    _GUARD["on"] = True
    yield
    _GUARD["on"] = False


@pytest.fixture
def store(tmp_path):
    return ResourceStore(tmp_path / "session")


def _base(server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def _all_loopback() -> bool:
    return all(ipaddress.ip_address(str(a[0]).split("%")[0]).is_loopback for a in _CONNECTS)


# -- refusals before any connection ------------------------------------------
REFUSED = [
    ("file:///etc/passwd", "only http and https"),
    ("ftp://example.com/a.png", "only http and https"),
    ("data:image/png;base64,iVBORw0KGgo=", "only http and https"),
    ("gopher://127.0.0.1:70/_x", "only http and https"),
    ("http://127.0.0.1/a.png", "127.0.0.1 is a loopback address"),
    ("http://127.8.9.10:8080/a.png", "loopback"),
    ("http://[::1]/a.png", "::1 is a loopback address"),
    ("http://169.254.169.254/latest/meta-data/", "link-local address \\(the cloud metadata service\\)"),
    ("http://10.0.0.1/a.png", "10.0.0.1 is a private address"),
    ("http://192.168.1.1/a.png", "192.168.1.1 is a private address"),
    ("http://172.16.5.4/a.png", "private"),
    ("http://0.0.0.0/a.png", "unspecified"),
    ("http://0/a.png", "unspecified"),
    ("http://localhost/a.png", "localhost resolves to .*loopback"),
    ("http://2130706433/a.png", "2130706433 \\(= 127.0.0.1\\) is a loopback"),
    ("http://0x7f.1/a.png", "\\(= 127.0.0.1\\) is a loopback"),
    ("http://0177.0.0.1/a.png", "loopback|not a valid URL"),
    ("http://[::ffff:127.0.0.1]/a.png", "loopback"),
    ("http://[::ffff:169.254.169.254]/", "metadata"),
    ("http://[64:ff9b::a00:1]/", "private"),
    ("http://100.64.0.1/a.png", "carrier-grade NAT"),
    ("http://[fc00::1]/a.png", "private"),
    ("http://[fe80::1]/a.png", "link-local"),
    ("http://224.0.0.1/a.png", "multicast"),
    ("http://240.0.0.1/a.png", "reserved"),
    ("http://198.18.0.1/a.png", "not a public|private|reserved"),
    ("http://user:hunter2@example.com/a.png", "user name or password"),
    ("http://example.com@127.0.0.1/a.png", "user name or password"),
    ("not a url at all", "only http and https|not a valid URL"),
    ("http:///a.png", "names no host"),
]


@pytest.mark.parametrize("url, message", REFUSED)
def test_refused_before_any_connection(url, message, store):
    with pytest.raises(ResourceError, match=message) as info:
        fetch_to_store(url, store)
    assert "hunter2" not in str(info.value)
    assert _CONNECTS == [], "a refused URL must never be connected to"
    assert set(_LOOKUPS) <= {"localhost"}, f"no DNS lookups of outside names: {_LOOKUPS}"
    assert store.list() == []


@pytest.mark.parametrize("url", ["http://10.0.0.1/a.png", "http://169.254.169.254/", "http://192.168.1.1/"])
def test_allow_private_only_opens_loopback(url, store):
    with pytest.raises(ResourceError, match="refused"):
        fetch_to_store(url, store, allow_private=True)
    assert _CONNECTS == []


# -- positive cases on the loopback server -----------------------------------
def test_fetches_image_into_store(server, store):
    path = fetch_to_store(_base(server) + "/dir/My%20Cat!.png", store, allow_private=True)
    assert path.parent == store.root and path.suffix == ".png"
    assert path.name.startswith("My_Cat")
    assert path.read_bytes() == PNG
    assert [r.path for r in store.list()] == [path]
    assert store.resolve(path.name) == path
    assert _CONNECTS and _all_loopback()
    assert not list(store.root.glob(".fetch-*"))


def test_localhost_name_keeps_host_header_and_sends_no_credentials(server, store):
    port = server.server_address[1]
    fetch_to_store(f"http://localhost:{port}/cookie", store, allow_private=True)
    (_, first), (_, second) = server.seen[-2:]
    for headers in (first, second):
        assert headers["Host"] == f"localhost:{port}"
        assert not {"Authorization", "Cookie", "Proxy-Authorization"} & set(headers)
    assert _all_loopback()


def test_content_decides_suffix(server, store):
    assert fetch_to_store(_base(server) + "/photo.jpg", store, allow_private=True).suffix == ".png"


def test_octet_stream_with_media_extension(server, store):
    path = fetch_to_store(_base(server) + "/octet/clip.wav", store, allow_private=True)
    assert path.suffix == ".wav" and store.list()[0].type == "audio"


def test_redirect_chain_of_five_is_followed(server, store):
    assert fetch_to_store(_base(server) + "/chain/5", store, allow_private=True).suffix == ".png"


# -- refusals on the loopback server ------------------------------------------
@pytest.mark.parametrize("route, message", [
    ("/to-private", "10.0.0.5 is a private address.*redirected to http://10.0.0.5/x.png"),
    ("/to-metadata", "169.254.169.254 is a link-local address \\(the cloud metadata service\\)"),
    ("/to-file", "only http and https"),
    ("/loop", "too many redirects \\(more than 5\\)"),
    ("/chain/6", "too many redirects"),
    ("/page", "text/html, not an image, audio or video"),
    ("/octet/blob", "application/octet-stream, not an image"),
    ("/fake.png", "is not an image Jarvis can read"),
    ("/gzip.png", "compressed \\(gzip\\)"),
    ("/huge-declared", "the file is larger than 25 MiB \\(10 GiB declared\\)"),
    ("/missing.png", "404 Not Found"),
])
def test_refused_responses(route, message, server, store):
    with pytest.raises(ResourceError, match=message):
        fetch_to_store(_base(server) + route, store, allow_private=True)
    assert _all_loopback()
    assert store.list() == [] and list(store.root.iterdir()) == []


def test_body_cap(server, store):
    with pytest.raises(ResourceError, match="the file is larger than 1 MiB"):
        fetch_to_store(_base(server) + "/huge", store, allow_private=True, max_bytes=2**20)
    assert list(store.root.iterdir()) == []


def test_overall_deadline(server, store):
    start = time.monotonic()
    with pytest.raises(ResourceError, match="timed out after 1 s"):
        fetch_to_store(_base(server) + "/slow", store, allow_private=True, timeout=1.0)
    assert time.monotonic() - start < 2.0
    assert list(store.root.iterdir()) == []


# -- the pinning itself ---------------------------------------------------------
def test_backend_connects_only_to_pinned_address(server):
    port = server.server_address[1]
    backend = PinnedBackend(time.monotonic() + 5)
    backend.pin("pinned.test", ["127.0.0.1"])
    transport = PinnedTransport(backend)
    try:
        response = transport.handle_request(httpx.Request("GET", f"http://pinned.test:{port}/img.png"))
        assert response.status_code == 200 and response.read() == PNG
        assert server.seen[-1][1]["Host"] == f"pinned.test:{port}"
        assert "pinned.test" not in _LOOKUPS  # the name was never resolved again
        with pytest.raises(ResourceError, match="not checked"):
            transport.handle_request(httpx.Request("GET", f"http://other.test:{port}/img.png"))
    finally:
        transport.close()
    assert [a[0] for a in _CONNECTS] == ["127.0.0.1"]


def test_tls_sni_names_the_host_not_the_pinned_ip(tmp_path, store):
    require(bool(shutil.which("openssl")), "the openssl command", "apt-get install openssl")
    key, cert = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=localhost", "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    names: list[str | None] = []
    context.sni_callback = lambda sock, name, ctx: names.append(name)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)

    def serve_one() -> None:
        try:
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(5)
                context.wrap_socket(conn, server_side=True)
        except OSError:
            pass

    thread = threading.Thread(target=serve_one, daemon=True)
    thread.start()
    port = listener.getsockname()[1]
    try:
        with pytest.raises(ResourceError, match="could not connect|CERTIFICATE|certificate"):
            fetch_to_store(f"https://localhost:{port}/img.png", store, allow_private=True, timeout=5)
    finally:
        thread.join(5)
        listener.close()
    assert names == ["localhost"]  # the self-signed certificate is refused, but SNI carried the name
    assert _all_loopback()


# -- every address of a DNS answer is vetted (a faked answer through the policy's resolver seam) ----
PUBLIC_V4, PUBLIC_V6 = "93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"
MIXED_ANSWERS = [
    ([PUBLIC_V4, "169.254.169.254"], "169.254.169.254, a link-local address \\(the cloud metadata service\\)"),
    (["169.254.169.254", PUBLIC_V4], "169.254.169.254, a link-local address"),
    ([PUBLIC_V4, "8.8.8.8", "10.0.0.7"], "10.0.0.7, a private address"),
    ([PUBLIC_V4, "127.0.0.1"], "127.0.0.1, a loopback address"),
    ([PUBLIC_V6, "::1"], "::1, a loopback address"),
    ([PUBLIC_V6, "::ffff:169.254.169.254"], "::ffff:a9fe:a9fe, .*metadata.*169.254.169.254, written as IPv6"),
    ([PUBLIC_V4, "fd00:ec2::254"], "fd00:ec2::254, a private address"),
    ([PUBLIC_V4, "100.64.3.4"], "100.64.3.4, a carrier-grade NAT"),
]


def _answering(addresses: list[str], asked: list[tuple[str, int]]):
    def resolver(host: str, port: int) -> list[str]:
        asked.append((host, port))
        return list(addresses)
    return resolver


@pytest.mark.parametrize("addresses, message", MIXED_ANSWERS)
def test_one_bad_address_in_a_dns_answer_refuses_the_host(addresses, message):
    from jarvis.files.url_fetch import OutboundPolicy
    asked: list[tuple[str, int]] = []
    policy = OutboundPolicy(public_only=True, resolver=_answering(addresses, asked))
    with pytest.raises(ResourceError, match=f"refused: media.example.org resolves to {message}"):
        policy.vet(httpx.URL("https://media.example.org/cat.png"), time.monotonic() + 5)
    assert asked == [("media.example.org", 443)]
    assert _CONNECTS == [] and _LOOKUPS == []          # the seam answered: no real lookup, no connection


def test_an_all_public_dns_answer_pins_every_address_in_order():
    from jarvis.files.url_fetch import OutboundPolicy
    answer = [PUBLIC_V4, "8.8.8.8", PUBLIC_V6, PUBLIC_V4]
    policy = OutboundPolicy(public_only=True, resolver=_answering(answer, []))
    assert policy.vet(httpx.URL("http://media.example.org:8080/a.png"), time.monotonic() + 5) == (
        "media.example.org", [PUBLIC_V4, "8.8.8.8", PUBLIC_V6])



# -- what the fetcher accepts, exactly at its limits ---------------------------------------------
def test_a_file_of_exactly_the_size_limit_is_accepted_one_byte_more_is_not(server, store):
    assert fetch_to_store(_base(server) + "/img.png", store, allow_private=True, max_bytes=len(PNG)).is_file()
    with pytest.raises(ResourceError, match=f"the file is larger than {len(PNG) - 1} bytes"):
        fetch_to_store(_base(server) + "/img.png", store, allow_private=True, max_bytes=len(PNG) - 1)


def test_a_declared_size_is_shown_in_readable_units(server, store):
    with pytest.raises(ResourceError, match="^the file is larger than 1.5 KiB \\(10 GiB declared\\)$"):
        fetch_to_store(_base(server) + "/huge-declared", store, allow_private=True, max_bytes=1536)


@pytest.mark.parametrize("route, suffix, kind", [
    ("/typed.png", ".png", "image"),              # a content type with parameters
    ("/vendor.png", ".png", "image"),             # an image type it does not know, named .png
    ("/binary/clip.wav", ".wav", "audio"),        # S3's binary/octet-stream with a media name
])
def test_accepted_content_types(route, suffix, kind, server, store):
    path = fetch_to_store(_base(server) + route, store, allow_private=True)
    assert path.suffix == suffix and store.list()[0].type == kind and store.list()[0].origin == "url"


def test_a_fetched_file_is_named_after_the_url(server, store):
    assert fetch_to_store(_base(server) + "/odd/%21%21.png", store, allow_private=True).name.startswith("download")


@pytest.mark.parametrize("route, message", [
    ("/drawing.png", "image/svg\\+xml, not an image, audio or video file Jarvis can use \\(accepted: .*\\.png"),
    ("/empty.png", "^the server sent an empty file for http://127.0.0.1:\\d+/empty.png$"),
    ("/nowhere", "^http://127.0.0.1:\\d+/nowhere redirected without saying where to$"),
    ("/status/204", "^the server answered 204 No Content for http://127.0.0.1:\\d+/status/204$"),
    ("/status/300", "answered 300 Multiple Choices"),
    ("/status/500", "answered 500 Internal Server Error"),
])
def test_refused_answers_say_why(route, message, server, store):
    with pytest.raises(ResourceError, match=message):
        fetch_to_store(_base(server) + route, store, allow_private=True)
    assert list(store.root.iterdir()) == []


@pytest.mark.parametrize("status", [200, 203, 206])
def test_a_2xx_answer_with_a_body_is_a_file(status, server, store):
    assert fetch_to_store(_base(server) + f"/status/{status}", store, allow_private=True).suffix == ".png"


def test_a_url_without_a_scheme_is_refused_with_the_rule(store):
    with pytest.raises(ResourceError, match="only http and https URLs can be fetched, not URLs without a scheme"):
        fetch_to_store("//example.org/a.png", store)


def test_asks_for_uncompressed_media_and_names_itself(server, store):
    """Accept-Encoding identity: a compressed body would be refused (a decompression bomb guard), so the
    fetcher must not invite one; Accept names media types; the User-Agent says what fetched it."""
    fetch_to_store(_base(server) + "/dir/My%20Cat!.png", store, allow_private=True)
    _, headers = server.seen[-1]
    assert headers["Accept-Encoding"] == "identity"
    assert headers["Accept"].startswith("image/*") and headers["User-Agent"].startswith("Jarvis-media-fetch/")
