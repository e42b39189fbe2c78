"""The URL fetcher (jarvis.files.url_fetch) pinned down against a real loopback HTTP server and the real
session store: the exact messages a user reads when a URL is refused or a download fails (a contract:
asserted whole), the limits at their boundaries (with and without Content-Length), how a content type
and the URL decide the file's suffix and media type, the name a fetched file gets, redirects, and that
a download in progress or cut short never leaves a file under a real name."""
from __future__ import annotations

import errno
import io
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler

import numpy as np
import pytest
from PIL import Image

from jarvis.errors import ResourceError
from jarvis.files.store import ResourceStore
from jarvis.files.url_fetch import fetch_to_store
from tests.fakes.loopback import HandlerThread

pytestmark = pytest.mark.timeout(60)

ACCEPTED = (".avi, .bmp, .flac, .gif, .jpeg, .jpg, .m4a, .mkv, .mov, .mp3, .mp4, .ogg, .opus, .png, .tif, "
            ".tiff, .wav, .webm, .webp")


def _png(width: int = 16, height: int = 16, mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (width, height)).save(buf, "PNG")
    return buf.getvalue()


def _aac_in_mp4() -> bytes:
    """A short AAC clip in an MP4 container (brand 'isom', so its bytes look like an .mp4 video file)."""
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=16000, layout="mono")
        for n in range(8):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), dtype=np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, n * 1024
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


PNG = _png()
# (status, headers, body); "Content-Length" is added unless the headers set it (None: leave it out).
ROUTES: dict[str, tuple[int, dict[str, str | None], bytes]] = {
    "/cat.png": (200, {"Content-Type": "image/png"}, PNG),
    "/untyped.png": (200, {}, PNG),
    "/untyped": (200, {}, PNG),
    "/untyped-lie.png": (200, {}, b"<html>not a picture</html>"),
    "/blob": (200, {"Content-Type": "image/png; name=a; charset=binary"}, PNG),
    "/odd-type.png": (200, {"Content-Type": "image/vnd.acme/v2"}, PNG),
    "/plain-encoding.png": (200, {"Content-Type": "image/png", "Content-Encoding": ""}, PNG),
    "/named-identity.png": (200, {"Content-Type": "image/png", "Content-Encoding": " Identity "}, PNG),
    "/unsized.png": (200, {"Content-Type": "image/png", "Content-Length": None, "Connection": "close"}, PNG),
    "/cut-short.png": (200, {"Content-Type": "image/png", "Content-Length": str(len(PNG) + 500),
                             "Connection": "close"}, PNG),
    "/clip": (200, {"Content-Type": "audio/mp4"}, b""),        # body set below (PyAV is imported lazily)
    "/go/kitten.png": (302, {"Location": "../store/42?x=1"}, b""),
    "/store/42": (200, {"Content-Type": "image/png"}, PNG),
    "/see-other.png": (303, {"Location": "/store/42"}, b""),
    "/temporary.png": (307, {"Location": "/store/42"}, b""),
    "/permanent.png": (308, {"Location": "http://127.0.0.1:1/store/42"}, b""),
    "/to-lan.png": (301, {"Location": "http://192.168.0.10/cat.png"}, b""),
}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        server = self.server
        server.seen.append(self.path)   # type: ignore[attr-defined]
        path = self.path.split("?", 1)[0]
        if path == "/paused.png":           # half the file, then wait until the test has looked
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(PNG)))
            self.end_headers()
            self.wfile.write(PNG[:40])
            self.wfile.flush()
            server.release.wait(10)         # type: ignore[attr-defined]
            self.wfile.write(PNG[40:])
            return
        if path == "/" or path.startswith("/any/"):
            status, headers, body = 200, {"Content-Type": "image/png"}, PNG
        else:
            status, headers, body = ROUTES.get(path, (404, {"Content-Type": "text/plain"}, b"not here"))
        body = server.bodies.get(path, body)   # type: ignore[attr-defined]
        self.send_response(status)
        headers = {"Content-Length": str(len(body)), **headers}
        for key, value in headers.items():
            if value is not None:
                self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)
        if headers.get("Connection") == "close":
            self.close_connection = True


@pytest.fixture(scope="module")
def server():
    with HandlerThread(_Handler) as served:
        httpd = served.httpd
        httpd.handle_error = lambda request, address: None     # a fetch giving up early hangs up
        httpd.seen, httpd.bodies, httpd.release = [], {}, threading.Event()   # type: ignore[attr-defined]
        yield httpd
        httpd.release.set()                                      # type: ignore[attr-defined]


@pytest.fixture
def store(tmp_path):
    return ResourceStore(tmp_path / "session")


