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
        demo.jarvis_library.close_all()
        demo.close()


ROOT = Path(__file__).resolve().parent.parent


class AppProcess:
    """`python app.py` in a subprocess on `port` with `env` added (a real server to kill and start
    again); its output is kept for failure messages."""

    def __init__(self, port: int, env: dict[str, str], ready: str = "web app on"):
        import os
        import subprocess
        import sys
        import threading
        import time
        self.port, self.url = port, f"http://127.0.0.1:{port}/"
        full = dict(os.environ, GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(port), PYTHONUNBUFFERED="1",
                    JARVIS_CONFIG=str(ROOT / "config.yaml"), **env)
        self.proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=full, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.output: list[str] = []
        threading.Thread(target=lambda: self.output.extend(self.proc.stdout), daemon=True).start()  # type: ignore[arg-type]
        deadline = time.time() + 120
        while not any(ready in line for line in self.output) or not self._answers():
            assert self.proc.poll() is None and time.time() < deadline, self.log
            time.sleep(0.1)

    def _answers(self) -> bool:
        import urllib.error
        import urllib.request
        try:
            with urllib.request.urlopen(self.url, timeout=5) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError):
            return False

    @property
    def log(self) -> str:
        return "".join(self.output)

    def kill(self) -> None:
        """SIGKILL: no clean-up runs, as in a crash or a pulled plug."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)
