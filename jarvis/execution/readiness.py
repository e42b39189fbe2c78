"""Hybrid mode's question: can this task run here right now, without a download?

Yes when a local runner exists for the task and the model is loaded, or its files are in the local
Hugging Face cache and fit the local memory budget. Reads the cache only: no network, no loading.
"""
from __future__ import annotations

from pathlib import Path

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".onnx", ".msgpack", ".h5")
MARKER_FILES = ("config.json", "model_index.json", "preprocessor_config.json", "tokenizer_config.json")


def _snapshot(model_id: str) -> Path | None:
    """The cached snapshot of a model repo (its main revision), or None when it is not cached."""
    from huggingface_hub import try_to_load_from_cache
    for name in MARKER_FILES:
        try:
            found = try_to_load_from_cache(model_id, name)
        except Exception:
            return None
        if isinstance(found, str):
            return Path(found).parent
    from huggingface_hub import constants
    folder = Path(constants.HF_HUB_CACHE) / ("models--" + model_id.replace("/", "--")) / "snapshots"
    try:
        snaps = [p for p in folder.iterdir() if p.is_dir() and any(p.iterdir())]
    except OSError:
        return None
    return max(snaps, key=lambda p: p.stat().st_mtime) if snaps else None


def cached_bytes(model_id: str) -> int | None:
    """Size of the model's cached weight files (following the cache's symlinks); None if not cached."""
    snap = _snapshot(model_id)
    if snap is None:
        return None
    total = 0
    for path in snap.rglob("*"):
        if path.name.endswith(WEIGHT_SUFFIXES):
            try:
                total += path.stat().st_size
            except OSError:
                continue
    return total


def local_ready(local, task: str, model_id: str) -> bool:
    """True when `local` (a LocalExecutor) can run task on model_id without downloading it."""
    from jarvis.runners.local import has_local_runner
    if local is None or not has_local_runner(task):
        return False
    try:
        if local.is_loaded(task, model_id):
            return True
    except Exception:
        return False
    size = cached_bytes(model_id)
    if size is None:
        return False
    budget = getattr(getattr(local, "cache", None), "budget", None)
    return budget is None or size <= budget
