"""The access token at the door of the whole port: the web app, its uploads and files, and the
API's description, not only the API's routes (which check `Authorization: Bearer` themselves).

A program sends the token as a bearer header. A person in a browser signs in once: the sign-in
page (/access), or a link with `?token=<token>` (the token is taken out of the address at once),
leaves an HttpOnly, SameSite=Lax cookie that holds a digest of the token, not the token itself.
"""
from __future__ import annotations

import hashlib
import hmac
import html
from urllib.parse import parse_qs, urlencode

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from jarvis.frontends.http.auth import match_token

COOKIE = "jarvis_access"
LOGIN_PATH = "/access"
OWNER_STATE = "jarvis_owner"       # scope["state"] key: the owner id of the caller's access token
COOKIE_DAYS = 30
MAX_FORM = 4096                    # bytes of the sign-in form read at most


def cookie_value(token: str) -> str:
    """What the cookie holds for a token: a digest, so a copied cookie does not reveal the token."""
    return hashlib.sha256(b"jarvis web access\0" + token.encode()).hexdigest()


def caller_owner(headers: Headers, tokens: list[str]) -> str | None:
    """The owner id of the caller's access token from a bearer header or the sign-in cookie;
    '' when the server has no tokens, None when the caller has no valid one."""
    if not tokens:
        return ""
    owner = match_token(headers.get("authorization", ""), tokens)
    if owner is not None:
        return owner
    given = _cookie(headers, COOKIE)
    found = None
    for token in tokens:   # compare with every token, in constant time each
        if given and hmac.compare_digest(given, cookie_value(token)):
            found = token
    return match_token(f"Bearer {found}", tokens) if found else None   # the owner id of that token


def _cookie(headers: Headers, name: str) -> str:
    for header in headers.getlist("cookie"):
        for part in header.split(";"):
            key, _, value = part.strip().partition("=")
            if key == name:
                return value.strip()
    return ""


def under(path: str, prefixes: tuple[str, ...]) -> bool:
    """Whether a path is one of these prefixes or below one (whole segments: "/v1x" is not under "/v1")."""
    return any(path == p or path.startswith(p + "/") for p in prefixes)


def _safe_next(target: str) -> str:
    """A local path to go back to after signing in (never another site)."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target or any(c < " " for c in target):
        return "/"
    return target


class AccessGate:
    """ASGI middleware: callers without a valid token get the sign-in page (browsers) or 401.
    Paths under `open_prefixes` (the API, which answers 401 itself) pass through."""

    def __init__(self, app: ASGIApp, tokens: list[str], open_prefixes: tuple[str, ...]):
        self.app, self.tokens, self.open_prefixes = app, tokens, open_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not self.tokens:
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        headers = Headers(scope=scope)
        owner = caller_owner(headers, self.tokens)
        if owner is not None:
            scope.setdefault("state", {})[OWNER_STATE] = owner
        if owner is not None or under(path, self.open_prefixes):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        method = scope.get("method", "GET")
        if path == LOGIN_PATH and method == "POST":
            await self._sign_in(scope, receive, send)
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        token = (query.get("token") or [""])[0]
        if token and method in ("GET", "HEAD") and match_token(f"Bearer {token}", self.tokens) is not None:
            rest = urlencode([(k, v) for k, vs in query.items() if k != "token" for v in vs], doseq=True)
            await self._signed_in(scope, send, token, path + (f"?{rest}" if rest else ""))
            return
        wants_page = method in ("GET", "HEAD") and "text/html" in headers.get("accept", "")
        if path == LOGIN_PATH or wants_page:
            target = path if path != LOGIN_PATH else (query.get("next") or ["/"])[0]
            await _page(send, 200 if path == LOGIN_PATH else 401, _safe_next(target),
                        "The access token was not valid." if token else "")
            return
        body = (b'{"error": "this server needs its access token: send \'Authorization: Bearer <token>\', or sign '
                b'in at ' + LOGIN_PATH.encode() + b' in a browser", "code": "invalid_api_key"}')
        await _send(send, 401, body, "application/json", [(b"www-authenticate", b"Bearer")])

    async def _sign_in(self, scope: Scope, receive: Receive, send: Send) -> None:
        form, more = b"", True
        while more and len(form) <= MAX_FORM:
            message = await receive()
            if message["type"] != "http.request":
                return
            form += message.get("body", b"")
            more = message.get("more_body", False)
        fields = parse_qs(form[:MAX_FORM].decode("utf-8", "replace"))
        token = (fields.get("token") or [""])[0].strip()
        target = _safe_next((fields.get("next") or ["/"])[0])
        if token and match_token(f"Bearer {token}", self.tokens) is not None:
            await self._signed_in(scope, send, token, target)
        else:
            await _page(send, 401, target, "The access token was not valid.")

    @staticmethod
    async def _signed_in(scope: Scope, send: Send, token: str, target: str) -> None:
        secure = "; Secure" if scope.get("scheme") == "https" else ""
        cookie = (f"{COOKIE}={cookie_value(token)}; Path=/; HttpOnly; SameSite=Lax; "
                  f"Max-Age={COOKIE_DAYS * 86400}{secure}")
        await _send(send, 303, b"", "text/plain", [(b"location", _safe_next(target).encode()),
                                                   (b"set-cookie", cookie.encode()),
                                                   (b"referrer-policy", b"no-referrer")])


async def _send(send: Send, status: int, body: bytes, ctype: str,
                extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [(b"content-type", ctype.encode()), (b"content-length", str(len(body)).encode()),
               (b"cache-control", b"no-store"), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _page(send: Send, status: int, target: str, problem: str) -> None:
    note = f'<p class="problem">{html.escape(problem)}</p>' if problem else ""
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Jarvis: sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem}}
input{{width:100%;padding:.5rem;margin:.5rem 0;box-sizing:border-box}}.problem{{color:#b00}}</style></head>
<body><h1>🤖 Jarvis</h1><p>This server needs its access token. Ask its operator for it.</p>{note}
<form method="post" action="{LOGIN_PATH}"><label for="token">Access token</label>
<input id="token" name="token" type="password" autocomplete="current-password" autofocus required>
<input type="hidden" name="next" value="{html.escape(target)}">
<input type="submit" value="Sign in"></form></body></html>"""
    await _send(send, status, page.encode(), "text/html; charset=utf-8",
                [(b"referrer-policy", b"no-referrer")])

