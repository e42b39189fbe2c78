"""What a Gradio Space call costs over a direct Inference Providers call (issue 14), both against
loopback stand-ins: the same text-to-speech task through SpaceExecutor (gradio_client to a real
Gradio app, tests/fakes/gradio_space.py) and through RemoteExecutor (InferenceClient to the loopback
inference service, tests/fakes/inference_server.py). Offline; about a minute on two cores.

    python -m bench.spaces [--calls 30] [--json]

"first call of a run": a fresh executor each time (a run's first task: the Space's client connects,
reading the app's config and API description). "later calls": one executor for every call.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from jarvis.config import RemoteConfig
from jarvis.execution.remote import RemoteExecutor
from jarvis.execution.spaces import SpaceExecutor, SpaceRoute
from jarvis.files.store import ResourceStore
from jarvis.runners.base import Device, RunContext, TaskInputs
from tests.fakes.gradio_space import LoopbackSpace
from tests.fakes.inference_server import InferenceServer

TASK, MODEL, SPACE_ID, TOKEN = "text-to-speech", "facebook/mms-tts-eng", "spaces/loopback/speaker", "hf_bench"


def timed(calls: int, make: Callable[[], object], fresh: bool, ctx: RunContext) -> list[float]:
    """Milliseconds per call; `fresh`: a new executor (closed after) for each call."""
    out = []
    executor = None if fresh else make()
    for i in range(calls + 1):
        ex = make() if fresh else executor
        start = time.perf_counter()
        ex.run(TASK, SPACE_ID if isinstance(ex, SpaceExecutor) else MODEL, TaskInputs(text=[f"hello number {i}"]), ctx)
        elapsed = (time.perf_counter() - start) * 1000
        if fresh:
            ex.close()
        if i:                      # the very first call warms both servers up; not counted
            out.append(elapsed)
    if executor is not None:
        executor.close()
    return out


def summary(ms: list[float]) -> dict[str, float]:
    ms = sorted(ms)
    return {"median_ms": round(statistics.median(ms), 1), "p90_ms": round(ms[int(0.9 * (len(ms) - 1))], 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    store = ResourceStore(tempfile.mkdtemp(prefix="jarvis-bench-spaces-"))
    ctx = RunContext(device=Device(), new_file=store.new_path)
    figures: dict[str, dict[str, float]] = {}
    with LoopbackSpace() as space, InferenceServer(token=TOKEN) as service:
        config = RemoteConfig(base_url=service.url, timeout=30, max_retries=0)
        makers = {"remote": lambda: RemoteExecutor(config, TOKEN),
                  "space": lambda: SpaceExecutor({(TASK, SPACE_ID): SpaceRoute(space.url, "/speak")}, config, TOKEN)}
        for fresh, label in ((True, "first call of a run"), (False, "later calls")):
            for name, make in makers.items():
                figures[f"{name}, {label}"] = summary(timed(args.calls, make, fresh, ctx))
    store.cleanup()
    for label in ("first call of a run", "later calls"):
        added = figures[f"space, {label}"]["median_ms"] - figures[f"remote, {label}"]["median_ms"]
        figures[f"space adds, {label}"] = {"median_ms": round(added, 1)}
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        for key, value in figures.items():
            print(f"{key:36s} " + "  ".join(f"{k} {v:7.1f}" for k, v in value.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
