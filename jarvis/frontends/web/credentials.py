"""Which credentials and LLM settings one browser session uses: typed fields first, then the
Hugging Face sign-in (OAuth) token, then the server's environment / Space secrets, within
jarvis.credentials' policy of where each key may go; and a one-line status telling the person
what will be used or what to enter."""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlparse

from jarvis.config import Config
from jarvis.credentials import names_other_endpoint


@dataclass
class Choice:
    """A session's effective settings, and where each secret came from (for the status line)."""
    config: Config
    openai_from: str     # "typed" | "environment" | ""
    hf_from: str         # "typed" | "sign-in" | "environment" | ""


def field_hint(env_value: str, name: str, secret: str) -> str:
    """The info line under a key field: says when a server-side value will be used."""
    if env_value:
        return (f"Leave empty to use the {secret} set on this server (environment variable or Space secret). "
                "What you type is kept for this browser session only.")
    return f"Not set on this server: paste your {name}. It is kept for this browser session only, never stored."


def resolve(config: Config, openai_key: str, hf_token: str, base_url: str, model: str, mode: str,
            oauth_token: str | None) -> Choice:
    """The Config for one session; empty fields keep the server's settings. A server-side OpenAI key
    is not sent to a base URL the person typed in (it would hand the Space owner's secret to any server)."""
    typed_url, model = (base_url or "").strip(), (model or "").strip() or config.llm.model
    env = config.credentials
    custom_url = names_other_endpoint(typed_url, config.llm.base_url)
    base_url = typed_url or config.llm.base_url
    openai_key, hf_token = (openai_key or "").strip(), (hf_token or "").strip()
    if openai_key:
        openai_from = "typed"
    elif env.openai_api_key and not custom_url:
        openai_key, openai_from = env.openai_api_key, "environment"
    else:
        openai_from = ""
    if hf_token:
        hf_from = "typed"
    elif oauth_token:
        hf_token, hf_from = oauth_token, "sign-in"
    elif env.hf_token:
        hf_token, hf_from = env.hf_token, "environment"
    else:
        hf_from = ""
    cfg = config.with_overrides(llm={"base_url": base_url, "model": model},
                                inference={"mode": mode or config.inference.mode},
                                credentials={"openai_api_key": openai_key, "hf_token": hf_token})
    return Choice(cfg, openai_from, hf_from)


def status_markdown(choice: Choice) -> str:
    """What the next request will use, or what to enter when nothing is set."""
    cfg = choice.config
    base, key, model = cfg.llm_endpoint()
    host = urlparse(base).netloc or base
    local_server = host.split(":")[0] in ("127.0.0.1", "localhost", "0.0.0.0")
    if not key and not local_server:
        return ("🔑 **No credentials yet.** Paste an **OpenAI API key** or a **Hugging Face token** under *Keys*"
                " (or sign in with Hugging Face on a Space). With only an HF token, an open model on the"
                " Hugging Face router plans and answers. A local OpenAI-compatible server (Ollama, vLLM,"
                " llama.cpp) needs no key: set its URL under *Advanced settings*.")
    if key and key == cfg.credentials.openai_api_key:
        source = {"typed": "your OpenAI key", "environment": "the server's OpenAI key"}.get(choice.openai_from, "")
    elif key:
        source = {"typed": "your HF token", "sign-in": "your Hugging Face sign-in",
                  "environment": "the server's HF token"}.get(choice.hf_from, "")
    else:
        source = "no key"
    models = cfg.inference.mode
    hf_note = ""
    if models in ("remote", "hybrid"):
        hf_note = (" Remote models use " + {"typed": "your HF token", "sign-in": "your Hugging Face sign-in",
                                             "environment": "the server's HF token"}.get(choice.hf_from, "no HF token")
                   + ".")
        if not choice.hf_from:
            hf_note += " Remote inference needs one: paste it or sign in."
    return f"✅ LLM **{model}** at `{host}` with {source}. Models run **{models}**.{hf_note}"
