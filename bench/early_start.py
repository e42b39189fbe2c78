"""Tasks start while the plan streams (issue 12). The scripted LLM writes one task object per
`--object-seconds` (over real HTTP, through the `openai` SDK); every task has one candidate model
(inference.top_k 1), so none waits for a model choice; each task takes `--task-seconds`.

Reports, for a 4-task DAG and a 6-task fan-out: when the first task started against the end of the
plan's stream, how long after it was ready (its JSON object closed, the tasks it uses done) each
task started, and the wall time over
(plan stream + longest task chain + answer). Target: <= 0.2 s from object to start, ratio <= 1.1.

Run: python -m bench.early_start [--object-seconds 1.0] [--task-seconds 1.0] [--runs 3]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

from bench.fixed_executor import FixedExecutor
from jarvis.config import load_config
from jarvis.events import Done
from jarvis.pipeline.controller import Controller
from jarvis.session import Session
from tests.fakes.llm_server import ScriptedLLM

DAG4 = [   # 0 -> 1 -> 3 <- 2: the longest chain is 3 tasks
    {"task": "text-generation", "id": 0, "dep": [-1], "args": {"text": "Once upon a time"}},
    {"task": "summarization", "id": 1, "dep": [0], "args": {"text": "<GENERATED>-0"}},
    {"task": "translation", "id": 2, "dep": [-1], "args": {"text": "The cat sleeps on the mat."}},
    {"task": "sentence-similarity", "id": 3, "dep": [1, 2], "args": {"text": ["<GENERATED>-1", "<GENERATED>-2"]}},
]
FANOUT6 = [  # 0 -> 1..5: the longest chain is 2 tasks
    {"task": "text-generation", "id": 0, "dep": [-1], "args": {"text": "Once upon a time"}},
    *({"task": task, "id": i, "dep": [0], "args": {"text": "<GENERATED>-0"}} for i, task in enumerate(
        ["summarization", "translation", "text-classification", "token-classification", "text2text-generation"], 1)),
]


def chain(tasks: list[dict]) -> int:
    """The number of tasks on the longest dependency chain."""
    depth: dict[int, int] = {}
    for t in tasks:   # in plan order, every dependency comes first
        depth[t["id"]] = 1 + max((depth[d] for d in t["dep"] if d >= 0), default=0)
    return max(depth.values())


def one_object_per_chunk(tasks: list[dict]) -> list[str]:
    last = len(tasks) - 1
    return [("[" if i == 0 else "") + json.dumps(t) + ("]" if i == last else ", ") for i, t in enumerate(tasks)]


def measure(name: str, tasks: list[dict], object_seconds: float, task_seconds: float, runs: int) -> None:
    firsts, lags, ratios, plans = [], [], [], []
    with ScriptedLLM(plan=one_object_per_chunk(tasks), answer="Done.", chunk_delay=object_seconds,
                     key="sk-bench") as server:
        cfg = load_config(env={"OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": "sk-bench"}).with_overrides(
            llm={"max_retries": 0}, inference={"top_k": 1, "max_parallel": len(tasks)})
        controller = Controller(cfg, local=FixedExecutor(task_seconds))
        for _ in range(runs):
            server.requests.clear()
            session = Session.create(cfg)
            start = time.perf_counter()
            events = []
            for event in controller.run(session, "go"):
                events.append((time.perf_counter() - start, event))
            session.close()
            result = next(e.result for _, e in events if isinstance(e, Done))
            closed = [at - start for at, _ in server.requests[0]["sent"]]   # object i closes in chunk i
            records = {r.id: r for r in result.tasks}
            t = result.timings
            plans.append(t.plan)
            firsts.append(min(r.started or 0.0 for r in result.tasks))
            for task in tasks:   # ready: its object has closed and the tasks it uses have finished
                ready = max([closed[task["id"]], *(records[d].finished or 0.0 for d in task["dep"] if d >= 0)])
                lags.append((records[task["id"]].started or 0.0) - ready)
            ratios.append(t.total / (t.plan + chain(tasks) * task_seconds + t.respond))
    print(f"{name}: plan stream ends at {statistics.median(plans):.2f} s; first task starts at "
          f"{statistics.median(firsts):.3f} s ({statistics.median(plans) - statistics.median(firsts):.2f} s before); "
          f"ready (object closed, inputs done) -> started: max {max(lags) * 1000:.0f} ms over {len(lags)} tasks; "
          f"wall / (plan stream + {chain(tasks)}-task chain + answer) = {statistics.median(ratios):.3f} "
          f"median of {runs} (target <= 1.1)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--object-seconds", type=float, default=1.0, help="seconds the LLM takes per task object")
    ap.add_argument("--task-seconds", type=float, default=1.0, help="seconds each task takes")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    measure("4-task DAG", DAG4, args.object_seconds, args.task_seconds, args.runs)
    measure("6-task fan-out", FANOUT6, args.object_seconds, args.task_seconds, args.runs)


if __name__ == "__main__":
    main()
