"""Where each key may go: the one credential policy of the configuration, the web app and the HTTP API.

- A Hugging Face token goes only to Hugging Face's router; an OpenAI(-compatible) key goes to the
  endpoint it was configured for, and to the router only when there is no HF token.
- The server's own keys (environment variables, Space secrets) go only to the server's configured
  LLM endpoint: whoever names another endpoint must bring the key for it. Otherwise a stranger
  could have the server send its owner's key to any host.

What each front end adds is presentation: the web app says where a key came from (typed, sign-in,
environment); the HTTP API names the request headers to send.
"""
from __future__ import annotations

HF_ROUTER_PREFIXES = ("https://router.huggingface.co", "https://api-inference.huggingface.co")


def is_hf_router(url: str) -> bool:
    """Whether an LLM base URL is Hugging Face's router (where an HF token is the key)."""
    return url.strip().rstrip("/").startswith(HF_ROUTER_PREFIXES)


def endpoint_key(base_url: str, openai_key: str, hf_token: str) -> str:
    """The key that may be sent to `base_url` out of the ones given ('' when none may)."""
    return (hf_token or openai_key) if is_hf_router(base_url) else openai_key


def names_other_endpoint(requested_url: str, server_url: str) -> bool:
    """Whether a caller names an LLM endpoint other than the server's: then the server's keys stay home."""
    requested = requested_url.strip().rstrip("/")
    return bool(requested) and requested != server_url.strip().rstrip("/")
