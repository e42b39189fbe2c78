"""What the local Hugging Face cache holds: whether a model is downloaded and its weights' size.

Hybrid mode asks it whether a model can run here without a download; the model cache asks it how
much room a load needs before loading. Reads the cache only: no network, no loading.
"""
from __future__ import annotations

import logging
from pathlib import Path

from huggingface_hub import constants, try_to_load_from_cache

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".onnx", ".msgpack", ".h5")
MARKER_FILES = ("config.json", "model_index.json", "preprocessor_config.json", "tokenizer_config.json")

log = logging.getLogger(__name__)


def _snapshot(model_id: str) -> Path | None:
    """The cached snapshot of a model repo (its main revision), or None when it is not cached."""
    for name in MARKER_FILES:
        try:
            found = try_to_load_from_cache(model_id, name)
        except Exception as exc:  # an id the hub library refuses (bad characters): not cached
            log.debug("cache look-up for %r failed: %s", model_id, exc)
            return None
        if isinstance(found, str):
            return Path(found).parent
    folder = Path(constants.HF_HUB_CACHE) / ("models--" + model_id.replace("/", "--")) / "snapshots"
    try:
        snaps = [p for p in folder.iterdir() if p.is_dir() and any(p.iterdir())]
    except OSError:
        return None
    return max(snaps, key=lambda p: p.stat().st_mtime) if snaps else None


def cached_bytes(model_id: str) -> int | None:
    """Size of the model's cached weight files (following the cache's symlinks); None if not cached.
    When a repo holds its weights as safetensors and in another format too, safetensors count alone:
    that is what gets loaded."""
    snap = _snapshot(model_id)
    if snap is None:
        return None
    weights = [p for p in snap.rglob("*") if p.name.endswith(WEIGHT_SUFFIXES)]
    safetensors = [p for p in weights if p.suffix == ".safetensors"]
    total = 0
    for path in safetensors or weights:
        try:
            total += path.stat().st_size
        except OSError:
            continue
    return total
