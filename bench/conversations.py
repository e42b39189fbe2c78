"""The conversation store's cost (issue 13): each turn is written as the web app writes it, on a
real SQLite file in WAL mode: started as running, saved after its first event and after each of its
task steps (a plan and three tasks), then finished with its answer, history, task records and files.
Message sizes follow a real three-task turn (plan, steps with results, a 1.5 kB answer, usage).

Reports the write time per turn (all of a turn's writes together: median, p95) and per write, and
the database's size per 100 turns (after a WAL checkpoint, so the main file holds everything).

Run: python -m bench.conversations [--turns 500] [--turns-per-conversation 10] [--dir DIR]
"""
from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from jarvis.conversations.records import StoredFile
from jarvis.conversations.store import ConversationStore, owner_key

TASKS = 3


def _messages(n: int, folder: Path, steps: int) -> list[dict[str, Any]]:
    plan = {"role": "assistant", "content": "1. **image-to-text** on image `street.png`\n" * 3,
            "metadata": {"title": "🧭 Plan: 3 tasks", "status": "done", "duration": 1.2, "id": "plan"}}
    out: list[dict[str, Any]] = [plan]
    for t in range(steps):
        out.append({"role": "assistant", "content": "**Model:** `nlpconnect/vit-gpt2-image-captioning` — the only "
                    "candidate that runs here\n\n**Result:** " + f"a house with a red roof, turn {n} " * 12,
                    "metadata": {"title": f"✅ Task {t}: image-to-text", "status": "done", "duration": 0.4,
                                 "id": f"task-{t}"}})
    if steps == TASKS:
        out.append({"role": "assistant", "content": "The picture shows a house by a street. " * 38})
        out.append({"role": "assistant", "content": {"path": str(folder / f"canny-{n}.png"), "alt_text": "canny"}})
        out.append({"role": "assistant", "content": "3 LLM calls, 1800 prompt + 420 completion tokens.",
                    "metadata": {"title": "📊 Usage", "status": "done", "duration": 6.1}})
    return out


def _record(n: int) -> dict[str, Any]:
    task = {"id": 0, "task": "image-to-text", "dep": [-1], "args": {"image": "street.png"},
            "model": "nlpconnect/vit-gpt2-image-captioning", "reason": "the only candidate", "executor": "local",
            "status": "done", "outputs": {"text": f"a house with a red roof {n}"}, "detail": {"caption": "a house"},
            "error": None, "started": 1.2, "finished": 1.6,
            "attempts": [{"executor": "local", "model": "nlpconnect/vit-gpt2-image-captioning", "ok": True,
                          "seconds": 0.4}]}
    return {"request": f"Caption street.png, turn {n}", "files": ["street.png"], "tasks": [task] * TASKS,
            "answer": "The picture shows a house.", "usage": {"llm_calls": 3}, "timings": {"total": 6.1}}


def _one_turn(store: ConversationStore, conv: str, n: int) -> list[float]:
    """The writes of one turn, as the web app makes them; returns the seconds each took."""
    folder = store.folder(conv)
    request = f"Caption street.png and draw its edges, turn {n}"
    user: list[dict[str, Any]] = [{"role": "user", "content": request},
            {"role": "user", "content": {"path": str(folder / "street.png"), "alt_text": "street.png"}}]
    files = [StoredFile("street.png", "street.png", "image", "upload")]
    writes: list[float] = []
    start = time.perf_counter()
    turn = store.start_turn(conv, request, user, f"turn {n}")
    writes.append(time.perf_counter() - start)
    start = time.perf_counter()
    store.save_turn(conv, turn, user=user, messages=_messages(n, folder, 0), files=files)
    writes.append(time.perf_counter() - start)
    for step in range(1, TASKS + 1):
        start = time.perf_counter()
        store.save_turn(conv, turn, messages=_messages(n, folder, step), files=files)
        writes.append(time.perf_counter() - start)
    generated = files + [StoredFile(f"canny-{n}.png", f"canny-{n}.png", "image", "generated")]
    history = [{"role": "user", "content": request}, {"role": "assistant", "content": "A house." * 40}]
    start = time.perf_counter()
    store.finish_turn(conv, turn, "done", _messages(n, folder, TASKS), history, _record(n), generated)
    writes.append(time.perf_counter() - start)
    return writes


def run(turns: int, per_conversation: int, directory: Path) -> dict[str, float]:
    store = ConversationStore(directory / "conversations.db")
    owner = owner_key("bench-browser")
    per_turn: list[float] = []
    per_write: list[float] = []
    conv = ""
    for n in range(turns):
        if n % per_conversation == 0:
            conv = store.create(owner, f"conversation {n // per_conversation}").id
        writes = _one_turn(store, conv, n)
        per_turn.append(sum(writes))
        per_write += writes
    store.close()
    with sqlite3.connect(directory / "conversations.db") as con:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = (directory / "conversations.db").stat().st_size
    q = statistics.quantiles(per_turn, n=20)
    return {"turns": turns, "writes_per_turn": len(per_write) / turns,
            "turn_median_ms": statistics.median(per_turn) * 1000, "turn_p95_ms": q[18] * 1000,
            "write_median_ms": statistics.median(per_write) * 1000,
            "write_p95_ms": statistics.quantiles(per_write, n=20)[18] * 1000,
            "kib_per_100_turns": size / 1024 / (turns / 100)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=500)
    parser.add_argument("--turns-per-conversation", type=int, default=10)
    parser.add_argument("--dir", type=Path, default=None, help="folder for the database (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="jarvis-bench-conversations-") as tmp:
        folder = args.dir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        r = run(args.turns, args.turns_per_conversation, folder)
    print(f"{r['turns']} turns, {r['writes_per_turn']:.0f} transactions each (start, first event, "
          f"{TASKS} steps, finish), SQLite WAL, synchronous=NORMAL")
    print(f"write time per turn: median {r['turn_median_ms']:.2f} ms, p95 {r['turn_p95_ms']:.2f} ms")
    print(f"per write:           median {r['write_median_ms']:.2f} ms, p95 {r['write_p95_ms']:.2f} ms")
    print(f"database size: {r['kib_per_100_turns']:.0f} KiB per 100 turns")


if __name__ == "__main__":
    main()
