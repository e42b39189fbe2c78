"""A file a plan names by URL, fetched while the person waits: the real Scheduler (a FakeExecutor
behind it) runs a plan whose image is a URL of a loopback server that trickles the body. The
task's progress shows bytes, total, speed and time left (no total without a Content-Length), the
URL shown without its query; the user's stop ends a fetch within a second, even one waiting on a
silent server, and leaves no file behind."""
from __future__ import annotations

import io
import re
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jarvis.events import TaskFailed, TaskFinished, TaskProgress
from jarvis.execution.dispatch import Dispatcher
from jarvis.files.store import ResourceStore
from jarvis.files.url_fetch import fetch_to_store
from jarvis.pipeline.plan_reading import parse_plan
from jarvis.pipeline.scheduler import Scheduler
from jarvis.pipeline.selection import Choice
from jarvis.runners.base import RunContext, TaskInputs, TaskOutputs
from tests.fakes.fake_executor import FakeExecutor
from tests.fakes.loopback import HandlerThread
from tests.helpers import plan_json

pytestmark = pytest.mark.timeout(60)


def _png() -> bytes:
    pixels = np.random.default_rng(7).integers(0, 256, (150, 150, 3)).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


BODY = _png()
PIECES = 25          # the body in this many pieces, PAUSE seconds apart: about 2.5 s a fetch
PAUSE = 0.1
RELEASE = threading.Event()   # the silent server's hold, let go when the module's tests end
SEEN: list[str] = []          # the paths the server was asked for
SILENT = threading.Event()    # set once the silent server has stopped sending


