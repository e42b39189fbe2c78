"""Who may call the HTTP API, and whose upstream keys a request uses.

The server may require access tokens (server.access_token; several may be given, comma-separated).
Upstream keys come either all from the server's configuration or all from the request's headers,
never mixed; where each key may go is jarvis.credentials' policy (a request naming its own LLM
endpoint must bring its own key; the server's keys go only to the server's configured endpoint).
Where a named endpoint may be is jarvis.outbound's policy: checked here first, for a clear 400, and
again by the LLM client on every connection.
"""
from __future__ import annotations

import hashlib
import hmac
import time

import httpx

from jarvis.config import Config
from jarvis.credentials import endpoint_key, is_hf_router, names_other_endpoint
from jarvis.errors import AddressRefused, ApiError, ResourceError
from jarvis.outbound import LOOKUP_TIMEOUT, OutboundPolicy, Resolver, system_resolver, without_userinfo

# Request headers carrying a caller's own upstream settings (documented in docs/api.md).
H_OPENAI_KEY = "x-openai-api-key"
H_HF_TOKEN = "x-hf-token"
H_BASE_URL = "x-llm-base-url"
H_MODEL = "x-llm-model"


def access_tokens(config: Config) -> list[str]:
    return [t.strip() for t in (config.server.access_token or "").split(",") if t.strip()]


def _bearer(authorization: str) -> str:
    scheme, _, value = authorization.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def _owner_of(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def match_token(authorization: str, tokens: list[str]) -> str | None:
    """The owner id of a valid bearer token ('' when the server has none), or None when refused."""
    if not tokens:
        return ""
    given = _bearer(authorization)
    owner = None
    for token in tokens:  # compare with every token, in constant time each
        if given and hmac.compare_digest(given.encode(), token.encode()):
            owner = _owner_of(token)
    return owner


def authorize(authorization: str, tokens: list[str]) -> str:
    """The caller's owner id; ApiError 401 when the server wants a token and this is not one."""
    owner = match_token(authorization, tokens)
    if owner is None:
        what = "is missing" if not _bearer(authorization) else "is not valid"
        raise ApiError(401, f"the access token {what}: send 'Authorization: Bearer <token>' with this "
                            "server's access token", "invalid_api_key", {"WWW-Authenticate": "Bearer"})
    return owner


def request_config(config: Config, *, api_key: str = "", hf_token: str = "", base_url: str = "",
                   model: str = "", allow_private: bool | None = None) -> Config:
    """The Config one request runs with. Without own credentials or endpoint: the server's, unchanged
    (a model name is then ignored: the server's key stays on the server's model). With any: only the
    request's credentials, and a request naming its own endpoint must bring its key for it.
    `allow_private`: whether a named endpoint may be a non-public address (None: unless the
    deployment is public, server.public)."""
    api_key, hf_token, base_url, model = (v.strip() for v in (api_key, hf_token, base_url, model))
    other = names_other_endpoint(base_url, config.llm_endpoint()[0])
    if not (api_key or hf_token or other):
        return config
    llm: dict[str, object] = {}
    server: dict[str, object] = {}
    if base_url and other:
        if not base_url.startswith(("http://", "https://")):
            raise ApiError(400, f"X-LLM-Base-URL must be an http(s) URL, got {without_userinfo(base_url)[:80]!r}")
        if not endpoint_key(base_url, api_key, hf_token):
            needed = "X-HF-Token (or X-OpenAI-Api-Key)" if is_hf_router(base_url) else "X-OpenAI-Api-Key"
            raise ApiError(400, f"a request naming its own LLM endpoint (X-LLM-Base-URL) must bring its own key "
                                f"for it in {needed}; the server's key is only used with the server's endpoint",
                           "missing_upstream_key")
        llm = {"base_url": base_url, "model": model, "api_type": "openai"}
        server = {"public": config.server.public if allow_private is None else not allow_private}
    elif model:
        llm = {"model": model}
    # with_overrides cannot refuse these: the server's config passed validation, a base_url here starts
    # with http(s):// (checked above), api_type is openai, and the rest are free text or booleans.
    return config.with_overrides(llm=llm, server=server, credentials={
        "openai_api_key": api_key, "hf_token": hf_token, "caller_endpoint": bool(llm.get("base_url")),
        "server_hf_token": False})


def endpoint_refusal(url: str, resolver: Resolver = system_resolver) -> str | None:
    """Why a caller-named LLM endpoint must not be contacted from a public server (private, loopback,
    link-local...), or None. Blocking (DNS): run it in a thread."""
    try:
        OutboundPolicy(public_only=True, resolver=resolver).vet(httpx.URL(url.strip()), time.monotonic() + LOOKUP_TIMEOUT)
    except AddressRefused as exc:
        return str(exc).removeprefix("refused: ")
    except (ResourceError, httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
        return f"it cannot be used ({without_userinfo(str(exc))})"
    return None


def check_endpoint(cfg: Config) -> None:
    """The early check of a request's own LLM endpoint on a public server: ApiError 400 when refused.
    Blocking (DNS): run it in a thread. The LLM client checks again on every connection."""
    if not (cfg.credentials.caller_endpoint and cfg.server.public):
        return
    why = endpoint_refusal(cfg.llm.base_url)
    if why:
        raise ApiError(400, f"refused LLM endpoint {without_userinfo(cfg.llm.base_url)[:80]!r}: {why}",
                       "endpoint_refused")
