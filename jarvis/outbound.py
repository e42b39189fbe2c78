"""Where this server may connect on a caller's behalf: the one outbound policy for every URL a caller
chooses (an LLM base URL typed in the web app or sent to the API, a media file URL, a Space URL), and
the pinned connections that enforce it.

On a public deployment (a Space, a server bound beyond loopback, or `server.public: true`) such a URL
may reach public internet addresses only. The check happens when connecting, on every request and
every redirect hop: the host name is resolved once, every address it resolves to is vetted (one
private address among public ones refuses the lot), and the socket goes to a vetted address while
the URL keeps its name, so Host, SNI and the certificate check stay right and DNS rebinding cannot
switch the address afterwards. The LLM client follows no redirects; the media fetcher vets each hop.
On a loopback-only install the caller is on this machine, which reaches its own services anyway: a
local Ollama or vLLM stays usable. The server's own configured endpoints are not caller-chosen.
"""
from __future__ import annotations

import ipaddress
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

import httpcore
import httpx

from jarvis.errors import AddressRefused, ResourceError

LOOKUP_TIMEOUT = 10.0   # seconds a name lookup may take when the request sets no connect timeout
ONLY_PUBLIC = "this server contacts only public internet addresses for a URL a caller chooses"
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
_NUMERIC_HOST = re.compile(r"[0-9a-fA-FxX.]+")
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*:)?//[^/?#\s'\"]*@")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
SocketOption = tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
Resolver = Callable[[str, int], Sequence[str]]
"""(host, port) -> the addresses the name stands for; raises OSError when it has none."""


def system_resolver(host: str, port: int) -> list[str]:
    """The system's answer for a name (getaddrinfo)."""
    return [str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


def _unscoped(text: str) -> IPAddress:
    """The address `text` spells, without any %zone suffix; ValueError when it spells none."""
    return ipaddress.ip_address(text.partition("%")[0])


def binds_beyond_loopback(host: str) -> bool:
    """Whether a server listening on `host` is reachable from other machines (0.0.0.0, a LAN address, a name)."""
    host = host.strip().strip("[]").lower()
    if host == "localhost":
        return False
    try:
        return not _unscoped(host).is_loopback
    except ValueError:
        return True


# -- URLs as messages may show them ------------------------------------------
def without_userinfo(text: str) -> str:
    """A URL, or a message holding URLs, without any user name and password in them."""
    return _USERINFO.sub(lambda m: (m.group(1) or "") + "//", text.strip())


def shown_host(url: str) -> str:
    """host[:port] of a URL for messages: never its user name or password."""
    try:
        parsed = httpx.URL(url.strip())
    except (httpx.InvalidURL, TypeError, ValueError):
        return without_userinfo(url)[:100]
    host = parsed.host if ":" not in parsed.host else f"[{parsed.host}]"
    if not host:
        return without_userinfo(url)[:100]
    return f"{host}:{parsed.port}" if parsed.port else host


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
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:   # fec0::/10: deprecated, still routed inside some networks
        return "a site-local address"
    if ip.is_multicast:
        return "a multicast address"
    if ip in _CGNAT:
        return "a carrier-grade NAT (shared) address"
    if ip.is_reserved:
        return "a reserved address"
    if not ip.is_global:   # here the same as ipaddress's is_private: the shared 100.64/10 is handled above
        return "a private address"
    return None


def literal_address(host: str) -> IPAddress | None:
    """The address a host names literally, including legacy spellings (2130706433, 0x7f.1)."""
    try:
        return _unscoped(host)
    except ValueError:
        pass
    if _NUMERIC_HOST.fullmatch(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))  # purely local, never DNS
        except OSError:
            return None
    return None


@dataclass(frozen=True)
class OutboundPolicy:
    """Which addresses a caller-chosen URL may reach. `public_only`: a public deployment (otherwise
    every address is allowed, but names are still resolved once and pinned). `allow_loopback` lets
    loopback through a public-only policy (the media fetcher's tests). `resolver` answers name lookups."""
    public_only: bool = True
    allow_loopback: bool = False
    resolver: Resolver = system_resolver

    def refusal(self, ip: IPAddress) -> str | None:
        return address_refusal(ip, self.allow_loopback) if self.public_only else None

    def vet(self, url: httpx.URL, deadline: float) -> tuple[str, list[str]]:
        """Check every address `url`'s host stands for; returns (host, vetted addresses to connect to).
        AddressRefused when one is refused, ResourceError when the name has no address."""
        host = url.raw_host.decode("ascii").lower()
        if not host:
            raise ResourceError("refused: the URL names no host")
        literal = literal_address(host)
        if literal is not None:
            reason = self.refusal(literal)
            if reason:
                shown = host if str(literal) == host else f"{host} (= {literal})"
                raise AddressRefused(f"refused: {shown} is {reason}; {ONLY_PUBLIC}")
            return host, [str(literal)]
        addresses = self._resolve(host, url.port or (443 if url.scheme == "https" else 80), deadline)
        for ip in addresses:
            reason = self.refusal(ip)
            if reason:
                raise AddressRefused(f"refused: {host} resolves to {ip}, {reason}; {ONLY_PUBLIC}")
        return host, [str(ip) for ip in addresses]

    def _resolve(self, host: str, port: int, deadline: float) -> list[IPAddress]:
        """The resolver's answer within the deadline (the lookup runs in a daemon thread)."""
        answers: list[str] = []
        failures: list[Exception] = []

        def work() -> None:
            try:
                answers.extend(self.resolver(host, port))
            except (OSError, UnicodeError) as exc:
                failures.append(exc)

        worker = threading.Thread(target=work, name="jarvis-dns", daemon=True)
        worker.start()
        worker.join(max(0.0, deadline - time.monotonic()))
        if worker.is_alive():
            raise httpx.ConnectTimeout(f"DNS lookup of {host} did not finish")
        if failures:
            raise ResourceError(f"could not find the host {host!r} (DNS lookup failed: {failures[0]})")
        addresses: list[IPAddress] = []
        for answer in answers:
            try:
                ip = _unscoped(str(answer))
            except ValueError:
                raise ResourceError(f"could not find the host {host!r} (the lookup gave {answer!r})") from None
            if ip not in addresses:
                addresses.append(ip)
        if not addresses:
            raise ResourceError(f"could not find the host {host!r} (no addresses)")
        return addresses

    def http_client(self, max_connections: int = 10) -> httpx.Client:
        """An httpx client (for the openai SDK) whose every request is vetted and pinned; it follows
        no redirects and ignores proxy variables and .netrc (a proxy would resolve the name itself)."""
        transport = VettingTransport(self, httpx.create_ssl_context(), max_connections)  # honours SSL_CERT_FILE
        return httpx.Client(transport=transport, follow_redirects=False, trust_env=False)


