"""Isolation under load (issue 6, part 5): 20 sessions at once, through the entry points the web UI
uses (its session registry, each session's busy lock, the one shared Controller), each against its
own scripted LLM with its own key. Every answer must be right, and no session may see another's
history, files or key."""
from __future__ import annotations

import json
import re
import threading
import time
import uuid
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from jarvis.events import Done, Failed
from jarvis.frontends.web.sessions import SessionRegistry
from jarvis.pipeline.controller import Controller
from jarvis.pipeline.records import RunResult
from tests.fakes.llm_server import ScriptedLLM
from tests.helpers import config_for

pytestmark = pytest.mark.timeout(180)
SESSIONS = 20
TOKEN = re.compile(r"tok[0-9a-f]{12}")


def _attached(messages) -> str | None:
    m = re.search(r"\(attached: ([^)]+)\)", messages[-1]["content"])
    return m.group(1).split(",")[0].strip() if m else None


def _planner(messages) -> str:
    """Turn 1 (a file attached): edges of it. Turn 2: no tasks, just chat."""
    name = _attached(messages)
    if not name:
        return "[]"
    return json.dumps([{"task": "canny-control", "id": 0, "dep": [-1], "args": {"image": name}}])


def _answerer(messages) -> str:
    """Repeats the request's token and the results it was given, so the test can check both."""
    last = messages[-1]["content"]
    return f"Answer for {' '.join(TOKEN.findall(last))}: {last.split('Results: ', 1)[-1]}"


def _chatter(messages) -> str:
    """Repeats every token in the history it was sent: another session's would show up here."""
    seen = sorted(set(TOKEN.findall(json.dumps(messages))))
    return "I remember: " + " ".join(seen)


class Client:
    """One user: own key, own scripted LLM, own picture, a two-turn chat."""

    def __init__(self, i: int, tmp: Path):
        self.i = i
        self.token = f"tok{uuid.uuid4().hex[:12]}"
        self.key = f"sk-iso-{i}-{uuid.uuid4().hex}"
        self.server = ScriptedLLM(plan=_planner, answer=_answerer, chat=_chatter, key=self.key).start()
        self.picture = tmp / f"upload-{i}" / f"picture{i}.png"
        self.picture.parent.mkdir()
        img = Image.new("RGB", (48, 48), (10 * i, 255 - 10 * i, 40))
        ImageDraw.Draw(img).rectangle([8 + i % 10, 8, 30, 30 + i % 10], fill=(255, 255, 255))
        img.save(self.picture)
        self.results: list[RunResult] = []
        self.failure: str | None = None

    def turn(self, registry: SessionRegistry, controller: Controller, text: str, files: list[str]) -> None:
        cfg = config_for(self.server.url, key=self.key, local={"device": "cpu"})
        session = registry.get(f"browser-{self.i}", cfg).session
        assert session.busy.acquire(timeout=60)
        try:
            session.config = cfg
            session.cancel.clear()
            events = list(controller.run(session, text, files))
        finally:
            session.busy.release()
        failed = [e for e in events if isinstance(e, Failed)]
        if failed:
            raise AssertionError(f"turn failed: {failed[0].message}")
        self.results.append(next(e for e in events if isinstance(e, Done)).result)

    def chat(self, registry, controller) -> None:
        try:
            self.turn(registry, controller, f"Find the edges in my picture, {self.token}", [str(self.picture)])
            self.turn(registry, controller, f"What did I ask before? {self.token}", [])
        except Exception as exc:
            self.failure = f"{type(exc).__name__}: {exc}"


def test_twenty_sessions_at_once(tmp_path):
    controller = Controller(config_for("http://127.0.0.1:9/v1", local={"device": "cpu"}))
    registry = SessionRegistry(ttl_seconds=3600)
    clients = [Client(i, tmp_path) for i in range(SESSIONS)]
    start = time.perf_counter()
    try:
        threads = [threading.Thread(target=c.chat, args=(registry, controller)) for c in clients]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 120
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        elapsed = time.perf_counter() - start
        assert not any(t.is_alive() for t in threads)
        sessions = {c.i: registry.peek(f"browser-{c.i}").session for c in clients}
        assert len({s.id for s in sessions.values()}) == SESSIONS
        assert len({s.store.root for s in sessions.values()}) == SESSIONS
        tokens = {c.token for c in clients}
        keys = {c.key for c in clients}
        for c in clients:
            assert c.failure is None, (c.i, c.failure)
            first, second = c.results
            session = sessions[c.i]
            # turn 1: the right task on the right file, output in this session's directory
            task = first.tasks[0]
            assert task.status == "done", task
            out = Path(task.outputs["image"])
            assert out.parent == session.store.root and out.is_file()
            assert first.files == [c.picture.name]
            assert first.answer.startswith(f"Answer for {c.token}:") and out.name in first.answer
            # turn 2: the history it recalls holds only this session's token
            assert second.answer == f"I remember: {c.token}"
            # files: only this session's upload and output
            assert sorted(p.name for p in session.store.root.iterdir()) == sorted([c.picture.name, out.name])
            # what this session's LLM received: its own key, its own tokens and files, nobody else's
            received = json.dumps([r["json"] for r in c.server.requests])
            assert {r["headers"]["authorization"] for r in c.server.requests} == {f"Bearer {c.key}"}
            assert set(TOKEN.findall(received)) == {c.token}
            assert not any(k in received for k in keys)
            others = [f"picture{j}.png" for j in range(SESSIONS) if j != c.i]
            assert not any(name in received for name in others)
            assert not any(t in first.answer + second.answer for t in tokens - {c.token})
        assert elapsed < 60
    finally:
        for c in clients:
            c.server.close()
        registry.close_all()