def _url(server, path: str) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


def _fetch(url: str, store: ResourceStore, **caps):
    return fetch_to_store(url, store, allow_private=True, **caps)


def _refusal(url: str, store: ResourceStore, **caps) -> str:
    with pytest.raises(ResourceError) as info:
        _fetch(url, store, **caps)
    assert list(store.root.iterdir()) == [] and store.list() == [], "a refused fetch leaves nothing behind"
    return str(info.value)


# -- refused before any connection: the whole message ------------------------------------------
def test_another_scheme_is_named_in_the_refusal(store):
    assert _refusal("ftp://example.com/a.png", store) == (
        "refused: only http and https URLs can be fetched, not ftp: URLs (ftp://example.com/a.png)")


def test_a_url_with_credentials_is_refused_without_showing_them(store):
    assert _refusal("https://bob:hunter2@example.com/a.png", store) == (
        "refused: https://example.com/a.png carries a user name or password; Jarvis never sends credentials, "
        "so give the plain URL of a public file")


def test_a_long_url_is_shown_cut_to_100_characters(server, store):
    url = _url(server, "/" + "a" * 150)
    shown = url[:97] + "..."
    assert len(shown) == 100
    assert _refusal(url, store) == f"the server answered 404 Not Found for {shown}"


# -- what the response's type and the URL make of the file ---------------------------------------
def test_no_content_type_is_refused_with_what_is_accepted(server, store):
    url = _url(server, "/untyped")
    assert _refusal(url, store) == (
        f"{url} came without a content type, not an image, audio or video file Jarvis can use "
        f"(accepted: {ACCEPTED})")


def test_no_content_type_reads_as_octet_stream_so_a_media_suffix_decides_and_the_bytes_are_checked(server, store):
    path = _fetch(_url(server, "/untyped.png"), store)
    assert path.suffix == ".png" and path.read_bytes() == PNG
    with pytest.raises(ResourceError):
        _fetch(_url(server, "/untyped-lie.png"), store)
    assert [p.name for p in store.root.iterdir()] == [path.name]       # the lie left nothing behind


def test_a_content_type_with_several_parameters_decides_even_without_a_suffix(server, store):
    path = _fetch(_url(server, "/blob"), store)
    assert re.fullmatch(r"blob-[0-9a-f]{8}\.png", path.name) and path.read_bytes() == PNG


def test_an_unknown_image_subtype_is_accepted_by_the_urls_image_suffix(server, store):
    assert _fetch(_url(server, "/odd-type.png"), store).suffix == ".png"


@pytest.mark.parametrize("route", ["/plain-encoding.png", "/named-identity.png"])
def test_an_empty_or_identity_content_encoding_is_uncompressed(route, server, store):
    assert _fetch(_url(server, route), store).read_bytes() == PNG


def test_audio_in_an_mp4_container_stays_audio(server, store):
    """A server's audio/mp4 decides the kind: the MP4 bytes (which also fit a video) keep the .m4a name."""
    server.bodies["/clip"] = clip = _aac_in_mp4()
    path = _fetch(_url(server, "/clip"), store)
    assert re.fullmatch(r"clip-[0-9a-f]{8}\.m4a", path.name) and path.read_bytes() == clip
    [res] = store.list()
    assert (res.path, res.type, res.origin) == (path, "audio", "url")


# -- what is stored, and under which name -----------------------------------------------------------
def test_the_file_is_stored_and_registered_under_the_url_it_was_asked_for(server, store):
    url = _url(server, "/go/kitten.png")
    server.seen.clear()
    path = _fetch(url, store)
    assert server.seen == ["/go/kitten.png", "/store/42?x=1"]           # the relative Location, resolved
    assert path.parent == store.root and path.read_bytes() == PNG
    assert re.fullmatch(r"kitten-[0-9a-f]{8}\.png", path.name)           # named after the URL asked for
    [res] = store.list()
    assert (res.name, res.type, res.origin) == (path.name, "image", "url")
    assert store.resolve(url) == path and len(server.seen) == 2          # the same URL is not fetched again


@pytest.mark.parametrize("route", ["/see-other.png", "/temporary.png"])
def test_303_and_307_redirects_are_followed(route, server, store):
    assert _fetch(_url(server, route), store).read_bytes() == PNG


@pytest.mark.parametrize("path, stem", [
    ("/any/Xray_X.png", "Xray_X"),                                  # letters at the ends stay
    ("/any/" + "b" * 100 + ".png", "b" * 60),                        # at most 60 characters
    ("/any/--_My%20Holiday%20(2).png_-", "My_Holiday_2"),           # other characters become '_', ends trimmed
    ("/any/%E2%98%83.png", "download"),                             # nothing usable left
    ("/", "download"),
])
def test_a_fetched_files_name_comes_from_the_url_path(path, stem, server, store):
    assert re.fullmatch(rf"{stem}-[0-9a-f]{{8}}\.png", _fetch(_url(server, path), store).name)


