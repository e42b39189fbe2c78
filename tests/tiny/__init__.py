"""Tiny, randomly initialised models saved under real Hub ids into a temporary HF cache.

Each modality module registers builders with `@builder("org/name", ...)`. A builder gets an
empty snapshot directory and writes the model there with `save_pretrained` (processor,
tokenizer and configs beside it), so the real loading code runs unchanged offline.
`build_all(cache)` builds every registered model once per test session.
"""
from __future__ import annotations

import hashlib
import importlib
import time
from collections.abc import Callable
from pathlib import Path

BUILDERS: dict[str, Callable[[Path], None]] = {}
MODULES = ("text", "vision", "audio", "diffusion", "llm")


def builder(*repo_ids: str):
    """Register fn(snapshot_dir) as the builder of these repo ids (the same files under each)."""
    def wrap(fn):
        for repo_id in repo_ids:
            BUILDERS[repo_id] = fn
        return fn
    return wrap


def snapshot_dir(cache: Path, repo_id: str) -> Path:
    """The HF cache layout: models--ORG--NAME/refs/main holds a commit; files live in snapshots/COMMIT."""
    folder = Path(cache) / ("models--" + repo_id.replace("/", "--"))
    commit = hashlib.sha1(repo_id.encode()).hexdigest()
    snap = folder / "snapshots" / commit
    snap.mkdir(parents=True, exist_ok=True)
    (folder / "refs").mkdir(exist_ok=True)
    (folder / "refs" / "main").write_text(commit)
    return snap


def load_modules() -> None:
    for name in MODULES:
        try:
            importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise


def build_all(cache: Path, only: set[str] | None = None) -> dict[str, float]:
    """Build every registered tiny model into `cache`; returns seconds spent per repo id."""
    load_modules()
    seconds: dict[str, float] = {}
    done: dict[Callable, Path] = {}
    for repo_id, fn in BUILDERS.items():
        if only is not None and repo_id not in only:
            continue
        start = time.perf_counter()
        snap = snapshot_dir(cache, repo_id)
        if fn in done:  # same files under another id: copy instead of rebuilding
            import shutil
            shutil.copytree(done[fn], snap, dirs_exist_ok=True)
        else:
            fn(snap)
            done[fn] = snap
        seconds[repo_id] = time.perf_counter() - start
    return seconds
