"""Local execution: runners on this machine, with a process-wide cache of loaded models.

Models are not user data, so one cache serves every session: a model is loaded once, reused
across requests, and the least recently used one is evicted when the cache passes its memory
budget. Calls to one loaded model are serialized (its lock); different models run in parallel.
"""
from __future__ import annotations

import gc
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jarvis.runners.base import Device, RunContext, TaskError, TaskInputs, TaskOutputs
from jarvis.runners.local import get_runner

log = logging.getLogger(__name__)

# Loads run one at a time: transformers' lazy module imports are not safe when two threads
# touch a submodule for the first time together, and on a small machine parallel loads gain little.
_LOAD_LOCK = threading.Lock()


def pick_device(preference: str = "auto") -> Device:
    """CUDA if present, else Apple MPS, else CPU; half precision only on a GPU."""
    if preference == "cpu":
        return Device("cpu", False)
    import torch
    if preference in ("auto", "cuda") and torch.cuda.is_available():
        return Device("cuda", True)
    mps = getattr(torch.backends, "mps", None)
    if preference in ("auto", "mps") and mps is not None and mps.is_available():
        return Device("mps", True)
    return Device("cpu", False)


def estimate_bytes(obj: Any, _seen: set | None = None) -> int:
    """Bytes of the torch parameters and buffers reachable from a loaded object."""
    seen = _seen if _seen is not None else set()
    if id(obj) in seen or obj is None:
        return 0
    seen.add(id(obj))
    try:
        import torch
    except ImportError:  # pragma: no cover
        return 0
    if isinstance(obj, torch.nn.Module):
        tensors = list(obj.parameters()) + list(obj.buffers())
        return sum(t.numel() * t.element_size() for t in tensors)
    if isinstance(obj, dict):
        return sum(estimate_bytes(v, seen) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(estimate_bytes(v, seen) for v in obj)
    components = getattr(obj, "components", None)  # diffusers pipelines
    if isinstance(components, dict):
        return estimate_bytes(components, seen)
    model = getattr(obj, "model", None)  # transformers pipelines
    if model is not None:
        return estimate_bytes(model, seen)
    return 0


@dataclass
class _Entry:
    key: tuple[str, str]
    loaded: Any = None
    nbytes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)   # serializes calls to the model
    ready: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None
    evicted: bool = False


@dataclass
class CacheStats:
    loads: int = 0
    load_seconds: float = 0.0
    evictions: int = 0
    hits: int = 0


class ModelCache:
    """LRU of loaded models under a memory budget (bytes)."""

    def __init__(self, budget_bytes: int):
        self.budget = int(budget_bytes)
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._admit = threading.Lock()
        self.stats = CacheStats()

    def __contains__(self, key) -> bool:
        with self._lock:
            entry = self._entries.get(key)
            return bool(entry and entry.ready.is_set() and entry.error is None)

    def keys(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._entries)

    def used_bytes(self) -> int:
        with self._lock:
            return sum(e.nbytes for e in self._entries.values())

    def get(self, key: tuple[str, str], loader: Callable[[], Any], expected_bytes: int = 0) -> _Entry:
        """The loaded entry for key, loading it once even when many threads ask at the same time.
        `expected_bytes` (the weights' size on disk) makes room before the load, not after."""
        with self._lock:
            entry = self._entries.get(key)
            owner = entry is None
            if owner:
                entry = _Entry(key)
                self._entries[key] = entry
            else:
                self._entries.move_to_end(key)
                self.stats.hits += 1
        if not owner:
            entry.ready.wait()
            if entry.error is not None:
                raise entry.error
            return entry
        if expected_bytes:
            # make room first, one admission at a time; while models in use hold the memory, wait for
            # them rather than overshoot the budget. The reservation stands until the real size is known.
            with self._admit:
                deadline = time.monotonic() + 600
                while self._evict(keep=key, need=expected_bytes) > self.budget and self._in_use(key) \
                        and time.monotonic() < deadline:
                    time.sleep(0.02)
                entry.nbytes = expected_bytes
        start = time.perf_counter()
        try:
            entry.loaded = loader()
            entry.nbytes = estimate_bytes(entry.loaded)
        except BaseException as exc:
            entry.error = exc
            with self._lock:
                self._entries.pop(key, None)
            entry.ready.set()
            raise
        with self._lock:
            self.stats.loads += 1
            self.stats.load_seconds += time.perf_counter() - start
        entry.ready.set()
        self._evict(keep=key, need=entry.nbytes)
        return entry

    @contextmanager
    def using(self, key: tuple[str, str], loader: Callable[[], Any], expected_bytes: int = 0):
        """The loaded model, held (pinned against eviction, calls serialized) for the with-block."""
        while True:
            entry = self.get(key, loader, expected_bytes)
            entry.lock.acquire()
            with self._lock:
                alive = self._entries.get(key) is entry and not entry.evicted
            if alive:
                break
            entry.lock.release()   # evicted between load and use: load again
        try:
            yield entry.loaded
        finally:
            entry.lock.release()

    def _in_use(self, keep: tuple[str, str]) -> bool:
        with self._lock:
            return any(e.lock.locked() or (not e.ready.is_set() and e.nbytes)
                       for k, e in self._entries.items() if k != keep)

    def _evict(self, keep: tuple[str, str], need: int = 0) -> int:
        """Drop least recently used models (not in use) until the cache, plus `need`, fits its budget."""
        dropped = []
        with self._lock:
            total = sum(e.nbytes for k, e in self._entries.items() if k != keep) + need
            for key in list(self._entries):
                if total <= self.budget:
                    break
                entry = self._entries[key]
                if key == keep or not entry.ready.is_set() or not entry.lock.acquire(blocking=False):
                    continue
                try:
                    del self._entries[key]
                    total -= entry.nbytes
                    entry.loaded = None
                    entry.evicted = True
                    self.stats.evictions += 1
                    dropped.append(key)
                finally:
                    entry.lock.release()
        if dropped:
            log.info("evicted %s to stay under the memory budget", ", ".join(m for _, m in dropped))
        self._collect(dropped)
        return total

    @staticmethod
    def _collect(dropped: list) -> None:
        if dropped:
            gc.collect()
            try:
                import torch
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
            except ImportError:  # pragma: no cover
                pass

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
        gc.collect()


