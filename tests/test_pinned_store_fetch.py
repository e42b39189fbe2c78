"""A session's file store (jarvis.files.store) fetching URLs and naming files, against a loopback
HTTP server and the real store on disk: one download per URL (again when the file is gone), the
store's own caps (size, time, image size) reaching the fetcher and matching config.files' defaults,
`find` never fetching, names made safe, new names never taking an existing file's place."""
from __future__ import annotations

import io
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jarvis.config import FilesConfig
from jarvis.errors import ResourceError
from jarvis.files.store import ResourceStore, _safe_name
from tests.fakes.loopback import HandlerThread

pytestmark = pytest.mark.timeout(60)


def png(side: int, noise: bool = False) -> bytes:
    pixels = (np.random.default_rng(side).integers(0, 256, (side, side, 3)) if noise
              else np.full((side, side, 3), 120)).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


SMALL, MIDDLE, TALL = png(16), png(72, noise=True), png(64)   # MIDDLE: between 10 and 20 KiB
ROUTES = {"/small.png": SMALL, "/middle.png": MIDDLE, "/tall.png": TALL}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        self.server.seen.append(self.path)   # type: ignore[attr-defined]
        if self.path == "/slow.png":
            time.sleep(3)
        body = ROUTES.get(self.path, SMALL)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def server():
    with HandlerThread(_Handler) as served:
        httpd = served.httpd
        httpd.handle_error = lambda request, address: None    # a fetch giving up early hangs up
        httpd.seen = []   # type: ignore[attr-defined]
        yield httpd


def url(server, path: str) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


def fresh(tmp_path: Path, **caps) -> ResourceStore:
    return ResourceStore(tmp_path / "session", allow_private=True, **caps)


def test_a_url_is_downloaded_once_and_again_when_its_file_is_gone(server, tmp_path):
    store = fresh(tmp_path)
    server.seen.clear()
    first = store.resolve(url(server, "/small.png?v=1"))
    assert first.read_bytes() == SMALL and first.parent == store.root
    assert store.resolve(url(server, "/small.png?v=1")) == first
    assert server.seen == ["/small.png?v=1"]
    first.unlink()
    again = store.resolve(url(server, "/small.png?v=1"))
    assert again.read_bytes() == SMALL and server.seen == ["/small.png?v=1"] * 2


def test_upper_case_schemes_are_fetched_too(server, tmp_path):
    path = fresh(tmp_path).resolve(url(server, "/small.png").replace("http://", "HTTP://"))
    assert path.read_bytes() == SMALL


def test_the_stores_size_cap_is_the_fetchers(server, tmp_path):
    assert 10 * 2**10 < len(MIDDLE) < 20 * 2**10
    store = fresh(tmp_path, max_download_mb=10 / 1024)       # 10 KiB
    assert store.resolve(url(server, "/small.png")).read_bytes() == SMALL
    with pytest.raises(ResourceError, match="the file is larger than 10 KiB"):
        store.resolve(url(server, "/middle.png"))


def test_the_stores_time_limit_is_the_fetchers(server, tmp_path):
    store = fresh(tmp_path, fetch_timeout=0.5)
    start = time.monotonic()
    with pytest.raises(ResourceError, match="timed out after 0.5 s"):
        store.resolve(url(server, "/slow.png"))
    assert time.monotonic() - start < 2.5


def test_the_stores_image_size_cap_is_the_fetchers(server, tmp_path):
    store = fresh(tmp_path, max_image_megapixels=0.001)      # 1000 pixels: 16x16 passes, 64x64 does not
    assert store.resolve(url(server, "/small.png")).read_bytes() == SMALL
    with pytest.raises(ResourceError, match="megapixel|too large|pixels"):
        store.resolve(url(server, "/tall.png"))


def test_a_stores_default_caps_are_the_configs(tmp_path):
    store = ResourceStore(tmp_path / "a" / "b" / "c")       # parents are made
    files = FilesConfig()
    assert store.max_download_bytes == int(files.max_download_mb * 2**20) == 25 * 2**20
    assert (store.fetch_timeout, store.max_image_megapixels, store.allow_private) == (
        files.fetch_timeout, files.max_image_megapixels, False)
    scratch = ResourceStore()
    try:
        assert scratch.root.name.startswith("jarvis-session-") and scratch.root.is_dir()
    finally:
        scratch.cleanup()
    scratch.cleanup()          # twice: nothing left to delete is no error
    assert not scratch.root.exists() and scratch.list() == []


def test_a_url_is_not_a_file_a_reference_can_find(server, tmp_path):
    store = fresh(tmp_path)
    upload = tmp_path / "cat.png"
    upload.write_bytes(SMALL)
    added = store.add_upload(upload)
    server.seen.clear()
    for ref in (url(server, "/small.png"), "//127.0.0.1/small.png", "data:image/png;base64,AAAA", "", "   "):
        assert store.find(ref) is None, ref
    assert server.seen == []
    assert store.find(" cat.png ") == added.path == store.find(str(added.path))
    assert store.find("dog.png") is None


def test_a_new_name_never_takes_the_place_of_a_file_already_there(tmp_path):
    store = fresh(tmp_path)
    src = tmp_path / "in.png"
    src.write_bytes(SMALL)
    names = [store.add_upload(src, "photo.png").name for _ in range(3)]
    assert names == ["photo.png", "photo-1.png", "photo-2.png"]
    pending = store.new_path("image", ".png")                 # a task's output, not registered yet
    pending.write_bytes(TALL)
    assert store.add_upload(src, pending.name).name == f"{pending.stem}-1.png"
    assert pending.read_bytes() == TALL


@pytest.mark.parametrize("name", ["drawing.svg", "page.HTML", "x.Svg"])
def test_a_markup_name_is_refused_whatever_the_content_and_the_file_it_came_from(tmp_path, name):
    src = tmp_path / "innocent.png"
    src.write_bytes(SMALL)
    with pytest.raises(ResourceError, match="SVG, HTML and other markup"):
        fresh(tmp_path).add_upload(src, name)


@pytest.mark.parametrize("given, safe", [
    ("dir\\sub\\evil.png", "evil.png"), ("../../etc/passwd", "passwd"), ("Photo.PNG", "Photo.PNG"),
    ("._hidden.png", "hidden.png"), ("☃.png", "file.png"), ("my photo (1).jpg", "my_photo_1_.jpg"),
    ("Crème brûlée.wav", "Creme_brulee.wav"), (".env", "env"), ("noext", "noext"), ("...", "file"),
    ("a.b.c.tar.gz", "a.b.c.tar.gz"), ("x" * 150 + ".png", "x" * 96 + ".png"), ("README", "README"),
    ("XYZX", "XYZX"), ("Xmas.png", "Xmas.png"),
])
def test_a_name_is_made_safe(given, safe):
    assert _safe_name(given) == safe
