"""A session's store hands out only its own files: absolute paths elsewhere, `..`, symlinks
pointing out and text arguments naming outside files are refused or left as text, never read."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from jarvis.errors import ResourceError
from jarvis.execution.dispatch import Dispatcher
from jarvis.files.store import ResourceStore
from jarvis.pipeline.plan import parse_plan
from jarvis.pipeline.scheduler import Scheduler
from jarvis.pipeline.selection import Choice
from tests.fakes.fake_executor import FakeExecutor
from tests.helpers import plan_json

pytestmark = pytest.mark.timeout(20)
SECRET = "root:x:0:0:the secret outside the session"


@pytest.fixture
def outside(tmp_path) -> Path:
    """A directory beside the session's, holding files the session must never read."""
    d = tmp_path / "outside"
    d.mkdir()
    (d / "secret.txt").write_text(SECRET)
    (d / "photo.png").write_bytes(b"\x89PNG outside")
    return d


@pytest.fixture
def store(tmp_path) -> ResourceStore:
    s = ResourceStore(tmp_path / "session")
    own = tmp_path / "upload.png"
    own.write_bytes(b"\x89PNG mine")
    s.add_upload(own)
    return s


def refused(store: ResourceStore, value: str) -> None:
    with pytest.raises(ResourceError, match="not a file of this session|only http"):
        store.resolve(value)


def test_an_absolute_path_outside_the_store_is_refused(store, outside):
    for value in (str(outside / "secret.txt"), str(outside / "photo.png"), "/etc/passwd", "/etc/hostname"):
        refused(store, value)


def test_dot_dot_never_leaves_the_store(store, outside):
    for value in ("../outside/secret.txt", str(store.root / ".." / "outside" / "secret.txt"),
                  str(store.root / ".." / "outside" / "photo.png"), "../../../../etc/passwd"):
        refused(store, value)


def test_a_symlink_inside_the_store_pointing_out_is_refused(store, outside):
    link = store.root / "link.png"
    os.symlink(outside / "photo.png", link)
    refused(store, str(link))
    refused(store, "link.png")


def test_the_stores_own_files_resolve(store):
    own = store.root / "upload.png"
    assert store.resolve("upload.png") == own
    assert store.resolve(str(own)) == own
    assert store.resolve("/upload.png") == own        # HuggingGPT's "/e.jpg" for an upload


def test_a_text_argument_naming_an_outside_file_is_not_read(store, outside, tmp_path):
    inside = tmp_path / "notes.txt"
    inside.write_text("the session's own notes")
    store.add_upload(inside)
    values = [str(outside / "secret.txt"), "../outside/secret.txt",
              str(store.root / ".." / "outside" / "secret.txt"), "notes.txt"]
    plan = parse_plan(plan_json(*[("summarization", {"text": v}) for v in values]))
    choices = {t.id: Choice(t.id, "org/m", "test", ["org/m"]) for t in plan.tasks}
    executor = FakeExecutor()
    scheduler = Scheduler(Dispatcher("local", executor), store)
    list(scheduler.run(plan, choices, time.perf_counter()))
    received = sorted(call[2].text[0] for call in executor.calls)
    assert received == sorted(values[:3] + ["the session's own notes"])
    assert not any(SECRET in r.outputs.get("text", "") for r in scheduler.records.values())
