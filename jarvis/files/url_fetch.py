"""Fetch a media file from a public http(s) URL into a session's resource store, safely.

HuggingGPT fetched any URL a plan named, server-side; here every hop is vetted first (public
addresses only, checked on every resolved IP: jarvis.outbound's policy, strict on every install,
since a plan's URL may come from anywhere), the connection is pinned to the vetted IP so DNS
rebinding cannot switch it, redirects are followed by hand, and size, time and type are capped.
While the body streams, the caller's `progress` hears how far it has come (at most once a second) and
its `cancel` (the task's stop) ends the fetch at once, the partial file deleted.
"""
from __future__ import annotations

import os
import re
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path, PurePosixPath
from typing import Any, Protocol
from urllib.parse import unquote

import httpx

from jarvis.errors import ResourceError, TaskError
from jarvis.execution.downloads import transfer_line
from jarvis.files.content_checks import check_media, sniff_type
from jarvis.files.media_types import MEDIA_SUFFIXES, MIME_SUFFIXES, SUFFIX_TYPES, all_suffixes
from jarvis.outbound import OutboundPolicy, PinnedBackend, PinnedTransport, shown_host, without_userinfo
from jarvis.shorten import shorten

MAX_REDIRECTS = 5
_REDIRECT_CODES = {301, 302, 303, 307, 308}
_HEADERS = {
    "User-Agent": "Jarvis-media-fetch/1.0",
    "Accept": "image/*, audio/*, video/*, application/octet-stream;q=0.5",
    "Accept-Encoding": "identity",
}
REPORT_EVERY = 1.0   # seconds between two progress lines
POLL = 0.1           # seconds between two looks at the stop while a read waits

Progress = Callable[[str], None]


class FetchTarget(Protocol):
    """Where a fetched file goes: a session's ResourceStore. Structural, so that the store can
    call this fetcher without the fetcher depending on the store."""
    root: Path

    def new_path(self, stem: str, suffix: str) -> Path: ...

    def register_fetched(self, path: Path, url: str) -> Any: ...