# -- transports that connect only to vetted addresses -------------------------
class _DeadlineStream(httpcore.NetworkStream):
    """A socket stream whose every read/write is cut short at the backend's overall deadline."""

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
    """Opens TCP connections only to IPs vetted for a host name; never resolves names itself (and never
    opens a unix socket: httpcore's base class refuses that, and no pool here names one).
    `deadline` (time.monotonic()) caps every connect, read and write; None leaves them to the request."""

    def __init__(self, deadline: float | None = None):
        self.deadline = deadline
        self._inner = httpcore.SyncBackend()
        self._pins: dict[str, list[str]] = {}

    def pin(self, host: str, addresses: list[str]) -> None:
        self._pins[host.lower()] = list(addresses)

    def time_left(self, timeout: float | None, error: type[Exception]) -> float | None:
        if self.deadline is None:
            return timeout
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


_HTTPX_ERRORS: list[tuple[type[Exception], type[httpx.TransportError]]] = [
    (httpcore.ConnectTimeout, httpx.ConnectTimeout), (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout), (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.ConnectError, httpx.ConnectError), (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError), (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError), (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
]


@contextmanager
def _httpx_errors(request: httpx.Request) -> Iterator[None]:
    """httpcore's exceptions as httpx's, which httpx's callers (the openai SDK) know how to handle."""
    try:
        yield
    except (httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError,
            httpcore.UnsupportedProtocol) as exc:
        kind = next((theirs for ours, theirs in _HTTPX_ERRORS if isinstance(exc, ours)), httpx.TransportError)
        raise kind(str(exc) or type(exc).__name__, request=request) from exc


class _Body(httpx.SyncByteStream):
    def __init__(self, response: httpcore.Response, request: httpx.Request):
        self._response, self._request = response, request

    def __iter__(self) -> Iterator[bytes]:
        with _httpx_errors(self._request):
            yield from cast(Iterable[bytes], self._response.stream)   # a sync pool's stream is sync

    def close(self) -> None:
        self._response.close()


class PinnedTransport(httpx.BaseTransport):
    """An httpx transport over httpcore with a PinnedBackend: no proxies, no env, no retries."""

    def __init__(self, backend: PinnedBackend, ssl_context: ssl.SSLContext | None = None, max_connections: int = 2):
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context or httpx.create_ssl_context(trust_env=False), network_backend=backend,
            max_connections=max_connections, http1=True, http2=False, retries=0,
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        raw = httpcore.Request(
            method=request.method,
            url=httpcore.URL(scheme=request.url.raw_scheme, host=request.url.raw_host,
                             port=request.url.port, target=request.url.raw_path),
            headers=request.headers.raw, content=request.stream, extensions=request.extensions,
        )
        with _httpx_errors(request):
            response = self._pool.handle_request(raw)
        return httpx.Response(status_code=response.status, headers=response.headers,
                              stream=_Body(response, request), extensions=response.extensions)

    def close(self) -> None:
        self._pool.close()


class VettingTransport(httpx.BaseTransport):
    """Vets every request's host under an OutboundPolicy, then sends it over connections pinned to
    the vetted addresses. A refusal raises AddressRefused (not an httpx error: nobody retries it)."""

    def __init__(self, policy: OutboundPolicy, ssl_context: ssl.SSLContext | None = None, max_connections: int = 10):
        self.policy = policy
        self._backend = PinnedBackend()
        self._inner = PinnedTransport(self._backend, ssl_context, max_connections)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.scheme not in ("http", "https"):
            raise AddressRefused(f"refused: only http and https URLs are contacted, not {request.url.scheme}:")
        timeouts = request.extensions.get("timeout") or {}
        deadline = time.monotonic() + (timeouts.get("connect") or LOOKUP_TIMEOUT)
        try:
            host, addresses = self.policy.vet(request.url, deadline)
        except AddressRefused:
            raise
        except ResourceError as exc:      # the name has no address: a connection error, like any client's
            raise httpx.ConnectError(str(exc), request=request) from None
        self._backend.pin(host, addresses)   # every pin ever set holds vetted addresses only
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()
