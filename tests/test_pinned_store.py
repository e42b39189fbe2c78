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
from jarvis.pipeline.plan_reading import parse_plan
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


@pytest.mark.parametrize("value, message", [
    ("file:///etc/passwd", "only http\\(s\\) URLs and this session's files can be used, not 'file:///etc/passwd'"),
    ("FILE:upload.png", "only http\\(s\\) URLs"),
    ("data:image/png;base64,iVBORw0KGgo=", "only http\\(s\\) URLs"),
    ("ftp://example.org/upload.png", "only http\\(s\\) URLs"),
    ("upload.png\x00.txt", "^a file name with a NUL character cannot be used$"),
    ("nothere.png", "^'nothere.png' is not a file of this session: attach it first, or name one of: upload.png$"),
])
def test_what_is_not_a_session_file_is_refused_with_what_to_do(store, value, message):
    with pytest.raises(ResourceError, match=message):
        store.resolve(value)


def test_an_empty_store_says_it_has_no_files(tmp_path):
    with pytest.raises(ResourceError, match="name one of: \\(no files yet\\)$"):
        ResourceStore(tmp_path / "empty").resolve("a.png")


def test_uploads_get_safe_unique_names_and_keep_their_order(store, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for name in ("My Cat!.png", "notes.txt"):
        (src / name).write_bytes(name.encode())
    a = store.add_upload(src / "My Cat!.png")
    b = store.add_upload(src / "My Cat!.png")
    c = store.add_upload(src / "notes.txt", name="../../etc/..passwd")
    d = store.add_upload(src / "notes.txt", name="???")
    assert [r.name for r in store.list()] == ["upload.png", "My_Cat_.png", "My_Cat_-1.png", "passwd", "file"]
    assert [(r.type, r.origin) for r in (a, b, c, d)] == [("image", "upload"), ("image", "upload"),
                                                          ("text", "upload"), ("text", "upload")]
    assert all(r.path.parent == store.root and r.path.read_bytes() for r in (a, b, c, d))
    assert store.resolve("My Cat!.png") == a.path        # the name as the user wrote it finds the safe one
    assert store.resolve(" My_Cat_-1.png ") == b.path
    long = store.add_upload(src / "notes.txt", name="x" * 300 + ".txt")
    assert len(long.name) == 100
    with pytest.raises(ResourceError, match="attached file not found: gone.png"):
        store.add_upload(src / "gone.png")


def test_generated_and_fetched_files_are_registered_and_cleanup_forgets_them(store):
    made = store.new_path("image", ".png")
    again = store.new_path("image", ".png")
    assert made != again and made.parent == store.root and made.name.startswith("image-") and made.suffix == ".png"
    made.write_bytes(b"\x89PNG made")
    assert store.register_generated(made).origin == "generated"
    fetched = store.new_path("download", ".wav")
    fetched.write_bytes(b"RIFF")
    res = store.register_fetched(fetched, "https://example.org/a.wav")
    assert (res.origin, res.type) == ("url", "audio")
    # a URL fetched before is served from the store, with no new download
    assert store.resolve("https://example.org/a.wav") == fetched
    assert store.resolve(made.name) == made
    store.cleanup()
    assert not store.root.exists() and store.list() == []
    with pytest.raises(ResourceError):
        store.resolve(made.name)