def _weights_bytes(model_id: str) -> int:
    """Size of a cached model's weight files (safetensors preferred), 0 when unknown."""
    try:
        from huggingface_hub import try_to_load_from_cache
        for name in ("config.json", "model_index.json"):
            found = try_to_load_from_cache(model_id, name)
            if isinstance(found, str):
                root = Path(found).parent
                files = list(root.rglob("*.safetensors")) or list(root.rglob("*.bin"))
                return sum(f.stat().st_size for f in files)
    except Exception:
        pass
    return 0


def _is_downloaded(model_id: str) -> bool:
    """Whether the model's repo is already in the Hugging Face cache (no download needed)."""
    if not model_id or model_id == "builtin":
        return True
    try:
        from huggingface_hub import scan_cache_dir, try_to_load_from_cache
        for name in ("config.json", "model_index.json", "preprocessor_config.json"):
            if isinstance(try_to_load_from_cache(model_id, name), str):
                return True
        return any(repo.repo_id == model_id for repo in scan_cache_dir().repos)
    except Exception:
        return False


class LocalExecutor:
    """Runs a task on a local model through its runner; shared by every session."""
    name = "local"

    def __init__(self, device: str = "auto", memory_budget_gb: float = 8.0, options: dict | None = None):
        self._device_pref = device
        self._device: Device | None = None
        self.cache = ModelCache(int(memory_budget_gb * 1024 ** 3))
        self.options = dict(options or {})

    @property
    def device(self) -> Device:
        if self._device is None:
            self._device = pick_device(self._device_pref)
        return self._device

    def is_loaded(self, task: str, model_id: str) -> bool:
        return (self._cache_key(task, model_id)) in self.cache

    @staticmethod
    def _cache_key(task: str, model_id: str) -> tuple[str, str]:
        try:
            family = getattr(get_runner(task), "family", task)
        except TaskError:
            family = task
        return (family, model_id)

    def _entry(self, task: str, model_id: str, ctx: RunContext):
        runner = get_runner(task)
        key = (getattr(runner, "family", task), model_id)
        device = self.device
        if key not in self.cache:
            where = "from the local cache" if _is_downloaded(model_id) else "downloading it first (one time)"
            ctx.progress(f"loading {model_id} on {device.name}, {where}")

        def load():
            try:
                with _LOAD_LOCK:
                    started = time.perf_counter()
                    loaded = runner.load(model_id, device)
                ctx.progress(f"loaded {model_id} in {time.perf_counter() - started:.1f} s")
                return loaded
            except TaskError:
                raise
            except OSError as exc:
                raise TaskError(
                    f"could not load {model_id}: {str(exc).splitlines()[0][:300]} "
                    "(is it downloaded, or is the network reachable?)") from exc
            except MemoryError as exc:
                raise TaskError(f"not enough memory to load {model_id}; lower local.memory_budget_gb "
                                "or use remote mode") from exc
        ctx.device = device
        ctx.options = {**self.options, **ctx.options}
        return runner, key, load

    def _use(self, key, load, model_id: str):
        expected = 0 if key in self.cache else _weights_bytes(model_id)
        return self.cache.using(key, load, expected)

    def run(self, task: str, model_id: str, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        runner, key, load = self._entry(task, model_id, ctx)
        with self._use(key, load, model_id) as loaded:
            return runner.run(loaded, inputs, ctx)

    def run_batch(self, task: str, model_id: str, batch: list[TaskInputs], ctx: RunContext) -> list[TaskOutputs]:
        """Several inputs through one model call, for runners that batch (e.g. text-to-image prompts)."""
        runner, key, load = self._entry(task, model_id, ctx)
        with self._use(key, load, model_id) as loaded:
            outputs = runner.run_batch(loaded, batch, ctx)
        if len(outputs) != len(batch):
            raise TaskError(f"{model_id} returned {len(outputs)} results for {len(batch)} inputs")
        return outputs
