"""Where each key may go: the one credential policy of the configuration, the web app and the HTTP API.

- Endpoints are told apart by what a connection goes to: scheme, host and port, parsed the way the
  HTTP client parses them (plus the path). `https://router.huggingface.co.evil.example`,
  `https://router.huggingface.co@evil.example` and `http://router.huggingface.co` are not Hugging
  Face's router; a URL carrying a user name or password is never taken for a known endpoint.
- A Hugging Face token goes only to Hugging Face's router; an OpenAI(-compatible) key goes to the
  endpoint it was configured for, and to the router only when there is no HF token.
- A Hugging Face token goes to a Gradio Space (jarvis.execution.spaces) only when the Space is on
  Hugging Face: named by its id (owner/name), or an https URL on huggingface.co or *.hf.space. There
  it carries the user's ZeroGPU quota; any other Gradio app gets no token.
- The server's own keys (environment variables, Space secrets) go only to the server's configured
  LLM endpoint: whoever names another endpoint must bring the key for it. Otherwise a stranger
  could have the server send its owner's key to any host. (The server's HF token may still pay for
  remote models in such a session: it goes to Hugging Face's inference services, not to the URL.)

What each front end adds is presentation: the web app says where a key came from (typed, sign-in,
environment); the HTTP API names the request headers to send.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import httpx

HF_ROUTER_HOSTS = frozenset({"router.huggingface.co", "api-inference.huggingface.co"})
SPACE_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}")


@dataclass(frozen=True)
class Endpoint:
    """Who receives what is sent to a URL: scheme, host (lower case, without the root's trailing
    dot), port (the scheme's default when not written) and the path without a trailing slash."""
    scheme: str
    host: str
    port: int
    path: str


def endpoint_of(url: str) -> Endpoint | None:
    """The endpoint a URL names; None when it is not an http(s) URL with a host, or when it carries a
    user name or password (then it is nobody's known endpoint)."""
    try:
        parsed = httpx.URL(url.strip())
    except (httpx.InvalidURL, TypeError, ValueError):
        return None
    host = parsed.raw_host.decode("ascii").lower()
    if parsed.scheme not in ("http", "https") or parsed.userinfo or not host:
        return None
    host = host[:-1] if host.endswith(".") else host
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return Endpoint(parsed.scheme, host, port, parsed.path.rstrip("/"))


def is_hf_router(url: str) -> bool:
    """Whether an LLM base URL is Hugging Face's router (where an HF token is the key)."""
    endpoint = endpoint_of(url)
    return (endpoint is not None and endpoint.scheme == "https" and endpoint.port == 443
            and endpoint.host in HF_ROUTER_HOSTS)


def endpoint_key(base_url: str, openai_key: str, hf_token: str) -> str:
    """The key that may be sent to `base_url` out of the ones given ('' when none may)."""
    return (hf_token or openai_key) if is_hf_router(base_url) else openai_key


def names_other_endpoint(requested_url: str, server_url: str) -> bool:
    """Whether a caller names an LLM endpoint other than the server's (`server_url`, the one the
    server's keys are for): then the server's keys stay home. A URL that does not parse, or carries
    a user name or password, is always another endpoint."""
    if not requested_url.strip():
        return False
    requested = endpoint_of(requested_url)
    return requested is None or requested != endpoint_of(server_url)


def is_hf_space(space: str) -> bool:
    """Whether a Gradio app named in the catalog (a Space id, or the URL of any Gradio app) is a
    Space on Hugging Face: an id, or an https URL on huggingface.co or a *.hf.space host."""
    if SPACE_ID.fullmatch(space.strip()):
        return True
    endpoint = endpoint_of(space)
    return (endpoint is not None and endpoint.scheme == "https" and endpoint.port == 443
            and (endpoint.host == "huggingface.co" or endpoint.host.endswith(".hf.space")))


def space_token(space: str, hf_token: str) -> str:
    """The token that may be sent to a Gradio app ('' when none may): the HF token to Spaces on Hugging Face only."""
    return hf_token if hf_token and is_hf_space(space) else ""
