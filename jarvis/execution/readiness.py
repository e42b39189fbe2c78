"""What the local Hugging Face cache holds: whether a model is downloaded and its weights' size.

Hybrid mode asks it whether a model can run here without a download; the model cache asks it how
much room a load needs before loading. Reads the cache only: no network, no loading.
"""
from __future__ import annotations

from jarvis.catalog.facts import snapshot, weight_files


def cached_bytes(model_id: str) -> int | None:
    """Size of the model's cached weight files (following the cache's symlinks); None if not cached.
    Only the weights its loader reads count (jarvis.catalog.facts.weight_files): safetensors alone
    when a repo holds another format too, no precision variants, no single-file checkpoints beside a
    diffusers pipeline's folders."""
    snap = snapshot(model_id)
    if snap is None:
        return None
    names = [p.relative_to(snap).as_posix() for p in snap.rglob("*")]
    total = 0
    for name in weight_files(names)[1]:
        try:
            total += (snap / name).stat().st_size
        except OSError:
            continue
    return total
