"""Fetch a media file from a public http(s) URL into a session's resource store, safely.

HuggingGPT fetched any URL a plan named, server-side; here every hop is vetted first (public
addresses only, checked on every resolved IP), the connection is pinned to the vetted IP so DNS
rebinding cannot switch it, redirects are followed by hand, and size, time and type are capped.
"""
from __future__ import annotations

import ipaddress
import os
import re
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any, Protocol, cast
from urllib.parse import unquote

import httpcore
import httpx

from jarvis.errors import ResourceError
from jarvis.files.content_checks import check_media, sniff_bytes
from jarvis.files.media_types import MEDIA_SUFFIXES, MIME_SUFFIXES, SUFFIX_TYPES, all_suffixes, media_type
from jarvis.shorten import shorten

MAX_REDIRECTS = 5
_REDIRECT_CODES = {301, 302, 303, 307, 308}
_HEADERS = {
    "User-Agent": "Jarvis-media-fetch/1.0",
    "Accept": "image/*, audio/*, video/*, application/octet-stream;q=0.5",
    "Accept-Encoding": "identity",
}
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
_NUMERIC_HOST = re.compile(r"[0-9a-fA-FxX.]+")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
SocketOption = tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]


class FetchTarget(Protocol):
    """Where a fetched file goes: a session's ResourceStore. Structural, so that the store can
    call this fetcher without the fetcher depending on the store."""
    root: Path

    def new_path(self, stem: str, suffix: str) -> Path: ...

    def register_fetched(self, path: Path, url: str) -> Any: ...


# -- address vetting -------------------------------------------------------
def address_refusal(ip: IPAddress, allow_loopback: bool = False) -> str | None:
    """Why `ip` must not be contacted (e.g. 'a private address'), or None when it is public."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is None and ip.teredo:
            embedded = ip.teredo[1]
        if embedded is not None:
            reason = address_refusal(embedded, allow_loopback)
            return reason and f"{reason} ({embedded}, written as IPv6)"
        if ip.scope_id:
            return "a link-local address"
    if ip.is_unspecified:
        return "the unspecified address"
    if ip.is_loopback:
        return None if allow_loopback else "a loopback address (this machine)"
    if ip.is_link_local:
        return "a link-local address" + (" (the cloud metadata service)" if ip in _METADATA else "")
    if ip.is_multicast:
        return "a multicast address"
    if ip in _CGNAT:
        return "a carrier-grade NAT (shared) address"
    if ip.is_reserved:
        return "a reserved address"
    if ip.is_private:
        return "a private address"
    if not ip.is_global:
        return "not a public internet address"
    return None


def _literal_address(host: str) -> IPAddress | None:
    """The address a host names literally, including legacy spellings (2130706433, 0x7f.1)."""
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    if _NUMERIC_HOST.fullmatch(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))  # purely local, never DNS
        except OSError:
            return None
    return None


def _resolve(host: str, port: int, deadline: float) -> list[IPAddress]:
    """getaddrinfo with the fetch's deadline (the lookup runs in a daemon thread)."""
    infos: list[tuple[Any, ...]] = []
    failures: list[Exception] = []

    def work() -> None:
        try:
            infos.extend(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except (OSError, UnicodeError) as exc:
            failures.append(exc)

    worker = threading.Thread(target=work, name="jarvis-dns", daemon=True)
    worker.start()
    worker.join(max(0.0, deadline - time.monotonic()))
    if worker.is_alive():
        raise httpcore.ConnectTimeout(f"DNS lookup of {host} did not finish")
    if failures:
        raise ResourceError(f"could not find the host {host!r} (DNS lookup failed: {failures[0]})")
    addresses: list[IPAddress] = []
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise ResourceError(f"could not find the host {host!r} (no addresses)")
    return addresses


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
            f"refused: {_short(url, hide_userinfo=True)} carries a user name or password; "
            "Jarvis never sends credentials, so give the plain URL of a public file"
        )
    if not parsed.raw_host:
        raise ResourceError(f"refused: {_short(url)} names no host")
    return parsed


def _vet(url: httpx.URL, allow_loopback: bool, deadline: float) -> tuple[str, list[str]]:
    """Check every address the URL's host stands for; returns (host, vetted IPs to connect to)."""
    host = url.raw_host.decode("ascii").lower()
    literal = _literal_address(host)
    if literal is not None:
        reason = address_refusal(literal, allow_loopback)
        if reason:
            shown = host if str(literal) == host else f"{host} (= {literal})"
            raise ResourceError(f"refused: {shown} is {reason}; only public internet addresses are fetched")
        return host, [str(literal)]
    port = url.port or (443 if url.scheme == "https" else 80)
    addresses = _resolve(host, port, deadline)
    for ip in addresses:
        reason = address_refusal(ip, allow_loopback)
        if reason:
            raise ResourceError(
                f"refused: {host} resolves to {ip}, {reason}; only public internet addresses are fetched"
            )
    return host, [str(ip) for ip in addresses]


