"""The cache of loaded models: an LRU under a memory budget, shared by every session of the process.

Models are not user data, so one cache serves every session: a model is loaded once, reused across
requests, and the least recently used one is evicted when the cache passes its memory budget. A
load that needs room waits for models in use rather than overshoot the budget. Calls to one loaded
model are serialized (its lock); different models run in parallel. A model that failed to load is
remembered for a while (LoadFailures), so later tasks and requests skip it instead of failing again.
"""
from __future__ import annotations

import gc
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from jarvis.errors import ModelSkippedError

log = logging.getLogger(__name__)

CacheKey = tuple[str, str]   # (model family, model id): one load serves every task type of a family
FAILED_LOAD_TTL = 600.0      # seconds a failed load is remembered: long enough to spare the next requests,
                             # short enough that a download that comes back or freed memory is retried


def machine_threads() -> int:
    """The physical cores this process may run on: more threads than that only take turns."""
    import psutil
    cores = psutil.cpu_count(logical=False) or os.cpu_count() or 1
    allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    return max(1, min(cores, allowed))


def cap_threads(threads: int) -> None:
    """Set torch's CPU threads (a process-wide setting) to local.threads (0: the physical cores)
    before a load: in effect once, at the first, unless something changed it since. Local models and
    the embedded LLM all run under it."""
    want = threads or machine_threads()
    import torch
    if torch.get_num_threads() != want:
        torch.set_num_threads(want)
        log.info("torch runs on %d CPU thread(s) (local.threads)", want)


class LoadFailures:
    """Loads that failed, each remembered for `ttl` seconds; thread-safe."""

    def __init__(self, ttl: float = FAILED_LOAD_TTL, clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl
        self._clock = clock
        self._failed: dict[CacheKey, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def remember(self, key: CacheKey, error: str | BaseException, ago: float = 0.0) -> None:
        """Remember the key's failed load: the message, or an exception's first line; `ago`, the seconds
        since it failed, for a failure another process saw first (a Ray replica's), so that it is
        forgotten when that process forgets it."""
        reason = error if isinstance(error, str) else _first_line(error)
        with self._lock:
            self._failed[key] = (self._clock() - ago, reason)

    def forget(self, key: CacheKey) -> None:
        with self._lock:
            self._failed.pop(key, None)

    def recent(self, key: CacheKey) -> tuple[float, str] | None:
        """(seconds since, error) of the key's failed load while it is remembered; None otherwise."""
        with self._lock:
            found = self._failed.get(key)
            if found is None:
                return None
            ago = self._clock() - found[0]
            if ago >= self.ttl:
                del self._failed[key]
                return None
            return ago, found[1]

    def check(self, key: CacheKey) -> None:
        """Raise ModelSkippedError when the key failed to load a short while ago."""
        found = self.recent(key)
        if found is not None:
            ago, error = found
            raise ModelSkippedError(f"skipped: {key[1]} failed to load {ago:.0f} s ago ({error}); it is tried "
                                    f"again after {self.ttl - ago:.0f} s")


def estimate_bytes(obj: Any, _seen: set[int] | None = None) -> int:
    """Bytes of the torch parameters and buffers reachable from a loaded object."""
    seen = _seen if _seen is not None else set()
    if id(obj) in seen or obj is None:
        return 0
    seen.add(id(obj))
    import torch
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
    key: CacheKey
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

    def __init__(self, budget_bytes: int, failures: LoadFailures | None = None, threads: int | None = None):
        self.budget = int(budget_bytes)
        self.threads = threads        # torch's CPU threads, set at the first load (None: torch is left alone)
        self._entries: OrderedDict[CacheKey, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._admit = threading.Lock()
        self.stats = CacheStats()
        self.failures = failures or LoadFailures()

    def __contains__(self, key: object) -> bool:
        with self._lock:
            entry = self._entries.get(key) if isinstance(key, tuple) else None
            return bool(entry and entry.ready.is_set() and entry.error is None)

    def keys(self) -> list[CacheKey]:
        with self._lock:
            return list(self._entries)

    def used_bytes(self) -> int:
        with self._lock:
            return sum(e.nbytes for e in self._entries.values())

    def sizes(self) -> dict[CacheKey, int]:
        """Bytes each cached model holds (its reservation while it loads)."""
        with self._lock:
            return {key: entry.nbytes for key, entry in self._entries.items()}

    def get(self, key: CacheKey, loader: Callable[[], Any], expected_bytes: int = 0) -> _Entry:
        """The loaded entry for key, loading it once even when many threads ask at the same time.
        `expected_bytes` (the weights' size on disk) makes room before the load, not after.
        A key whose load failed a short while ago raises ModelSkippedError without loading."""
        with self._lock:
            if key not in self._entries:
                self.failures.check(key)
            found = self._entries.get(key)
            if found is None:
                entry = self._entries[key] = _Entry(key)
            else:
                entry = found
                self._entries.move_to_end(key)
                self.stats.hits += 1
        if found is not None:
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
            if self.threads is not None:
                cap_threads(self.threads)
            entry.loaded = loader()
            entry.nbytes = estimate_bytes(entry.loaded)
        except BaseException as exc:
            entry.error = exc
            with self._lock:
                self._entries.pop(key, None)
            if isinstance(exc, Exception):
                self.failures.remember(key, exc)
            entry.ready.set()
            raise
        self.failures.forget(key)
        with self._lock:
            self.stats.loads += 1
            self.stats.load_seconds += time.perf_counter() - start
        entry.ready.set()
        self._evict(keep=key, need=entry.nbytes)
        return entry

    @contextmanager
    def using(self, key: CacheKey, loader: Callable[[], Any], expected_bytes: int = 0) -> Iterator[Any]:
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

    def _in_use(self, keep: CacheKey) -> bool:
        with self._lock:
            return any(e.lock.locked() or (not e.ready.is_set() and e.nbytes)
                       for k, e in self._entries.items() if k != keep)

    def _evict(self, keep: CacheKey, need: int = 0) -> int:
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
            free_memory()
        return total

    def clear(self) -> None:
        """Drop every loaded model (those in use stay with their callers until they finish)."""
        with self._lock:
            had = bool(self._entries)
            self._entries.clear()
        if had:
            free_memory()


def _first_line(exc: BaseException, limit: int = 200) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:limit]


def free_memory() -> None:
    """Give the memory of dropped models back: Python's garbage, then CUDA's cached blocks (torch is
    already imported: only loaded models are dropped)."""
    gc.collect()
    import torch
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