class _Trickle(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        SEEN.append(self.path)
        path = self.path.partition("?")[0]
        if path == "/hop.png":                        # a slow redirect to the trickling file
            time.sleep(0.8)
            self.send_response(302)
            self.send_header("Location", "/clip.png")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        if path.endswith("nolength.png"):
            self.send_header("Connection", "close")
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        step = -(-len(BODY) // PIECES)
        for n, start in enumerate(range(0, len(BODY), step)):
            if path.startswith("/silent") and n == 15:     # 1.5 s in: the rest never comes (until the test ends)
                SILENT.set()
                RELEASE.wait(30)
                return
            self.wfile.write(BODY[start:start + step])
            self.wfile.flush()
            time.sleep(PAUSE)


@pytest.fixture(scope="module")
def server():
    RELEASE.clear()                 # a second session in one process (mutmut's runs) finds it set
    with HandlerThread(_Trickle) as served:
        served.httpd.handle_error = lambda request, address: None   # a stopped fetch hangs up mid-body
        yield served
        RELEASE.set()


class Run:
    """One plan run by the real Scheduler in a thread, its events collected as they come."""

    def __init__(self, tmp_path: Path, image: str, task_timeout: float = 600.0):
        plan = parse_plan(plan_json(("image-classification", {"image": image})))
        self.received: list[TaskInputs] = []
        self.store = ResourceStore(tmp_path / "store", allow_private=True)
        self.cancel = threading.Event()
        self.scheduler = Scheduler(Dispatcher("local", FakeExecutor(self._answer)), self.store, cancel=self.cancel,
                                   task_timeout=task_timeout)
        self.events: list = []
        self.thread = threading.Thread(target=lambda: self.events.extend(
            self.scheduler.run(plan, {0: Choice(0, "org/m", "test", ["org/m"])}, time.perf_counter())), daemon=True)
        self.thread.start()

    def _answer(self, task: str, model_id: str, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        self.received.append(inputs)
        return TaskOutputs(text="a label")

    def join(self, limit: float = 20.0) -> None:
        self.thread.join(limit)
        assert not self.thread.is_alive(), "the run did not end"

    def progress(self) -> list[str]:
        return [e.message for e in list(self.events) if isinstance(e, TaskProgress)]

    def files(self) -> list[str]:
        return sorted(p.name for p in self.store.root.iterdir())


def test_progress_shows_bytes_of_the_total_speed_and_time_left(server, tmp_path):
    run = Run(tmp_path, f"{server.url}/clip.png?token=s3cret")
    run.join()
    total = f"{len(BODY) / 1000:.0f} KB"
    lines = run.progress()
    assert len(lines) >= 2, lines                     # a 2.5 s fetch: a line about every second
    pattern = (rf"fetching 127\.0\.0\.1:{server.port}/clip\.png: (\d+) KB of {total} \((\d+)%\), "
               r"(\d+) KB/s, about (\d+) s left")
    percents = []
    for line in lines:
        match = re.fullmatch(pattern, line)
        assert match, line
        done, percent, speed, left = (int(g) for g in match.groups())
        percents.append(percent)
        assert abs(percent - 100 * done * 1000 / len(BODY)) < 2
        assert 5 <= speed <= 40                      # about 27 KB a second: the body over 2.5 s
        assert abs(left - (len(BODY) / 1000 - done) / speed) <= 1, line
    assert percents == sorted(percents) and 0 < percents[0] < 100
    assert {e.task_id for e in run.events if isinstance(e, TaskProgress)} == {0}     # shown under its task
    assert not any("s3cret" in line or "?" in line for line in lines)
    assert isinstance(run.events[-1], TaskFinished)
    assert run.received[0].image[0].read_bytes() == BODY


def test_without_a_length_progress_shows_bytes_so_far(server, tmp_path):
    run = Run(tmp_path, f"{server.url}/nolength.png")
    run.join()
    lines = run.progress()
    assert lines, "no progress while fetching"
    for line in lines:
        assert re.fullmatch(rf"fetching 127\.0\.0\.1:{server.port}/nolength\.png: \d+ KB so far, "
                            r"\d+(\.\d)? [KM]?B/s", line), line
    assert isinstance(run.events[-1], TaskFinished)
    assert run.received[0].image[0].read_bytes() == BODY


@pytest.mark.parametrize("path", ["/clip.png", "/silent.png", "/silent-nolength.png"])
def test_a_stop_mid_fetch_ends_within_a_second_and_leaves_no_file(server, tmp_path, path):
    SILENT.clear()
    run = Run(tmp_path, server.url + path)
    deadline = time.monotonic() + 10
    while not run.progress():                       # bytes are arriving
        assert time.monotonic() < deadline, "no progress while fetching"
        time.sleep(0.02)
    if path.startswith("/silent"):
        assert SILENT.wait(10)                      # the server has gone silent: the fetch waits in a read
        time.sleep(0.2)
    stopped = time.monotonic()
    run.cancel.set()
    run.join()
    assert time.monotonic() - stopped < 1.0
    end = run.events[-1]
    assert isinstance(end, TaskFailed)
    assert end.record.error == (f"stopped while fetching 127.0.0.1:{server.port}{path}: the task timed out "
                                "(inference.task_timeout) or the run was stopped; nothing was kept")
    assert run.files() == [] and run.received == []


def test_a_task_timing_out_mid_fetch_stops_the_fetch_while_the_run_goes_on(server, tmp_path):
    """The task's own stop (its time limit), not only the run's end: the fetch waiting on a silent server
    ends and leaves no file while another task of the run is still working."""
    SILENT.clear()
    working, done = threading.Event(), threading.Event()

    def answer(task: str, model_id: str, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        if inputs.text == ["a long text"]:
            time.sleep(2.0)                         # so that the next task's own limit ends after the check
            return TaskOutputs(text="a summary")
        working.set()
        done.wait(10)                               # the run's other work, busy until the test has looked
        return TaskOutputs(text="a shorter summary")
    plan = parse_plan(plan_json(("image-classification", {"image": server.url + "/silent.png"}),
                                ("summarization", {"text": "a long text"}),
                                ("summarization", {"text": "<GENERATED>-1"}, [1])))
    store = ResourceStore(tmp_path / "store", allow_private=True)
    scheduler = Scheduler(Dispatcher("local", FakeExecutor(answer)), store, task_timeout=2.5)  # silent from 1.5 s
    choices = {t.id: Choice(t.id, "org/m", "test", ["org/m"]) for t in plan.tasks}
    events: list = []
    thread = threading.Thread(target=lambda: events.extend(scheduler.run(plan, choices, time.perf_counter())),
                              daemon=True)
    thread.start()
    try:
        assert SILENT.wait(10) and working.wait(10)
        deadline = time.monotonic() + 5
        while scheduler.records[0].status != "failed":
            assert time.monotonic() < deadline, "the fetch's task did not time out"
            time.sleep(0.02)
        assert scheduler.records[0].error == "timed out after 2.5 s (inference.task_timeout)"
        time.sleep(1.0)                             # the fetch has seen its task's stop: its partial file is gone
        assert sorted(p.name for p in store.root.iterdir()) == [] and thread.is_alive()
    finally:
        done.set()
    thread.join(10)
    assert [scheduler.records[t].status for t in (0, 1, 2)] == ["failed", "done", "done"]


def test_a_stop_during_a_redirect_asks_for_nothing_more(server, tmp_path):
    SEEN.clear()
    run = Run(tmp_path, server.url + "/hop.png")
    time.sleep(0.3)                                   # the server is still thinking about its redirect
    run.cancel.set()
    run.join()
    assert isinstance(run.events[-1], TaskFailed)
    assert run.events[-1].record.error.startswith(f"stopped while fetching 127.0.0.1:{server.port}/hop.png: ")
    assert SEEN == ["/hop.png"] and run.files() == []


def test_a_long_url_is_shown_cut_to_100_characters(server, tmp_path):
    name = "a" * 120 + ".png"
    run = Run(tmp_path, f"{server.url}/{name}")
    run.join()
    shown = f"127.0.0.1:{server.port}/{name}"[:97] + "..."
    assert run.progress() and all(line.startswith(f"fetching {shown}: ") for line in run.progress())
    assert isinstance(run.events[-1], TaskFinished)


def test_a_long_fetch_nobody_watches_completes(server, tmp_path):
    store = ResourceStore(tmp_path / "store", allow_private=True)
    path = fetch_to_store(f"{server.url}/clip.png", store, allow_private=True)   # as the HTTP API fetches
    assert path.read_bytes() == BODY
