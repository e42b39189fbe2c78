"""Reliability figures for issue 6: the hostile-LLM corpus through the real parser and selector,
and canary keys through the controller's error paths. Offline; a minute or so on two cores.

    python -m bench.reliability [--seed 6] [--hang-after 10] [--json]

Prints: cases tried, accepted as is, repaired, refused with a message, exceptions escaped,
expectation violations, hangs, max parse time; leak scenarios run, leaks found, keys misrouted.
Exit status 1 when any escaped exception, violation, hang, leak or misrouted key is found.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "HF_TOKEN"):
    os.environ.pop(var, None)


def _with_watchdog(fn, case, limit: float):
    """Run fn(case) in a daemon thread; None when it is still running after `limit` seconds (a hang)."""
    box: dict = {}
    worker = threading.Thread(target=lambda: box.setdefault("out", fn(case)), daemon=True)
    worker.start()
    worker.join(limit)
    return box.get("out")


def corpus_figures(seed: int, hang_after: float) -> dict:
    from jarvis.llm.client import LLM
    from tests.corpus.make_corpus import generate
    from tests.corpus.runner import run_plan_case, run_select_case
    from tests.fakes.llm_server import ScriptedLLM
    from tests.helpers import config_for

    cases = generate(seed)
    counts: Counter = Counter()
    by_kind: dict[str, Counter] = {"plan": Counter(), "select": Counter()}
    slowest = {"plan": (0.0, ""), "select": (0.0, "")}
    problems: list[str] = []
    current = {"text": ""}
    with ScriptedLLM(select=lambda messages: current["text"], honour_max_tokens=False) as server:
        llm = LLM(config_for(server.url))
        for case in cases:
            if case["kind"] == "plan":
                outcome = _with_watchdog(run_plan_case, case, hang_after)
            else:
                current["text"] = case["text"]
                outcome = _with_watchdog(lambda c: run_select_case(c, llm), case, hang_after)
            status = outcome.status if outcome else "hang"
            counts[status] += 1
            by_kind[case["kind"]][status] += 1
            if outcome and outcome.seconds > slowest[case["kind"]][0]:
                slowest[case["kind"]] = (outcome.seconds, case["id"])
            if status in ("escaped", "violation", "hang"):
                problems.append(f"{case['id']}: {status}: {outcome.detail if outcome else ''}")
    return {"cases": len(cases), "plan_cases": sum(by_kind["plan"].values()),
            "select_cases": sum(by_kind["select"].values()),
            "accepted": counts["clean"], "repaired": counts["repaired"], "refused": counts["refused"],
            "escaped": counts["escaped"], "violations": counts["violation"], "hangs": counts["hang"],
            "max_parse_seconds": {k: round(v[0], 4) for k, v in slowest.items()},
            "slowest_case": {k: v[1] for k, v in slowest.items()},
            "by_kind": {k: dict(v) for k, v in by_kind.items()}, "problems": problems[:20]}


def leak_figures() -> dict:
    from jarvis.pipeline.controller import Controller
    from tests.corpus.leakscan import SCENARIOS, Canaries, leaks, misrouted, run_scenario
    from tests.helpers import config_for

    controller = Controller(config_for("http://127.0.0.1:9/v1"))
    found: list[str] = []
    wrong: list[str] = []
    places = 0
    with tempfile.TemporaryDirectory(prefix="jarvis-leakscan-") as tmp:
        for name in SCENARIOS:
            canaries = Canaries()
            art = run_scenario(name, controller, Path(tmp) / name, canaries)
            places += len(art.texts) + sum(1 for r in art.roots for p in Path(r).rglob("*") if p.is_file())
            found += leaks(art, canaries)
            wrong += misrouted(art, canaries)
            if "escaped exception" in art.texts:
                found.append(f"{name}: exception escaped: {art.texts['escaped exception'][:200]}")
    return {"scenarios": len(SCENARIOS), "places_scanned": places, "leaks": len(found), "misrouted": len(wrong),
            "details": (found + wrong)[:20]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=6)
    p.add_argument("--hang-after", type=float, default=10.0, help="seconds after which one case counts as a hang")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = p.parse_args(argv)
    start = time.perf_counter()
    corpus = corpus_figures(args.seed, args.hang_after)
    secrets = leak_figures()
    seconds = round(time.perf_counter() - start, 1)
    if args.json:
        print(json.dumps({"corpus": corpus, "secrets": secrets, "seconds": seconds}, indent=2))
    else:
        mp = corpus["max_parse_seconds"]
        print(f"LLM-output corpus (seed {args.seed}): {corpus['cases']} cases tried "
              f"({corpus['plan_cases']} plans, {corpus['select_cases']} model selections)")
        print(f"  accepted as is:             {corpus['accepted']}")
        print(f"  repaired:                   {corpus['repaired']}")
        print(f"  refused with a message:     {corpus['refused']}")
        print(f"  exceptions escaped:         {corpus['escaped']}")
        print(f"  expectation violations:     {corpus['violations']}")
        print(f"  hangs (> {args.hang_after:g} s):            {corpus['hangs']}")
        print(f"  max parse time:             plan {mp['plan'] * 1000:.1f} ms ({corpus['slowest_case']['plan']}), "
              f"selection {mp['select'] * 1000:.1f} ms")
        print(f"Secrets: {secrets['scenarios']} canary scenarios, {secrets['places_scanned']} outputs and files scanned")
        print(f"  leaks found:                {secrets['leaks']}")
        print(f"  keys sent to the wrong endpoint: {secrets['misrouted']}")
        for line in corpus["problems"] + secrets["details"]:
            print(f"  ! {line}")
        print(f"({seconds} s)")
    bad = corpus["escaped"] + corpus["violations"] + corpus["hangs"] + secrets["leaks"] + secrets["misrouted"]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