def _parse(url: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise ResourceError(f"{_short(url)} is not a valid URL ({exc})") from None
    if parsed.scheme not in ("http", "https"):
        scheme = f"{parsed.scheme}: URLs" if parsed.scheme else "URLs without a scheme"
        raise ResourceError(f"refused: only http and https URLs can be fetched, not {scheme} ({_short(url)})")
    if parsed.userinfo:
        raise ResourceError(
            f"refused: {_short(url)} carries a user name or password; "
            "Jarvis never sends credentials, so give the plain URL of a public file"
        )
    if not parsed.raw_host:
        raise ResourceError(f"refused: {_short(url)} names no host")
    return parsed


# -- the fetch -------------------------------------------------------------
def fetch_to_store(url: str, store: FetchTarget, *, max_bytes: int = 25 * 2**20,
                   timeout: float = 20.0, allow_private: bool = False,
                   max_megapixels: float = 40.0, progress: Progress | None = None,
                   cancel: threading.Event | None = None) -> Path:
    """Download the image/audio/video at a public http(s) URL into `store` (registered there as
    fetched from `url`); returns its path. `progress` hears bytes, speed and time left while the
    body streams; once `cancel` is set the fetch stops (TaskError, as a runner's stop), its partial
    file deleted.

    `allow_private` is for tests only: it lets loopback addresses (a local test server) through;
    every other non-public range stays refused.
    """
    current = _parse(url)
    deadline = time.monotonic() + timeout
    policy = OutboundPolicy(public_only=True, allow_loopback=allow_private)
    backend = PinnedBackend(deadline)
    transport = PinnedTransport(backend)
    try:
        for hop in range(MAX_REDIRECTS + 1):
            _stop_if_cancelled(cancel, url)
            try:
                host, addresses = policy.vet(current, deadline)
            except ResourceError as exc:
                if hop:
                    raise ResourceError(f"{exc} (the server redirected to {_short(str(current))})") from None
                raise
            backend.pin(host, addresses)
            request = httpx.Request("GET", current, headers=_HEADERS)
            response = transport.handle_request(request)
            try:
                if response.status_code in _REDIRECT_CODES:
                    location = response.headers.get("location")
                    if not location:
                        raise ResourceError(f"{_short(str(current))} redirected without saying where to")
                    current = _parse(str(current.join(location)))
                    continue
                if not 200 <= response.status_code < 300 or response.status_code == 204:
                    raise ResourceError(
                        f"the server answered {response.status_code} {response.reason_phrase} "
                        f"for {_short(str(current))}"
                    )
                with _cut_on_cancel(response, cancel):
                    return _save(response, url, store, max_bytes, max_megapixels, progress, cancel)
            finally:
                response.close()
        raise ResourceError(f"too many redirects (more than {MAX_REDIRECTS}) fetching {_short(url)}")
    except httpx.TimeoutException:
        raise ResourceError(f"timed out after {timeout:g} s fetching {_short(url)}") from None
    except httpx.ConnectError as exc:   # the pinned transport gives every httpx error a message
        raise ResourceError(f"could not connect to fetch {_short(url)}: {exc}") from None
    except httpx.HTTPError as exc:
        _stop_if_cancelled(cancel, url)     # a stop shut the socket under a read
        raise ResourceError(f"the download of {_short(url)} failed: {exc}") from None
    finally:
        transport.close()


def _stop_if_cancelled(cancel: threading.Event | None, url: str) -> None:
    if cancel is not None and cancel.is_set():
        raise TaskError(f"stopped while fetching {_shown(url)}: the task timed out (inference.task_timeout) "
                        "or the run was stopped; nothing was kept") from None


@contextmanager
def _cut_on_cancel(response: httpx.Response, cancel: threading.Event | None) -> Iterator[None]:
    """While the body streams, a stop shuts the connection's socket, so that a read waiting on a
    silent server returns at once instead of at the time limit."""
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if cancel is not None and stream is not None else None
    if not isinstance(sock, socket.socket):
        yield
        return
    assert cancel is not None
    done = threading.Event()

    def watch() -> None:
        while not done.wait(POLL):
            if cancel.is_set():
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                return

    watcher = threading.Thread(target=watch, name="jarvis-fetch-stop", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()


class _Meter:
    """Reports a streaming body's progress through `report`, at most once every REPORT_EVERY seconds."""

    def __init__(self, url: str, total: int | None, report: Progress):
        self.label, self.total, self.report = f"fetching {_shown(url)}", total, report
        self.began = self.last = time.monotonic()

    def update(self, done: int) -> None:
        now = time.monotonic()
        if now - self.last < REPORT_EVERY:
            return
        self.last = now
        self.report(transfer_line(self.label, done, self.total, done / (now - self.began)))


def _save(response: httpx.Response, url: str, store: FetchTarget, max_bytes: int,
          max_megapixels: float, progress: Progress | None, cancel: threading.Event | None) -> Path:
    """Check type and size, stream the body to a store file, check the media; returns its path."""
    original = httpx.URL(url)
    content_type = response.headers.get("content-type", "").partition(";")[0].strip().lower()
    url_suffix = PurePosixPath(unquote(original.path)).suffix.lower()
    declared = _suffix_for(content_type, url_suffix, str(original))
    rtype = SUFFIX_TYPES[declared]
    encoding = response.headers.get("content-encoding", "").strip().lower()
    if encoding not in ("", "identity"):
        raise ResourceError(
            f"the server sent the file compressed ({encoding}); media files are fetched uncompressed only")
    length = response.headers.get("content-length", "")
    if length.isdigit() and int(length) > max_bytes:
        raise ResourceError(f"the file is larger than {_size(max_bytes)} ({_size(int(length))} declared)")

    meter = _Meter(url, int(length) if length.isdigit() else None, progress) if progress else None
    fd, part = tempfile.mkstemp(prefix=".fetch-", suffix=".part", dir=store.root)
    try:
        written = 0
        with os.fdopen(fd, "wb") as out:
            for chunk in response.iter_raw():   # a stop shuts the socket under it (_cut_on_cancel)
                written += len(chunk)
                if written > max_bytes:
                    raise ResourceError(f"the file is larger than {_size(max_bytes)}")
                out.write(chunk)
                if meter is not None:
                    meter.update(written)
        _stop_if_cancelled(cancel, url)     # a stop that shut the socket ends a body of unknown length early
        if written == 0:
            raise ResourceError(f"the server sent an empty file for {_short(str(original))}")
        sniffed = sniff_type(Path(part))
        suffix = sniffed if sniffed and SUFFIX_TYPES.get(sniffed) == rtype else declared
        dest = store.new_path(_stem(original), suffix)
        os.replace(part, dest)
    finally:
        if os.path.exists(part):
            os.unlink(part)
    try:
        check_media(dest, rtype, max_megapixels=max_megapixels)
    except ResourceError:
        dest.unlink(missing_ok=True)
        raise
    store.register_fetched(dest, url)
    return dest


def _suffix_for(content_type: str, url_suffix: str, url: str) -> str:
    """The media suffix the response declares (its content type, else the URL's suffix); refused otherwise."""
    if content_type in MIME_SUFFIXES:
        return MIME_SUFFIXES[content_type]
    major = content_type.partition("/")[0]
    if major in MEDIA_SUFFIXES and url_suffix in MEDIA_SUFFIXES[major] and content_type != "image/svg+xml":
        return url_suffix
    # no content type at all reads as octet-stream (RFC 9110 8.3): the URL's suffix decides, the bytes are checked
    if content_type in ("", "application/octet-stream", "binary/octet-stream") and url_suffix in SUFFIX_TYPES:
        return url_suffix
    what = f"is {content_type}" if content_type else "came without a content type"
    raise ResourceError(
        f"{_short(url)} {what}, not an image, audio or video file Jarvis can use "
        f"(accepted: {', '.join(all_suffixes())})"
    )


def _stem(url: httpx.URL) -> str:
    stem = PurePosixPath(unquote(url.path)).stem
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_-")[:60]
    return stem or "download"


def _size(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            value = n / scale
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n} bytes"


def _shown(url: str) -> str:
    """The URL as progress lines show it: host and path, without scheme, credentials or query."""
    return shorten(shown_host(url) + httpx.URL(url).path, 100)


def _short(url: str) -> str:
    """The URL as messages show it: at most 100 characters, never its user name or password."""
    return shorten(without_userinfo(url), 100)
