"""The Ray Serve deployment that runs local models: the same runners as in-process, in replicas.

Each replica loads models by id through Serve's model multiplexing (`serve.multiplexed`): requests for
a model go to the replicas that hold it, and a replica keeps `ray_models_per_replica` models, the least
recently used dropped first. On top of that count, a replica keeps its loaded models within
`local.memory_budget_gb`: it drops older models to make room (each drop reported in the task's progress
and in the replica's `stats()`), and refuses a model larger than the whole budget with a message that
says what to change. A model that failed to load on a replica is remembered there for a while, as the
in-process cache does (LoadFailures): tasks on it fail at once with the remembered reason, and the
dispatcher moves on to the next candidate. A replica runs one task at a time (a model call uses its
CPUs or GPU fully); more replicas run more tasks at once.

The multiplexed id is the model cache's key, "FAMILY|MODEL": task types of one family share a load.
Ray is imported inside `build_app` only, so importing this module costs nothing without Ray.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import shutil
import tempfile
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jarvis.config import LocalConfig
from jarvis.errors import ModelSkippedError, TaskError
from jarvis.execution.local import pick_device
from jarvis.execution.model_cache import FAILED_LOAD_TTL, CacheKey, LoadFailures, estimate_bytes, free_memory
from jarvis.execution.ray.lazy import import_ray, import_serve
from jarvis.execution.ray.wire import WireOutputs, WireRequest, WireResult, pack_outputs, unpack_inputs
from jarvis.execution.readiness import cached_bytes
from jarvis.runners.base import Device, RunContext, Runner
from jarvis.runners.options import RunOptions
from jarvis.runners.registry import local_runner

log = logging.getLogger(__name__)

APP = "jarvis"                    # the Serve application's name
DEPLOYMENT = "JarvisModels"       # its one deployment
GiB = 1024 ** 3


@dataclass(frozen=True)
class ReplicaSettings:
    """What every replica is built with (from config.yaml's `local` section)."""
    device: str = "auto"
    budget_bytes: int = 8 * GiB
    options: RunOptions = field(default_factory=RunOptions)
    models_per_replica: int = 3
    replicas: int = 1
    max_replicas: int = 0          # 0: exactly `replicas`; more: autoscaling between the two
    cpus: float = 1.0
    gpus: float = 0.0
    failed_load_ttl: float = FAILED_LOAD_TTL     # seconds a replica remembers a model that failed to load

    @classmethod
    def from_config(cls, local: LocalConfig) -> ReplicaSettings:
        return cls(local.device, int(local.memory_budget_gb * GiB),
                   RunOptions(max_new_tokens=local.max_new_tokens, diffusion_steps=local.diffusion_steps),
                   local.ray_models_per_replica, local.ray_replicas, local.ray_max_replicas,
                   local.ray_cpus_per_replica, local.ray_gpus_per_replica)

    def deployment_options(self) -> dict[str, Any]:
        """The Serve deployment's options: replicas or autoscaling, resources, one request at a time."""
        scale: dict[str, Any] = {"num_replicas": self.replicas}
        if self.max_replicas > self.replicas:
            scale = {"autoscaling_config": {"min_replicas": self.replicas, "max_replicas": self.max_replicas,
                                            "target_ongoing_requests": 1}}
        return {"name": DEPLOYMENT, "max_ongoing_requests": 1, "graceful_shutdown_timeout_s": 5,
                "ray_actor_options": {"num_cpus": self.cpus, "num_gpus": self.gpus}, **scale}


def _size(nbytes: int) -> str:
    return f"{nbytes / GiB:.1f} GiB" if nbytes >= GiB else f"{nbytes / 1024 ** 2:.1f} MiB"


def too_big(model_id: str, nbytes: int, budget: int) -> str:
    return (f"{model_id} needs {_size(nbytes)}, more than a Ray replica's memory budget ({_size(budget)}, "
            "local.memory_budget_gb): raise the budget where the replicas' machines have the memory, "
            "pick a smaller model, or use remote mode")


class Held:
    """A loaded model in a replica; Serve's multiplexer calls `__del__` when it drops the model."""

    def __init__(self, key: str, loaded: Any, nbytes: int, release: Callable[[str, Held], None]):
        self.key, self.loaded, self.nbytes = key, loaded, nbytes
        self._release = release

    def __del__(self) -> None:
        self._release(self.key, self)
        self.loaded = None


@dataclass
class Serving:
    """The request being served, for the multiplexed loader (which is handed only the model id): the
    runner that loads its model, and the progress lines the replica sends back with the answer."""
    runner: Runner
    progress: list[str]


_SERVING: ContextVar[Serving] = ContextVar("jarvis_ray_serving")


def cache_key(key: str) -> CacheKey:
    """The model cache's key of a multiplexed id "FAMILY|MODEL"."""
    family, model_id = key.split("|", 1)
    return family, model_id


class ReplicaModels:
    """One replica's loading and running, apart from Serve's decorators (which `build_app` adds)."""

    def __init__(self, settings: ReplicaSettings, runners: Mapping[str, Runner] | None = None):
        self.settings = settings
        self.runners = dict(runners or {})
        self.device: Device = pick_device(settings.device)
        self.held: OrderedDict[str, int] = OrderedDict()      # loaded key -> bytes, oldest first
        self.failures = LoadFailures(settings.failed_load_ttl)
        self.loads: Counter[str] = Counter()                  # key -> loads tried (failed ones too)
        self.unloaded: deque[tuple[str, str]] = deque(maxlen=100)   # (key dropped, key it made room for)
        self._lock = threading.Lock()

    def runner(self, task: str) -> Runner:
        return self.runners.get(task) or local_runner(task)

    def serving(self, task: str, progress: list[str]) -> None:
        """The request being served is of this task type: its runner loads the model, if needed."""
        _SERVING.set(Serving(self.runner(task), progress))

    def check_failures(self, key: str) -> None:
        """Raise ModelSkippedError when the key is not loaded and failed to load a short while ago."""
        if key not in self.held:
            self.failures.check(cache_key(key))

    def failed_load(self, key: str) -> tuple[float, str] | None:
        """(seconds since, why) of the key's failed load while this replica remembers it."""
        return self.failures.recent(cache_key(key))

    def made_room(self, dropped: str, key: str) -> None:
        """Note that `dropped` was unloaded to keep the budget while loading `key`."""
        self.unloaded.append((dropped, key))
        _SERVING.get().progress.append(f"unloaded {cache_key(dropped)[1]} from Ray replica to make room "
                                       f"for {cache_key(key)[1]} (local.memory_budget_gb)")

    def stats(self) -> dict[str, Any]:
        """What this replica holds and did: loaded keys (oldest first), loads tried per key, and the
        recent (unloaded, made room for) pairs."""
        with self._lock:
            return {"held": list(self.held), "loads": dict(self.loads),
                    "unloaded": [list(pair) for pair in self.unloaded]}

    def room_needed(self, model_id: str) -> int:
        """Bytes to free before loading model_id; raises when it alone exceeds the budget."""
        budget = self.settings.budget_bytes
        size = cached_bytes(model_id) or 0
        if size > budget:
            raise TaskError(too_big(model_id, size, budget))
        with self._lock:
            return max(0, sum(self.held.values()) + size - budget)

    def load(self, key: str) -> Held:
        """Load the model of a multiplexed key with the current request's runner; a failure is remembered
        (LoadFailures) and forgotten by the next load that works."""
        with self._lock:
            self.loads[key] += 1
        started = time.perf_counter()
        try:
            loaded, nbytes = self._load(cache_key(key)[1], _SERVING.get().runner)
        except Exception as exc:
            self.failures.remember(cache_key(key), exc)
            raise
        self.failures.forget(cache_key(key))
        with self._lock:
            self.held[key] = nbytes
        log.info("loaded %s in %.1f s", key, time.perf_counter() - started)
        return Held(key, loaded, nbytes, self._drop)

    def _load(self, model_id: str, runner: Runner) -> tuple[Any, int]:
        """(the loaded model, its bytes), or a TaskError that says why not."""
        try:
            loaded = runner.load(model_id, self.device)
        except TaskError:
            raise
        except OSError as exc:
            raise TaskError(f"could not load {model_id} on the Ray replica: {str(exc).splitlines()[0][:300]} "
                            "(is it downloaded there, or is the network reachable?)") from exc
        except MemoryError as exc:
            raise TaskError(too_big(model_id, cached_bytes(model_id) or 0, self.settings.budget_bytes)) from exc
        except Exception as exc:    # damaged files (a corrupt weights file), a model the library cannot read
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            raise TaskError(f"could not load {model_id} on the Ray replica ({type(exc).__name__}: {first})") \
                from exc
        nbytes = estimate_bytes(loaded)
        if nbytes > self.settings.budget_bytes:
            raise TaskError(too_big(model_id, nbytes, self.settings.budget_bytes))
        return loaded, nbytes

    def _drop(self, key: str, held: Held) -> None:
        with self._lock:
            if held.loaded is not None:
                self.held.pop(key, None)

    def run(self, request: WireRequest, held: Held, cancel: threading.Event) -> list[WireOutputs]:
        """Run the request's inputs on the loaded model, in a scratch folder removed afterwards."""
        runner = self.runner(request.task)
        scratch = Path(tempfile.mkdtemp(prefix="jarvis-ray-"))
        counter = itertools.count()

        def new_file(stem: str, suffix: str) -> Path:   # a folder per file: runners reuse stems
            folder = scratch / "out" / str(next(counter))
            folder.mkdir(parents=True)
            return folder / f"{stem}{suffix}"

        try:
            ctx = RunContext(device=self.device, new_file=new_file,
                             options=request.options.on_top_of(self.settings.options), cancel=cancel)
            batch = [unpack_inputs(wire, scratch / "in" / str(i)) for i, wire in enumerate(request.batch)]
            outputs = runner.run_batch(held.loaded, batch, ctx) if len(batch) > 1 else \
                [runner.run(held.loaded, batch[0], ctx)]
            if len(outputs) != len(batch):
                raise TaskError(f"{request.model_id} returned {len(outputs)} results for {len(batch)} inputs")
            return [pack_outputs(out) for out in outputs]
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


def failure(exc: BaseException) -> str:
    """The user's message for a run that failed inside a replica."""
    if isinstance(exc, TaskError):
        return str(exc)
    if isinstance(exc, MemoryError):
        return "the Ray replica ran out of memory: lower local.memory_budget_gb or use a smaller model"
    return f"{type(exc).__name__}: {str(exc)[:300]}"


def build_app(settings: ReplicaSettings, runners: Mapping[str, Runner] | None = None) -> Any:
    """The Serve application (bind it with serve.run); `runners` replace the registry's runner of a task
    type (a benchmark's fixed-time runner)."""
    ray, serve = import_ray(), import_serve()

    class JarvisModels:
        def __init__(self, settings: ReplicaSettings, runners: Mapping[str, Runner] | None) -> None:
            self.models = ReplicaModels(settings, runners)
            context = serve.get_replica_context()
            self.replica = context.replica_id.unique_id
            self.node = ray.util.get_node_ip_address()

        async def load(self, key: str) -> Held:
            model_id = cache_key(key)[1]
            dropped = False
            while self.models.room_needed(model_id) > 0 and self.models.held:   # over the budget
                oldest = await _unload_oldest(self)
                if oldest is None:
                    break
                self.models.made_room(oldest, key)
                dropped = True
            if dropped:
                await asyncio.to_thread(free_memory)
            return await asyncio.to_thread(self.models.load, key)

        # Serve's decorators applied as calls: they are untyped (the name must stay the method's own)
        load = serve.multiplexed(max_num_models_per_replica=settings.models_per_replica)(load)

        async def __call__(self, request: WireRequest) -> WireResult:
            progress: list[str] = []
            cancel = threading.Event()
            key = serve.get_multiplexed_model_id()
            try:
                self.models.serving(request.task, progress)
                self.models.check_failures(key)      # a recent failed load: skipped, without loading
                started = time.perf_counter()
                fresh = key not in self.models.held
                held = await self.load(key)
                if fresh and request.model_id != "builtin":
                    progress.append(f"loaded {request.model_id} on Ray replica {self.replica} in "
                                    f"{time.perf_counter() - started:.1f} s")
                outputs = await asyncio.to_thread(self.models.run, request, held, cancel)
            except asyncio.CancelledError:
                cancel.set()      # the runner stops at its next step
                raise
            except Exception as exc:
                return WireResult([], self.replica, self.node, progress, error=failure(exc),
                                  skipped=isinstance(exc, ModelSkippedError), failed_load=self.models.failed_load(key))
            return WireResult(outputs, self.replica, self.node, progress)

        def stats(self) -> dict[str, Any]:
            """This replica's models: held, loads tried, unloaded to make room (ReplicaModels.stats)."""
            return {"replica": self.replica, "node": self.node, **self.models.stats()}

    return serve.deployment(**settings.deployment_options())(JarvisModels).bind(settings, runners)


async def _unload_oldest(deployment: object) -> str | None:
    """Unload the replica's least recently used model through Serve's multiplexer; returns its key, or
    None when there is none or it cannot be done here.

    Serve has no public call for this (checked against ray 2.60.0): `serve.multiplexed` unloads by count
    only (`max_num_models_per_replica`, least recently used first, calling the model's `__del__`), and
    a model dropped behind its back would still be counted and advertised to Serve's router. So this
    one function uses the multiplexer's private parts: the attribute `__serve_multiplex_wrapper` that
    Serve sets on the deployment, its `models` (an OrderedDict, oldest first) and `unload_model_lru()`.
    Without them (another Ray version) the replica logs why and loads over its budget; the count still
    applies, and a replica that runs out of memory is retried elsewhere (executor.py)."""
    wrapper = getattr(deployment, "__serve_multiplex_wrapper", None)
    models = getattr(wrapper, "models", None)
    unload = getattr(wrapper, "unload_model_lru", None)
    if not isinstance(models, Mapping) or not callable(unload):
        log.warning("Ray Serve's multiplexer has no models/unload_model_lru here (checked against ray 2.60.0): "
                    "this replica cannot unload models to stay within local.memory_budget_gb and loads over it; "
                    "lower local.ray_models_per_replica to bound its memory")
        return None
    if not models:
        return None
    oldest = str(next(iter(models)))
    await unload()
    return oldest
