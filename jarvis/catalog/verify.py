"""`python -m jarvis catalog verify [--task T] [--model ID] [--json]`: prove that the catalog's locally
runnable models load and run here.

Each model is loaded by its task's runner (downloaded first when it is not cached and the network is
on: huggingface_hub draws a progress bar per file on stderr), given one canned input of its task type
(jarvis.catalog.canned), and reported ok or failed with the error, the seconds to load and to run,
and its peak memory (the growth of this process's resident memory while it loaded and ran). Each
model is dropped before the next. Exit 1 when any model failed, 2 when there is nothing to verify.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import psutil

from jarvis.catalog.canned import canned_inputs
from jarvis.catalog.entries import DEFAULT_PATH, Catalog
from jarvis.errors import CatalogError, TaskError
from jarvis.execution.local import pick_device
from jarvis.runners.base import Device, RunContext
from jarvis.runners.options import RunOptions
from jarvis.runners.registry import TASK_TYPES, get, local_runner

# Small but real: a few generated tokens, two diffusion steps, a few video frames.
VERIFY_OPTIONS = RunOptions(max_new_tokens=16, diffusion_steps=2, video_frames=4, seed=0)


@dataclass
class Verified:
    """One model's verification, as `--json` prints it."""
    id: str
    task: str
    status: Literal["ok", "failed"]
    error: str | None
    load_s: float | None
    run_s: float | None
    peak_mb: float | None


class PeakMemory:
    """The growth of this process's resident memory over a with-block, sampled every 10 ms."""

    def __init__(self, interval: float = 0.01):
        self._process = psutil.Process()
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self.base = self.peak = 0

    def __enter__(self) -> PeakMemory:
        self.base = self.peak = self._process.memory_info().rss
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)

    def _sample(self) -> None:
        while not self._stop.wait(self._interval):
            self.peak = max(self.peak, self._process.memory_info().rss)

    @property
    def growth_mb(self) -> float:
        return round(max(0, self.peak - self.base) / 2 ** 20, 1)


def targets(catalog: Catalog, task: str | None = None, model: str | None = None) -> list[tuple[str, str]]:
    """(task, model id) pairs to verify: the model named (for its tasks in the catalog, or `task`), else
    every locally runnable model of `task`, else of every task type that has models of its own."""
    name = get(task).name if task else None
    if model:
        found = [(m.task, m.id) for m in catalog if m.id == model and (name is None or m.task == name)]
        if not found and name is not None:
            found = [(name, model)]
        if not found:
            raise CatalogError(f"{model} is not in the catalog {catalog.source}; name its task with --task "
                               "to verify it anyway")
        return list(dict.fromkeys(found))
    names = [name] if name else [t.name for t in TASK_TYPES.values() if t.local and t.needs_model and not t.models_of]
    pairs = [(n, m.id) for n in names for m in catalog.candidates(n, k=len(catalog), mode="local")]
    return list(dict.fromkeys(pairs))


def verify_one(task: str, model_id: str, device: Device, work: Path) -> Verified:
    """Load one model with its task's runner, run the canned input through it, and drop it."""
    runner = local_runner(task)
    ctx = RunContext(device=device, new_file=lambda stem, suffix: work / f"{stem}-{uuid.uuid4().hex[:8]}{suffix}",
                     options=VERIFY_OPTIONS)
    load_s = run_s = None
    error: str | None = None
    loaded: Any = None
    with PeakMemory() as memory, contextlib.redirect_stdout(sys.stderr):  # stdout is the report's
        start = time.perf_counter()
        try:
            loaded = runner.load(model_id, device)
            load_s = round(time.perf_counter() - start, 2)
            start = time.perf_counter()
            outputs = runner.run(loaded, canned_inputs(task, model_id, work), ctx)
            run_s = round(time.perf_counter() - start, 2)
            if not outputs.as_dict():
                error = "the model ran but produced no output"
        except Exception as exc:  # any failure is the finding; the next model is still verified
            if load_s is None:
                load_s = round(time.perf_counter() - start, 2)
            error = _first_line(exc)
        finally:
            del loaded
            gc.collect()
    return Verified(model_id, task, "failed" if error else "ok", error, load_s, run_s, memory.growth_mb)


def verify(catalog: Catalog, task: str | None = None, model: str | None = None, device: str = "auto",
           report: Any = None) -> list[Verified]:
    """Verify every target in turn; `report(result)` is told of each as it ends."""
    pairs = targets(catalog, task, model)
    if not pairs:
        raise CatalogError(f"the catalog {catalog.source} has no locally runnable model"
                           + (f" for {task}" if task else ""))
    chosen = pick_device(device)
    _import_libraries({TASK_TYPES[t].local_models.library for t, _ in pairs})
    results = []
    with tempfile.TemporaryDirectory(prefix="jarvis-verify-") as work:
        for task_name, model_id in pairs:
            result = verify_one(task_name, model_id, chosen, Path(work))
            results.append(result)
            if report is not None:
                report(result)
    return results


def _import_libraries(libraries: set[str]) -> None:
    """Import the heavy libraries (and their pipeline machinery, some 150 MB) before measuring, so the
    first model's memory figure is its own."""
    import torch  # noqa: F401
    from transformers import pipeline  # noqa: F401
    if "diffusers" in libraries:
        from diffusers import DiffusionPipeline  # noqa: F401
    if "skops" in libraries:
        import skops.io  # noqa: F401


def _first_line(exc: BaseException, limit: int = 300) -> str:
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else ""
    if not isinstance(exc, TaskError):
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text[:limit]


def _line(result: Verified) -> str:
    """One human-readable line of a result."""
    head = f"{result.status:<6} {result.task:<28} {result.id}"
    if result.status == "ok":
        return f"{head}  load {result.load_s:.2f} s, run {result.run_s:.2f} s, peak +{result.peak_mb:.0f} MB"
    return f"{head}  {result.error}"


def main(argv: list[str] | None = None) -> int:
    """CLI: one line per model as it ends (or one JSON list with --json); exit 1 when any failed."""
    parser = argparse.ArgumentParser(prog="python -m jarvis catalog verify",
                                     description="Load and run each locally runnable catalog model once.")
    parser.add_argument("--catalog", default=os.environ.get("JARVIS_CATALOG") or str(DEFAULT_PATH),
                        help="catalog file (default: $JARVIS_CATALOG, else the shipped one)")
    parser.add_argument("--task", help="verify the locally runnable models of this task type only")
    parser.add_argument("--model", help="verify this model only (for its tasks in the catalog, or --task)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    parser.add_argument("--json", action="store_true",
                        help='print a JSON list of {"id", "task", "status", "error", "load_s", "run_s", "peak_mb"}')
    args = parser.parse_args(argv)
    report = None if args.json else (lambda r: print(_line(r), flush=True))
    try:
        results = verify(Catalog.load(args.catalog), args.task, args.model, args.device, report)
    except (CatalogError, TaskError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    failed = sum(r.status == "failed" for r in results)
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2))
    else:
        print(f"{len(results) - failed} ok, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