# -- redirects -----------------------------------------------------------------------------------------
def test_a_redirect_to_a_private_address_names_the_hop(server, store):
    assert _refusal(_url(server, "/to-lan.png"), store) == (
        "refused: 192.168.0.10 is a private address; this server contacts only public internet addresses for "
        "a URL a caller chooses (the server redirected to http://192.168.0.10/cat.png)")


def test_a_308_redirect_is_followed_to_where_it_points(server, store):
    url = _url(server, "/permanent.png")      # to port 1 of this machine, where nothing listens
    assert _refusal(url, store) == f"could not connect to fetch {url}: [Errno {errno.ECONNREFUSED}] Connection refused"


# -- sizes, at the limit and one byte over -------------------------------------------------------------
@pytest.mark.parametrize("route", ["/cat.png", "/unsized.png"])
def test_a_file_of_exactly_the_limit_is_stored(route, server, store):
    assert _fetch(_url(server, route), store, max_bytes=len(PNG)).read_bytes() == PNG


def test_a_declared_length_one_byte_over_the_limit_is_refused_before_the_body(server, store):
    limit = len(PNG) - 1
    assert _refusal(_url(server, "/cat.png"), store, max_bytes=limit) == (
        f"the file is larger than {limit} bytes ({len(PNG)} bytes declared)")


def test_an_undeclared_length_one_byte_over_the_limit_is_refused_while_streaming(server, store):
    limit = len(PNG) - 1
    assert _refusal(_url(server, "/unsized.png"), store, max_bytes=limit) == f"the file is larger than {limit} bytes"


def test_a_picture_over_the_default_40_megapixels_is_refused(server, store):
    server.bodies["/any/at-limit.png"] = _png(8000, 5000, "1")       # 40 000 000 pixels, a few KiB
    server.bodies["/any/over.png"] = _png(8000, 5063, "1")           # 40 504 000
    assert _fetch(_url(server, "/any/at-limit.png"), store).suffix == ".png"
    with pytest.raises(ResourceError) as info:
        _fetch(_url(server, "/any/over.png"), store)
    assert re.fullmatch(r"over-[0-9a-f]{8}\.png declares 8000x5063 pixels \(41 megapixels\), more than the 40 "
                        r"megapixels allowed; refusing it as a possible decompression bomb", str(info.value))
    assert [p.name for p in store.root.iterdir()] == [store.list()[0].name]


# -- downloads that do not finish ----------------------------------------------------------------------
def test_a_download_cut_short_leaves_no_file(server, store):
    url = _url(server, "/cut-short.png")
    assert _refusal(url, store) == (
        f"the download of {url} failed: peer closed connection without sending complete message body "
        f"(received {len(PNG)} bytes, expected {len(PNG) + 500})")


def test_nothing_listening_is_a_connection_failure(store):
    with socket.socket() as sock:            # a port that was free a moment ago
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/a.png"
    assert _refusal(url, store) == f"could not connect to fetch {url}: [Errno {errno.ECONNREFUSED}] Connection refused"


def _in_background(url: str, store: ResourceStore, **caps) -> tuple[threading.Thread, dict]:
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["path"] = _fetch(url, store, **caps)
        except ResourceError as exc:
            outcome["error"] = str(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def test_a_download_in_progress_is_a_hidden_part_file_in_the_session_folder(server, store):
    server.release = threading.Event()
    thread, outcome = _in_background(_url(server, "/paused.png"), store)
    try:
        end = time.monotonic() + 10
        while not list(store.root.iterdir()) and time.monotonic() < end:
            time.sleep(0.02)
        [partial] = list(store.root.iterdir())
        assert re.fullmatch(r"\.fetch-[^/]+\.part", partial.name) and store.list() == []
    finally:
        server.release.set()
        thread.join(10)
    path = outcome["path"]
    assert list(store.root.iterdir()) == [path] and path.read_bytes() == PNG
    assert re.fullmatch(r"paused-[0-9a-f]{8}\.png", path.name)


def test_a_download_past_its_time_limit_leaves_no_file(server, store):
    server.release = threading.Event()
    url = _url(server, "/paused.png")
    start = time.monotonic()
    try:
        assert _refusal(url, store, timeout=0.5) == f"timed out after 0.5 s fetching {url}"
        assert time.monotonic() - start < 3.0
    finally:
        server.release.set()