# -- a transport that connects only to vetted addresses ----------------------
class _DeadlineStream(httpcore.NetworkStream):
    """A socket stream whose every read/write is cut short at the fetch's overall deadline."""

    def __init__(self, inner: httpcore.NetworkStream, backend: PinnedBackend):
        self._inner, self._backend = inner, backend

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._backend.time_left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._backend.time_left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        left = self._backend.time_left(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, left), self._backend)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class PinnedBackend(httpcore.NetworkBackend):
    """Opens TCP connections only to IPs vetted for a host name; never resolves names itself.

    The URL keeps its host name, so the Host header, SNI and certificate check stay right.
    """

    def __init__(self, deadline: float):
        self.deadline = deadline
        self._inner = httpcore.SyncBackend()
        self._pins: dict[str, list[str]] = {}

    def pin(self, host: str, addresses: list[str]) -> None:
        self._pins[host.lower()] = list(addresses)

    def time_left(self, timeout: float | None, error: type[Exception]) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise error("the overall time limit was reached")
        return left if timeout is None else min(timeout, left)

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[SocketOption] | None = None) -> httpcore.NetworkStream:
        addresses = self._pins.get(str(host).lower())
        if not addresses:
            raise ResourceError(f"refused: {host} was not checked before connecting")
        failure: Exception | None = None
        for address in addresses:
            left = self.time_left(timeout, httpcore.ConnectTimeout)
            try:
                stream = self._inner.connect_tcp(address, port, timeout=left, socket_options=socket_options)
            except httpcore.ConnectError as exc:
                failure = exc
                continue
            return _DeadlineStream(stream, self)
        assert failure is not None
        raise failure

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[SocketOption] | None = None) -> httpcore.NetworkStream:
        raise ResourceError("refused: unix sockets are never used for fetching")


class _Body(httpx.SyncByteStream):
    def __init__(self, response: httpcore.Response):
        self._response = response

    def __iter__(self) -> Iterator[bytes]:
        yield from cast(Iterable[bytes], self._response.stream)   # a sync pool's stream is sync

    def close(self) -> None:
        self._response.close()


class PinnedTransport(httpx.BaseTransport):
    """An httpx transport over httpcore with a PinnedBackend: no proxies, no env, no retries."""

    def __init__(self, backend: PinnedBackend):
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False), network_backend=backend,
            max_connections=2, http1=True, http2=False, retries=0,
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        raw = httpcore.Request(
            method=request.method,
            url=httpcore.URL(scheme=request.url.raw_scheme, host=request.url.raw_host,
                             port=request.url.port, target=request.url.raw_path),
            headers=request.headers.raw, content=request.stream, extensions=request.extensions,
        )
        response = self._pool.handle_request(raw)
        return httpx.Response(status_code=response.status, headers=response.headers,
                              stream=_Body(response), extensions=response.extensions)

    def close(self) -> None:
        self._pool.close()


# -- the fetch -------------------------------------------------------------
def fetch_to_store(url: str, store: FetchTarget, *, max_bytes: int = 25 * 2**20,
                   timeout: float = 20.0, allow_private: bool = False,
                   max_megapixels: float = 40.0) -> Path:
    """Download the image/audio/video at a public http(s) URL into `store` (registered there as
    fetched from `url`); returns its path.

    `allow_private` is for tests only: it lets loopback addresses (a local test server) through;
    every other non-public range stays refused.
    """
    current = _parse(url)
    deadline = time.monotonic() + timeout
    backend = PinnedBackend(deadline)
    transport = PinnedTransport(backend)
    try:
        for hop in range(MAX_REDIRECTS + 1):
            try:
                host, addresses = _vet(current, allow_private, deadline)
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
                return _save(response, url, store, max_bytes, max_megapixels)
            finally:
                response.close()
        raise ResourceError(f"too many redirects (more than {MAX_REDIRECTS}) fetching {_short(url)}")
    except httpcore.TimeoutException:
        raise ResourceError(f"timed out after {timeout:g} s fetching {_short(url)}") from None
    except httpcore.ConnectError as exc:
        raise ResourceError(f"could not connect to fetch {_short(url)}: {exc or 'connection failed'}") from None
    except (httpcore.NetworkError, httpcore.ProtocolError, httpx.HTTPError) as exc:
        raise ResourceError(f"the download of {_short(url)} failed: {exc or type(exc).__name__}") from None
    finally:
        transport.close()


def _save(response: httpx.Response, url: str, store: FetchTarget, max_bytes: int,
          max_megapixels: float) -> Path:
    """Check type and size, stream the body to a store file, check the media; returns its path."""
    original = httpx.URL(url)
    content_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    url_suffix = PurePosixPath(unquote(original.path)).suffix.lower()
    declared = _suffix_for(content_type, url_suffix, str(original))
    rtype = SUFFIX_TYPES[declared]
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise ResourceError(
            f"the server sent the file compressed ({encoding}); media files are fetched uncompressed only")
    length = response.headers.get("content-length", "")
    if length.isdigit() and int(length) > max_bytes:
        raise ResourceError(f"the file is larger than {_size(max_bytes)} ({_size(int(length))} declared)")

    fd, part = tempfile.mkstemp(prefix=".fetch-", suffix=".part", dir=store.root)
    try:
        written, head = 0, b""
        with os.fdopen(fd, "wb") as out:
            for chunk in response.iter_raw():
                written += len(chunk)
                if written > max_bytes:
                    raise ResourceError(f"the file is larger than {_size(max_bytes)}")
                if len(head) < 512:
                    head += chunk[: 512 - len(head)]
                out.write(chunk)
        if written == 0:
            raise ResourceError(f"the server sent an empty file for {_short(str(original))}")
        sniffed = sniff_bytes(head)
        suffix = sniffed if sniffed and media_type("x" + sniffed) == rtype else declared
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
    major = content_type.split("/", 1)[0]
    if major in MEDIA_SUFFIXES and url_suffix in MEDIA_SUFFIXES[major] and content_type != "image/svg+xml":
        return url_suffix
    if content_type in ("application/octet-stream", "binary/octet-stream") and media_type("x" + url_suffix):
        return url_suffix
    shown = content_type or "no content type"
    raise ResourceError(
        f"{_short(url)} is {shown}, not an image, audio or video file Jarvis can use "
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


def _short(url: str, hide_userinfo: bool = False) -> str:
    """The URL as messages show it: at most 100 characters; without its user name and password if asked."""
    return shorten(re.sub(r"//[^/@]*@", "//", url) if hide_userinfo else url, 100)
