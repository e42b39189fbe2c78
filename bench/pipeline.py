"""Benchmarks of Jarvis's own overhead (issue 2), against a scripted LLM over real HTTP.

1. LLM calls and prompt tokens (cl100k) per request over TaskBench's real user requests, each
   answered with a scripted 3-task plan. HuggingGPT's prompts cost about 1,600 tokens for
   planning and about 850 per model-selection call (one call per task).
2. Wall time / critical path of a DAG with fixed LLM latency and fixed task durations.

Run: python -m bench.pipeline [--limit N] (needs ../shared/data for part 1).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from bench.fixed_executor import FixedExecutor
from jarvis.config import load_config
from jarvis.events import Done
from jarvis.pipeline.controller import Controller
from jarvis.session import Session
from tests.fakes.llm_server import ScriptedLLM, kind_of

ROOT = Path(__file__).resolve().parent.parent

DATA = ROOT.parent / "shared" / "data" / "taskbench_hf_user_requests.jsonl"
HUGGINGGPT_PLAN, HUGGINGGPT_SELECT = 1600, 850

PLAN3 = json.dumps([
    {"task": "text-to-image", "id": 0, "dep": [-1], "args": {"text": "a red fox in the snow"}},
    {"task": "image-to-text", "id": 1, "dep": [0], "args": {"image": "<GENERATED>-0"}},
    {"task": "text-to-speech", "id": 2, "dep": [1], "args": {"text": "<GENERATED>-1"}},
])


def config(url: str):
    cfg = load_config(env={"OPENAI_BASE_URL": url, "OPENAI_API_KEY": "sk-bench"})
    return cfg.with_overrides(llm={"max_retries": 0})


def tokens_per_call(server, enc) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for req in server.requests:
        messages = req["json"].get("messages", [])
        n = sum(len(enc.encode(str(m.get("content", "")))) + 4 for m in messages)
        out.setdefault(kind_of(messages), []).append(n)
    return out


def prompt_tokens(limit: int) -> None:
    import bpe_openai  # ships the cl100k table; tiktoken would download it
    enc = bpe_openai.get_encoding("cl100k_base")
    if not DATA.exists():
        print("part 1 skipped: ../shared/data is absent")
        return
    requests = [json.loads(line)["user_request"] for line in DATA.open()][:limit]
    with ScriptedLLM(plan=PLAN3, select=None, answer="Here is your answer.", key="sk-bench") as server:
        cfg = config(server.url)
        controller = Controller(cfg, local=FixedExecutor(0.0))
        calls, totals = [], []
        for text in requests:
            server.requests.clear()
            session = Session.create(cfg)
            try:
                events = list(controller.run(session, text))
            finally:
                session.close()
            result = next(e.result for e in events if isinstance(e, Done))
            calls.append(result.usage.llm_calls)
            per = tokens_per_call(server, enc)
            totals.append({k: sum(v) for k, v in per.items()})
    plan = [t.get("plan", 0) for t in totals]
    select = [t.get("select", 0) for t in totals]
    answer = [t.get("answer", 0) for t in totals]
    ours = [p + s for p, s in zip(plan, select)]
    theirs = HUGGINGGPT_PLAN + 3 * HUGGINGGPT_SELECT
    print(f"requests: {len(requests)} (TaskBench), scripted 3-task plan")
    print(f"LLM calls per request: max {max(calls)}, mean {statistics.mean(calls):.2f}")
    print(f"prompt tokens (cl100k) per request, mean: plan {statistics.mean(plan):.0f}, "
          f"select {statistics.mean(select):.0f}, answer {statistics.mean(answer):.0f}")
    print(f"plan+select: ours {statistics.mean(ours):.0f} vs HuggingGPT ~{theirs} "
          f"-> ratio {statistics.mean(ours) / theirs:.2f} (target <= 0.33)")
    print(f"all three calls incl. answer: {statistics.mean([o + a for o, a in zip(ours, answer)]):.0f} tokens "
          f"-> ratio {statistics.mean([o + a for o, a in zip(ours, answer)]) / theirs:.2f} of HuggingGPT's plan+select")


def critical_path(llm_delay: float, task_seconds: float, runs: int) -> None:
    # 0 -> 2, 1 -> 2, 1 -> 3, 3 -> 4 : longest chain 1-3-4 = 3 tasks
    dag = json.dumps([
        {"task": "text-generation", "id": 0, "dep": [-1], "args": {"text": "a"}},
        {"task": "summarization", "id": 1, "dep": [-1], "args": {"text": "b"}},
        {"task": "sentence-similarity", "id": 2, "dep": [0, 1], "args": {"text": ["<GENERATED>-0", "<GENERATED>-1"]}},
        {"task": "translation", "id": 3, "dep": [1], "args": {"text": "<GENERATED>-1"}},
        {"task": "text-classification", "id": 4, "dep": [3], "args": {"text": "<GENERATED>-3"}},
    ])
    with ScriptedLLM(plan=dag, select=None, answer="ok", delay=llm_delay, key="sk-bench") as server:
        cfg = config(server.url)
        controller = Controller(cfg, local=FixedExecutor(task_seconds))
        ratios = []
        for _ in range(runs):
            session = Session.create(cfg)
            start = time.perf_counter()
            events = list(controller.run(session, "go"))
            wall = time.perf_counter() - start
            session.close()
            result = next(e.result for e in events if isinstance(e, Done))
            llm_calls = result.usage.llm_calls
            ideal = llm_calls * llm_delay + 3 * task_seconds
            ratios.append(wall / ideal)
    print(f"DAG of 5 tasks (critical path 3 tasks x {task_seconds}s) + {llm_calls} LLM calls x {llm_delay}s: "
          f"wall / critical path = {statistics.median(ratios):.3f} median of {runs} (target <= 1.15)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=500, help="TaskBench requests to run (7546 in all)")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    prompt_tokens(args.limit)
    critical_path(0.2, 0.5, args.runs)


if __name__ == "__main__":
    main()
