"""Which models Inference Providers serve, from the Hub's inference provider mapping.

One look-up per model per expiry (remote.availability_ttl), shared by every thread: concurrent
askers wait for the look-up in flight instead of starting their own, look-ups run in parallel on a
small pool, and a caller waits at most its timeout (the look-up finishes in the background and is
cached). A failed look-up is remembered for a shorter time, so a down Hub is not probed per task.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from jarvis.config import RemoteConfig

log = logging.getLogger(__name__)

FAILED_TTL = 60.0   # seconds a failed look-up is remembered (capped by availability_ttl)

# Jarvis task type -> task names the Hub mapping may list for a model that can serve it
MAPPING_TASKS = {
    "conversational": {"conversational"},
    "text-generation": {"text-generation", "conversational"},
    "text2text-generation": {"text-generation", "text2text-generation"},
    "image-editing": {"image-to-image"},
    "image-to-text": {"image-to-text"},
}


@dataclass(frozen=True)
class Route:
    """One provider serving a model: provider name, the task it serves it for, live/staging/error."""
    provider: str
    task: str
    status: str
    provider_id: str = ""


def hub_fetch(token: str = "", timeout: float = 10.0) -> Callable[[str], list[Route]]:
    """The default look-up: HfApi.model_info(expand=["inferenceProviderMapping"])."""
    def fetch(model_id: str) -> list[Route]:
        from huggingface_hub import HfApi
        from huggingface_hub.errors import RepositoryNotFoundError
        try:
            info = HfApi().model_info(model_id, expand=["inferenceProviderMapping"], timeout=timeout,
                                      token=token or False)
        except RepositoryNotFoundError:
            return []
        return [Route(str(m.provider), str(m.task), str(m.status), str(m.provider_id))
                for m in (info.inference_provider_mapping or [])]
    return fetch


@dataclass
class _Entry:
    routes: list[Route] | None   # None: the look-up failed, availability unknown
    expires: float


class Availability:
    """Thread-safe, expiring cache of provider routes per model, filled by concurrent look-ups."""

    def __init__(self, config: RemoteConfig, token: str = "",
                 fetch: Callable[[str], list[Route]] | None = None, max_workers: int = 8,
                 clock: Callable[[], float] = time.monotonic):
        self.config = config
        self._lookup_timeout = min(10.0, float(config.timeout))
        self._fetch = fetch or hub_fetch(token, self._lookup_timeout)
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str, _Entry] = {}
        self._inflight: dict[str, Future[list[Route] | None]] = {}
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="jarvis-availability")
        self.lookups = 0   # look-ups started, for the record and the tests

    # -- configuration shortcuts -------------------------------------------------------
    def configured(self, task: str, model_id: str) -> bool:
        """A gateway or an endpoint is configured for this call: available without a look-up."""
        endpoints = self.config.endpoints or {}
        return bool(self.config.base_url or model_id in endpoints or task in endpoints)

    # -- look-ups ----------------------------------------------------------------------
    def _run(self, model_id: str) -> list[Route] | None:
        try:
            routes: list[Route] | None = list(self._fetch(model_id))
            ttl = float(self.config.availability_ttl)
        except Exception as exc:
            log.info("availability look-up for %s failed: %s", model_id, type(exc).__name__)
            routes, ttl = None, min(FAILED_TTL, float(self.config.availability_ttl))
        with self._lock:
            self._cache[model_id] = _Entry(routes, self._clock() + ttl)
            self._inflight.pop(model_id, None)
        return routes

    def _future(self, model_id: str) -> tuple[Future[list[Route] | None] | None, list[Route] | None]:
        """(future in flight, None) or (None, cached routes); starts at most one look-up per model."""
        with self._lock:
            entry = self._cache.get(model_id)
            if entry is not None and entry.expires > self._clock():
                return None, entry.routes
            future = self._inflight.get(model_id)
            if future is None:
                self.lookups += 1
                future = self._pool.submit(self._run, model_id)
                self._inflight[model_id] = future
            return future, None

    def lookup(self, model_ids: list[str], timeout: float | None = None) -> dict[str, list[Route] | None]:
        """Routes of each model (None when unknown: failed or still running after `timeout`)."""
        timeout = self._lookup_timeout if timeout is None else timeout
        results: dict[str, list[Route] | None] = {}
        pending: dict[str, Future[list[Route] | None]] = {}
        for model_id in dict.fromkeys(model_ids):
            future, routes = self._future(model_id)
            if future is None:
                results[model_id] = routes
            else:
                pending[model_id] = future
        if pending:
            wait(list(pending.values()), timeout=timeout)
            for model_id, future in pending.items():
                results[model_id] = future.result() if future.done() else None
        return results

    # -- answers -----------------------------------------------------------------------
    def routes_for(self, routes: list[Route], task: str | None) -> list[Route]:
        """The live routes serving `task` through the configured provider ("auto": any)."""
        wanted = MAPPING_TASKS.get(task, {task}) if task else None
        provider = self.config.provider or "auto"
        return [r for r in routes if r.status == "live" and (wanted is None or r.task in wanted)
                and (provider == "auto" or r.provider == provider)]

    def serves(self, model_id: str, task: str | None = None, timeout: float | None = None) -> bool | None:
        """True/False when known, None when the look-up failed or timed out."""
        if task and self.configured(task, model_id):
            return True
        routes = self.lookup([model_id], timeout)[model_id]
        if routes is None:
            return None
        return bool(self.routes_for(routes, task))

    def check(self, task: str, model_ids: list[str], timeout: float | None = None) -> dict[str, bool | None]:
        """serves() for many models at once, looked up concurrently within one timeout."""
        if all(self.configured(task, m) for m in model_ids):
            return dict.fromkeys(model_ids, True)
        found = self.lookup(model_ids, timeout)
        known: dict[str, bool | None] = {}
        for m in model_ids:
            routes = found[m]
            known[m] = True if self.configured(task, m) else None if routes is None else bool(self.routes_for(routes, task))
        return known

    def order(self, task: str, model_ids: list[str], timeout: float | None = None) -> tuple[list[str], list[str]]:
        """(models worth trying remotely, in the given order; models known not to be served)."""
        known = self.check(task, model_ids, timeout)
        return [m for m in model_ids if known[m] is not False], [m for m in model_ids if known[m] is False]

    def close(self) -> None:
        """Stop the look-up pool (look-ups in flight are abandoned)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
