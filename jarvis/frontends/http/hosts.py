"""Which Host a request may name, and whose X-Forwarded-* headers are believed.

A DNS-rebinding page makes a visitor's browser send requests to a server on loopback or a LAN
under the attacker's host name; refusing host names this server does not own stops it. Answered
always: localhost, IP addresses (a rebinding page cannot use one), this machine's own name and a
Space's SPACE_HOST; and the names in server.allowed_hosts.

X-Forwarded-Host/-Proto/-For (and Forwarded, X-Gradio-Server) are taken only from the configured
proxies (server.trusted_proxies; "*" on a Space, whose every connection comes through its proxy)
and removed from every request, so the app and Gradio build links from validated values only:
markup or a stranger's host name in a header never lands in an answer.
"""
from __future__ import annotations

import ipaddress
import logging
import re
import socket
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

_NAME = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*\.?")
_HOST = re.compile(r"(?P<host>\[[0-9a-f:.]+\]|[^:\[\]]+)(?::(?P<port>[0-9]{1,5}))?")
DROPPED = {b"x-forwarded-host", b"x-forwarded-proto", b"x-forwarded-for", b"x-forwarded-port",
           b"x-forwarded-prefix", b"forwarded", b"x-real-ip", b"x-gradio-server"}
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _split(value: str) -> list[str]:
    return [v.strip().lower() for v in (value or "").split(",") if v.strip()]


def _host_name(host: str) -> str | None:
    """The name or address part of a well-formed Host value (lower case, no port), else None."""
    m = _HOST.fullmatch(host.strip().lower())
    if m is None or (m["port"] is not None and not 0 < int(m["port"]) < 65536):
        return None
    name = m["host"]
    if name.startswith("["):
        return name if _ip(name) is not None else None
    return name.rstrip(".") if _NAME.fullmatch(name) else None


def well_formed_host(host: str) -> bool:
    """Whether a Host value is a plain host name or address with an optional port (no markup)."""
    return _host_name(host) is not None


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip().strip("[]").split("%", 1)[0])
    except ValueError:
        return None


class HostPolicy:
    """The host names answered and the proxies trusted, from plain lists ("*" = any)."""

    def __init__(self, allowed: Iterable[str] = (), proxies: Iterable[str] = ()):
        allowed = [a.strip().lower().rstrip(".") for a in allowed if a.strip()]
        self.any_host = "*" in allowed
        self.names = {a for a in allowed if not a.startswith("*")} | {"localhost", socket.gethostname().lower()}
        self.suffixes = tuple(a[1:] for a in allowed if a.startswith("*.")) + (".localhost",)
        proxies = [p.strip() for p in proxies if p.strip()]
        self.any_proxy = "*" in proxies
        self.networks: list[Network] = []
        for p in proxies:
            if p != "*":
                self.networks.append(ipaddress.ip_network(p, strict=False))

    @classmethod
    def from_settings(cls, allowed_hosts: str, trusted_proxies: str, *, bound_host: str = "",
                      env: dict[str, str] | None = None) -> HostPolicy:
        """The policy of a server: its configured lists, plus the name it is bound to and, on a
        Space, its SPACE_HOST names and trust in the Space's proxy."""
        env = env or {}
        allowed = _split(allowed_hosts) + _split(env.get("SPACE_HOST", ""))
        if bound_host and _ip(bound_host) is None:
            allowed.append(bound_host.lower())
        proxies = _split(trusted_proxies) or (["*"] if env.get("SPACE_ID") else [])
        return cls(allowed, proxies)

    def host_ok(self, host: str) -> bool:
        """Whether a Host value (name or address, with or without a port) is one this server answers."""
        name = _host_name(host)
        if name is None:
            return False
        if _ip(name) is not None or self.any_host or name in self.names:
            return True
        return name.endswith(self.suffixes)

    def trusts(self, address: str | None) -> bool:
        """Whether a peer is a configured proxy (its forwarded headers count)."""
        if self.any_proxy:
            return True
        ip = _ip(address or "")
        return ip is not None and any(ip in net for net in self.networks)

    def client_of(self, forwarded_for: str, peer: str) -> str:
        """The client's address behind trusted proxies: the right-most hop that is not a proxy
        (with "*": the left-most hop, as written by the first proxy or by the client itself)."""
        hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
        if self.any_proxy:
            hops = hops[:1]
        for hop in reversed(hops):
            if _ip(hop) is None:
                break
            if self.any_proxy or not self.trusts(hop):
                return str(_ip(hop))
        return peer


class HostGuard:
    """ASGI middleware: refuses unknown Host names (400) and applies forwarded headers from trusted
    proxies to the scope (client, scheme, host), removing them from the headers."""

    def __init__(self, app: ASGIApp, policy: HostPolicy):
        self.app, self.policy = app, policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = list(scope.get("headers") or [])
        first: dict[bytes, str] = {}
        for key, value in headers:
            first.setdefault(key, value.decode("latin-1"))
        peer, port = (scope.get("client") or ("", 0))[:2]
        host = first.get(b"host", "")
        scheme, client = scope.get("scheme", "http"), (peer, port)
        if self.policy.trusts(peer):
            host = first.get(b"x-forwarded-host", "").split(",")[0].strip() or host
            proto = first.get(b"x-forwarded-proto", "").split(",")[0].strip().lower()
            if proto in ("http", "https"):
                scheme = proto if scope["type"] == "http" else {"http": "ws", "https": "wss"}[proto]
            client = (self.policy.client_of(first.get(b"x-forwarded-for", ""), peer), port)
        if not self.policy.host_ok(host):
            log.info("refused a request for an unknown host name from %s", client[0])
            await _refuse(scope, send)
            return
        kept = [(k, v) for k, v in headers if k not in DROPPED and k != b"host"]
        scope = dict(scope, headers=[(b"host", host.encode("latin-1")), *kept], scheme=scheme, client=client)
        await self.app(scope, receive, send)


async def _refuse(scope: Scope, send: Send) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    body = (b'{"error": "this server does not answer to the host name in this request; its operator can '
            b'add the name to server.allowed_hosts", "code": "unknown_host"}')
    start: Message = {"type": "http.response.start", "status": 400,
                      "headers": [(b"content-type", b"application/json"),
                                  (b"content-length", str(len(body)).encode())]}
    await send(start)
    await send({"type": "http.response.body", "body": body})
