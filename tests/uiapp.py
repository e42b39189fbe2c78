"""Helpers shared by the web-app tests: a small catalog, the tiny models they need, and the app
launched in-process on a free port (a real server that gradio_client and Chromium talk to)."""
from __future__ import annotations

import contextlib
import json
import socket
from pathlib import Path

CAPTIONER = "nlpconnect/vit-gpt2-image-captioning"
TTS = "facebook/mms-tts-eng"
UI_MODELS = {CAPTIONER, TTS}


def ensure_models(hub_cache: Path, ids: set[str]) -> None:
    """Build the tiny models among `ids` that the session cache does not hold yet."""
    from tests.tiny import build_all
    missing = {i for i in ids if not (hub_cache / ("models--" + i.replace("/", "--")) / "refs" / "main").exists()}
    if missing:
        build_all(hub_cache, only=missing)


def write_catalog(path: Path) -> Path:
    rows = [{"id": CAPTIONER, "task": "image-to-text", "downloads": 100, "local": True},
            {"id": TTS, "task": "text-to-speech", "downloads": 100, "local": True}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_app(config, **build_kwargs):
    """build_ui + launch on a free loopback port; yields (url, demo); closes sessions and server after."""
    from jarvis.frontends.web.app import EXAMPLES_DIR, build_ui
    from jarvis.pipeline.controller import Controller

    demo = build_ui(config, Controller(config), **build_kwargs).queue()
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                ssr_mode=False, allowed_paths=[str(EXAMPLES_DIR)])
    try:
        yield f"http://127.0.0.1:{port}/", demo
    finally:
        demo.jarvis_registry.close_all()
        demo.close()
