"""Canary keys through Jarvis, and a search for them in everything a run leaves behind.

Each scenario runs the real controller against loopback servers (the scripted LLM, the fake
inference service, an echo server that puts the Authorization header it received into its error
bodies) with a unique OpenAI key and HF token, and returns what it produced: events, result,
exception texts, log records and the files of its session directory. `leaks` searches them;
`misrouted` checks that each server received only the key configured for it.
Shared by tests/test_secrets.py and bench/reliability.py.
"""
from __future__ import annotations

import json
import logging
import socket
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from jarvis.pipeline.controller import Controller
from jarvis.session import Session
from tests.fakes.inference_server import InferenceServer
from tests.fakes.llm_server import Fault, ScriptedLLM
from tests.fakes.loopback import HandlerThread
from tests.helpers import config_for


@dataclass
class Canaries:
    openai: str = field(default_factory=lambda: "sk-proj-canary" + uuid.uuid4().hex)
    hf: str = field(default_factory=lambda: "hf_canary" + uuid.uuid4().hex)

    def marks(self) -> dict[str, str]:
        """The unique part of each key: found even when a key is cut short in a message."""
        return {"openai": self.openai[14:30], "hf": self.hf[9:25]}


@dataclass
class Artifacts:
    texts: dict[str, str] = field(default_factory=dict)      # where -> text produced
    roots: list[Path] = field(default_factory=list)           # directories to scan, file by file
    servers: list[tuple[str, list[dict]]] = field(default_factory=list)  # (who, [{"headers", "body"}])


def leaks(art: Artifacts, canaries: Canaries) -> list[str]:
    """Where a canary (or its unique part) appears in what the run produced."""
    found = []
    marks = canaries.marks()
    for where, text in art.texts.items():
        found += [f"{name} key in {where}" for name, mark in marks.items() if mark in text]
    for root in art.roots:
        for path in Path(root).rglob("*"):
            if path.is_file() and path.stat().st_size < 200 * 2**20:
                data = path.read_bytes()
                found += [f"{name} key in file {path}" for name, mark in marks.items() if mark.encode() in data]
    return found


def misrouted(art: Artifacts, canaries: Canaries) -> list[str]:
    """A key that reached a server it was not configured for (LLM servers get only the OpenAI key)."""
    wrong = []
    for who, requests in art.servers:
        allowed = "openai" if who.startswith("llm") else "hf"
        for req in requests:
            blob = json.dumps(req["headers"]) + req["body"]
            for name, mark in canaries.marks().items():
                if name != allowed and mark in blob:
                    wrong.append(f"{name} key sent to {who}")
    return sorted(set(wrong))


def _llm_requests(server: ScriptedLLM) -> list[dict]:
    return [{"headers": r["headers"], "body": json.dumps(r["json"])} for r in server.requests]


def _hf_requests(server: InferenceServer) -> list[dict]:
    return [{"headers": dict(r.headers), "body": r.body.decode("utf-8", "replace")} for r in server.requests]


class EchoServer:
    """Answers every request with `status` and a body repeating the Authorization header it got."""

    def __init__(self, status: int = 401):
        self.status = status
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                outer.requests.append({"headers": headers, "body": body.decode("utf-8", "replace")})
                echoed = json.dumps({"error": f"invalid credentials: {headers.get('authorization', '')}"}).encode()
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(echoed)))
                self.end_headers()
                self.wfile.write(echoed)

            do_GET = do_POST

        self._serving = HandlerThread(Handler, poll_interval=0.05).start()

    @property
    def url(self) -> str:
        return self._serving.url

    def close(self) -> None:
        self._serving.close()


class _Capture(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:
            text = str(record.msg)
        self.lines.append(f"{record.name} {text} {record.exc_text or ''} {record.args!r}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _echo_fault(status: int, key: str) -> Fault:
    body = json.dumps({"error": {"message": f"Incorrect API key provided: {key}. You passed {key[:20]}...",
                                 "type": "invalid_request_error"}})
    return Fault(status, body=body, headers={"retry-after-ms": "5"})


SCENARIOS = ("ok", "plan_401", "plan_500_echo", "plan_400_echo", "answer_500_echo", "select_500_echo",
             "unreachable", "remote_ok", "remote_401_echo", "remote_500_echo")


def run_scenario(name: str, controller: Controller, workdir: Path, canaries: Canaries) -> Artifacts:
    """Run one request in scenario `name`, at DEBUG logging; everything it produced, to scan."""
    art = Artifacts(roots=[workdir])
    capture = _Capture()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    llm = ScriptedLLM(plan=_plan_for(name), answer="All done.", chat="Hello.", select=_select_for(name),
                      key=canaries.openai)
    hf = InferenceServer(token=canaries.hf) if name.startswith("remote") else None
    echo = EchoServer(401 if "401" in name else 500) if name in ("remote_401_echo", "remote_500_echo") else None
    try:
        llm.start()
        if hf:
            hf.start()
        base = f"http://127.0.0.1:{free_port()}/v1" if name == "unreachable" else llm.url
        sections: dict = {"llm": {"max_retries": 1, "timeout": 5}}
        if name.startswith("remote"):
            sections["inference"] = {"mode": "remote"}
            sections["remote"] = {"base_url": (echo or hf).url, "max_retries": 0, "timeout": 5}
        cfg = config_for(base, key=canaries.openai, **sections).with_overrides(credentials={"hf_token": canaries.hf})
        if name.startswith("plan_"):
            status = int(name.split("_")[1])
            llm.faults = [_echo_fault(status, canaries.openai) for _ in range(3)]
        session = Session.create(cfg, root=workdir / f"session-{name}")
        events = []
        try:
            for event in controller.run(session, f"please help ({name})"):
                events.append(event)
                if name in ("answer_500_echo", "select_500_echo") and type(event).__name__ == _arm_before(name):
                    llm.faults = [_echo_fault(500, canaries.openai) for _ in range(3)]
        except Exception as exc:
            art.texts["escaped exception"] = f"{type(exc).__name__}: {exc}"
        art.texts["events"] = json.dumps([e.to_dict() for e in events], default=str, ensure_ascii=False)
        art.texts["repr(config)"] = repr(cfg) + repr(session.config.credentials)
    finally:
        root.removeHandler(capture)
        root.setLevel(old_level)
        llm.close()
        if hf:
            hf.stop()
        if echo:
            echo.close()
    art.texts["logs"] = "\n".join(capture.lines)
    art.servers.append((f"llm:{name}", _llm_requests(llm)))
    if hf:
        art.servers.append((f"hf:{name}", _hf_requests(hf)))
    if echo:
        art.servers.append((f"hf-echo:{name}", echo.requests))
    return art


def _arm_before(name: str) -> str:
    """The event after which the scripted LLM starts failing (so plan succeeds, later stages fail)."""
    return "PlanReady" if name == "select_500_echo" else "TaskFailed"


def _plan_for(name: str) -> str:
    if name.startswith("remote"):
        return json.dumps([{"task": "text-classification", "id": 0, "dep": [-1], "args": {"text": "I love it"}}])
    return json.dumps([{"task": "image-classification", "id": 0, "dep": [-1], "args": {"image": "missing.png"}},
                       {"task": "image-to-text", "id": 1, "dep": [-1], "args": {"image": "gone.jpg"}}])


def _select_for(name: str):
    return None
