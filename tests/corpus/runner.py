"""Runs corpus cases through the real parser and selector and checks what came out.

Shared by tests/test_corpus.py and bench/reliability.py, so the figures and the tests agree.
An outcome is one of: clean (a plan, nothing to fix), repaired (a plan, with repairs or with tasks
that explain why they cannot run), refused (PlanError with a message), escaped (any other
exception) or violation (a result that breaks an invariant or the case's expectation).
"""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from types import SimpleNamespace

from jarvis.errors import PlanError
from jarvis.llm.client import Usage
from jarvis.pipeline.plan import Plan, Ref, Task
from jarvis.pipeline.plan_reading import parse_plan
from jarvis.pipeline.selection import _parse_choices, select_models
from jarvis.runners.registry import RESOURCE_TYPES

MAX_TASKS = 12
MAX_MESSAGE = 700          # a repair note, task error or refusal longer than this is not "a clear message"
FILES = ["photo.png", "clip.wav"]


@dataclass
class Outcome:
    case_id: str
    kind: str
    status: str            # clean | repaired | refused | escaped | violation
    seconds: float
    detail: str = ""


def _short(text: str) -> bool:
    return isinstance(text, str) and 0 < len(text) <= MAX_MESSAGE


def plan_problems(plan: Plan, max_tasks: int = MAX_TASKS) -> list[str]:
    """Invariants every parsed plan keeps, whatever the LLM wrote."""
    bad = []
    ids = [t.id for t in plan.tasks]
    if len(ids) > max_tasks:
        bad.append(f"{len(ids)} tasks > max_tasks {max_tasks}")
    if len(set(ids)) != len(ids) or not all(isinstance(i, int) and 0 <= i < 10**9 for i in ids):
        bad.append(f"task ids not unique small ints: {ids[:20]}")
    known = set(ids)
    for t in plan.tasks:
        if not isinstance(t.task, str) or not t.task or len(t.task) > 60:
            bad.append(f"task {t.id}: bad type {t.task!r:.80}")
        if not all(isinstance(d, int) and d in known and d != t.id for d in t.dep):
            bad.append(f"task {t.id}: dep {t.dep} names absent tasks or itself")
        for rtype, values in t.args.items():
            if rtype not in RESOURCE_TYPES or not values:
                bad.append(f"task {t.id}: bad args key {rtype!r}")
            for v in values:
                if not isinstance(v, (str, Ref)):
                    bad.append(f"task {t.id}: arg of type {type(v).__name__}")
                elif isinstance(v, Ref) and t.error is None and (v.task_id not in known or v.task_id == t.id):
                    bad.append(f"task {t.id}: runnable task refers to absent task {v.task_id}")
        if t.error is not None and not _short(t.error):
            bad.append(f"task {t.id}: error message empty or too long ({len(t.error)} chars)")
    # every task that may run has an order: its deps are sortable (cycles carry errors)
    done: set[int] = set()
    pending = {t.id: set(t.dep) for t in plan.tasks}
    progress = True
    while progress:
        progress = False
        for tid, deps in list(pending.items()):
            if deps <= done:
                done.add(tid)
                del pending[tid]
                progress = True
    for tid in pending:
        if plan.get(tid).error is None:
            bad.append(f"task {tid} is on a cycle but carries no error")
    for r in plan.repairs:
        if not _short(r):
            bad.append(f"repair note empty or too long ({len(r)} chars)")
    try:
        json.dumps(plan.to_list())
    except (TypeError, ValueError) as exc:
        bad.append(f"plan not JSON-serialisable: {exc}")
    return bad


def run_plan_case(case: dict, max_tasks: int = MAX_TASKS) -> Outcome:
    start = time.perf_counter()
    try:
        plan = parse_plan(case["text"], max_tasks=max_tasks, files=FILES)
    except PlanError as exc:
        seconds = time.perf_counter() - start
        message = str(exc)
        if not _short(message):
            return Outcome(case["id"], "plan", "violation", seconds, f"refusal message length {len(message)}")
        if case.get("expect") == "plan":
            return Outcome(case["id"], "plan", "violation", seconds, f"expected a plan, got PlanError: {message}")
        return Outcome(case["id"], "plan", "refused", seconds, message)
    except Exception as exc:
        return Outcome(case["id"], "plan", "escaped", time.perf_counter() - start, f"{type(exc).__name__}: {exc}"[:300])
    seconds = time.perf_counter() - start
    problems = plan_problems(plan, max_tasks)
    errors = [t.error for t in plan.tasks if t.error]
    if case.get("expect") == "error":
        problems.append("expected PlanError, got a plan")
    if case.get("expect") == "plan" and not plan.tasks:
        problems.append("expected tasks, got an empty plan")
    if case.get("clean") and errors:
        problems.append(f"expected runnable tasks, got errors: {errors[:2]}")
    if case.get("task_error") and not any(re.search(case["task_error"], e) for e in errors):
        problems.append(f"expected a task error matching {case['task_error']!r}, got {errors[:2]}")
    if case.get("repair") and not any(case["repair"] in r for r in plan.repairs):
        problems.append(f"expected a repair note with {case['repair']!r}, got {plan.repairs[:3]}")
    if problems:
        return Outcome(case["id"], "plan", "violation", seconds, "; ".join(problems)[:500])
    status = "repaired" if plan.repairs or errors else "clean"
    return Outcome(case["id"], "plan", status, seconds, "; ".join(plan.repairs + errors)[:300])


def select_inputs(case: dict) -> tuple[Plan, dict[int, list]]:
    tasks = [Task(tid, name, [], {"text": ["some input"]}) for tid, name in sorted(case["tasks"].items())]
    cands = {tid: [SimpleNamespace(id=m) for m in ms] for tid, ms in case["candidates"].items()}
    return Plan(tasks=tasks), cands


def run_select_case(case: dict, llm) -> Outcome:
    """select_models with `llm` (a real LLM client whose scripted server answers case["text"])."""
    plan, cands = select_inputs(case)
    start = time.perf_counter()
    try:
        _parse_choices(case["text"])
        parse_seconds = time.perf_counter() - start
        choices = select_models(plan, "a request", cands, llm, Usage())
    except Exception as exc:
        return Outcome(case["id"], "select", "escaped", time.perf_counter() - start, f"{type(exc).__name__}: {exc}"[:300])
    problems = []
    for tid, ids in case["candidates"].items():
        choice = choices.get(tid)
        if choice is None:
            problems.append(f"task {tid}: no choice")
            continue
        if choice.model not in ids:
            problems.append(f"task {tid}: {choice.model!r:.80} is not a candidate")
        if not _short(choice.reason):
            problems.append(f"task {tid}: reason empty or too long")
        pick = case.get("pick")
        if pick is not None:
            want = pick.get(tid)
            if want is not None and choice.model != want:
                problems.append(f"task {tid}: expected {want}, got {choice.model}")
            if want is None and (choice.model != ids[0] or "top-ranked" not in choice.reason):
                problems.append(f"task {tid}: expected the top-ranked fallback, got {choice.model} ({choice.reason})")
    if problems:
        return Outcome(case["id"], "select", "violation", parse_seconds, "; ".join(problems)[:500])
    fell_back = any("top-ranked" in c.reason for c in choices.values())
    return Outcome(case["id"], "select", "repaired" if fell_back else "clean", parse_seconds,
                   "; ".join(c.reason for c in choices.values())[:300])
