"""Which credentials and LLM settings one browser session uses: typed fields first, then the
Hugging Face sign-in (OAuth) token, then the server's environment / Space secrets, within
jarvis.credentials' policy of where each key may go; and a one-line status telling the person
what will be used or what to enter."""
from __future__ import annotations

from dataclasses import dataclass

from jarvis.config import Config
from jarvis.credentials import endpoint_of, names_other_endpoint
from jarvis.llm.backend import backend_for
from jarvis.llm.embedded import embedded_model, where_it_runs
from jarvis.outbound import ONLY_PUBLIC, address_refusal, literal_address, shown_host


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
    """The Config for one session; empty fields keep the server's settings. None of the server's keys
    goes to a base URL the person typed in, unless it is the server's own endpoint (anything else would
    hand the Space owner's secret to any server); the server's HF token may still pay for remote models."""
    typed_url, model = (base_url or "").strip(), (model or "").strip() or config.llm.model
    env = config.credentials
    custom_url = names_other_endpoint(typed_url, config.llm_endpoint()[0])
    base_url = typed_url if custom_url else config.llm.base_url
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
                                credentials={"openai_api_key": openai_key, "hf_token": hf_token,
                                             "caller_endpoint": custom_url,
                                             "server_hf_token": hf_from == "environment"})
    key = cfg.llm_endpoint()[1]
    server_pays = bool(key) and ((openai_from == "environment" and key == env.openai_api_key)
                                 or (hf_from == "environment" and key == env.hf_token))
    if server_pays and model != config.llm.model:   # the server's key stays on the server's model
        cfg = cfg.with_overrides(llm={"model": config.llm.model})
    return Choice(cfg, openai_from, hf_from)


def status_markdown(choice: Choice) -> str:
    """What the next request will use, or what to enter when nothing is set."""
    cfg = choice.config
    models = cfg.inference.mode
    hf_note = ""
    if models in ("remote", "hybrid"):
        hf_note = (" Remote models use " + {"typed": "your HF token", "sign-in": "your Hugging Face sign-in",
                                             "environment": "the server's HF token"}.get(choice.hf_from, "no HF token")
                   + ".")
        if not choice.hf_from:
            hf_note += " Remote inference needs one: paste it or sign in."
    if backend_for(cfg) == "local":
        return (f"✅ LLM **{embedded_model(cfg)}** runs inside Jarvis {where_it_runs(cfg)}, no key needed (it is "
                f"downloaded from the Hugging Face Hub at first use). Models run **{models}**.{hf_note} For a "
                "larger LLM, paste an **OpenAI API key** or a **Hugging Face token** under *Keys*, or set the URL "
                "of an OpenAI-compatible server under *Advanced settings*.")
    base, key, model = cfg.llm_endpoint()
    host, endpoint = shown_host(base), endpoint_of(base)
    address = literal_address(endpoint.host) if endpoint else None
    local_server = endpoint is not None and (endpoint.host == "localhost" or address is not None
                                             and address_refusal(address) is not None)
    typed = cfg.credentials.caller_endpoint
    if typed and cfg.server.public and local_server:
        return (f"⚠️ **{host} cannot be used here:** {ONLY_PUBLIC}. Give a public OpenAI-compatible URL "
                "under *Advanced settings*, or leave it empty to use the server's LLM.")
    if typed and not key and not local_server:
        return (f"🔑 **Your LLM URL needs your key.** The server's keys are only sent to its own LLM, never to "
                f"a URL typed here: paste the key for `{host}` under *Keys* (an OpenAI API key, or a Hugging"
                " Face token for Hugging Face's router), or leave the URL empty.")
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
    return f"✅ LLM **{model}** at `{host}` with {source}. Models run **{models}**.{hf_note}"
