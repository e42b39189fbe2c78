"""Reading a long plan text (review finding: find_objects scanned the text twice, once for the balanced
objects and again for whether one was left open; now one scan answers both).

Times, on a plan of --tasks task objects: the scan alone and the whole find_objects call, each the one-scan
way (jarvis.pipeline.lenient_json) and the former two-scan way, which lives here, for this comparison only;
then the same over every prefix of the text a streaming plan is read at (LivePlan reads the text as it
grows, about one prefix per token). Both ways give the same answer on every text timed (checked).

Run: python -m bench.plan_scan [--tasks 40] [--repeat 10]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

from jarvis.pipeline.lenient_json import MAX_SCAN_DEPTH, Brackets, balanced_spans, find_objects, loads_lenient
from jarvis.pipeline.lenient_json import _scan_objects as one_scan

TASK_KEYS = ("task",)


def two_scans(text: str) -> tuple[list[tuple[int, int]], bool]:
    """The former way: balanced_spans, then a second scan for an object left open."""
    spans = balanced_spans(text, max_depth=MAX_SCAN_DEPTH)
    scan = Brackets(text)
    opened: list[str] = []
    for _, ch, _ in scan:
        if ch in "[{":
            opened.append(ch)
        elif opened:
            opened.pop()
    if not scan.in_string:
        return spans, "{" in opened
    last_close = max((end for _, end in spans), default=0)
    return spans, "{" in text[last_close:] and text.rstrip()[-1:] not in ("}", "]")


def find_objects_two_scans(text: str, must_have: tuple[str, ...] = ()) -> tuple[list[dict[str, Any]], bool]:
    """find_objects as it was: the objects from the first scan's spans, the second scan's answer."""
    spans, truncated = two_scans(text)
    spans.sort(key=lambda s: (s[0], -s[1]))
    found: list[dict[str, Any]] = []
    covered_until = -1
    for start, end in spans:
        if start < covered_until:
            continue
        try:
            obj = loads_lenient(text[start:end])
        except ValueError:
            continue
        if isinstance(obj, dict) and (not must_have or any(k in obj for k in must_have)):
            found.append(obj)
            covered_until = end
    return found, truncated


def plan_text(tasks: int) -> str:
    """A planner's answer: a fenced JSON list of chained tasks, indented as models write it."""
    plan = [{"task": "image-to-text" if n % 2 else "text-to-speech", "id": n, "dep": [n - 1],
             "args": {"image": f"<GENERATED>-{n - 1}", "text": f"step {n}: describe what the image shows"}}
            for n in range(tasks)]
    return "Here is the plan:\n```json\n" + json.dumps(plan, indent=2) + "\n```"


def best_ms(work: Callable[[], object], repeat: int) -> tuple[float, float]:
    """(median, min) milliseconds of `repeat` runs."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), min(times)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.plan_scan", description=__doc__.split("\n")[0])
    p.add_argument("--tasks", type=int, default=40)
    p.add_argument("--repeat", type=int, default=10)
    args = p.parse_args(argv)
    text = plan_text(args.tasks)
    prefixes = [text[:n] for n in range(0, len(text) + 1, 8)]     # about every second token
    for sample in (text, *prefixes):
        if find_objects(sample, TASK_KEYS) != find_objects_two_scans(sample, TASK_KEYS):
            raise SystemExit(f"the two ways disagree on {sample[-80:]!r}")
    print(f"plan text: {args.tasks} tasks, {len(text)} characters; {len(prefixes)} streaming prefixes; "
          f"median (min) of {args.repeat} runs")
    cases: list[tuple[str, Callable[[], object], Callable[[], object]]] = [
        ("scan of the whole text", lambda: two_scans(text), lambda: one_scan(text)),
        ("find_objects on the whole text", lambda: find_objects_two_scans(text, TASK_KEYS),
         lambda: find_objects(text, TASK_KEYS)),
        ("find_objects on every prefix", lambda: [find_objects_two_scans(t, TASK_KEYS) for t in prefixes],
         lambda: [find_objects(t, TASK_KEYS) for t in prefixes]),
    ]
    for name, before, after in cases:
        (old, old_min), (new, new_min) = best_ms(before, args.repeat), best_ms(after, args.repeat)
        print(f"{name}: two scans {old:.2f} ms ({old_min:.2f}), one scan {new:.2f} ms ({new_min:.2f}): "
              f"{100 * (old - new) / old:.0f}% less")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
