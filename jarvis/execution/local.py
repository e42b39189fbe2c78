"""Local execution: the task's runner on this machine, its loaded model kept in the model cache.

One LocalExecutor (and so one model cache, with its memory of failed loads) serves every session of
the process: the controller creates it once and closes it when the app stops.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from jarvis.config import LocalConfig
from jarvis.errors import TaskError
from jarvis.execution.downloads import metered
from jarvis.execution.model_cache import FAILED_LOAD_TTL, CacheKey, LoadFailures, ModelCache
from jarvis.execution.readiness import cached_bytes
from jarvis.runners.base import Device, RunContext, Runner, TaskInputs, TaskOutputs
from jarvis.runners.options import RunOptions
from jarvis.runners.registry import TASK_TYPES, batches_locally, local_runner

log = logging.getLogger(__name__)

# Loads run one at a time: transformers' lazy module imports are not safe when two threads
# touch a submodule for the first time together, and on a small machine parallel loads gain little.
LOAD_LOCK = threading.Lock()       # also taken by the embedded LLM's load (jarvis.llm.embedded)


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


class LocalExecutor:
    """Runs a task on a local model through its runner; shared by every session."""
    name = "local"

    def __init__(self, device: str = "auto", memory_budget_gb: float = 8.0, options: RunOptions | None = None,
                 failed_load_ttl: float = FAILED_LOAD_TTL, threads: int = 0):
        self._device_pref = device
        self._device: Device | None = None
        self.cache = ModelCache(int(memory_budget_gb * 1024 ** 3), LoadFailures(failed_load_ttl), threads)
        self.options = options or RunOptions()

    @classmethod
    def from_config(cls, local: LocalConfig) -> LocalExecutor:
        """The executor the `local` config section describes; its knobs become every run's options."""
        options = RunOptions(max_new_tokens=local.max_new_tokens, diffusion_steps=local.diffusion_steps)
        return cls(local.device, local.memory_budget_gb, options, threads=local.threads)

    @property
    def device(self) -> Device:
        if self._device is None:
            self._device = pick_device(self._device_pref)
        return self._device

    # -- what can run here -----------------------------------------------------------------
    def can_run(self, task: str) -> bool:
        spec = TASK_TYPES.get(task)
        return spec is not None and spec.local

    def is_loaded(self, task: str, model_id: str) -> bool:
        return self._cache_key(task, model_id) in self.cache

    def ready(self, task: str, model_id: str) -> bool:
        """Loaded, or its files are in the Hugging Face cache, fit the memory budget and did not fail to
        load a short while ago."""
        if not self.can_run(task):
            return False
        if self.is_loaded(task, model_id):
            return True
        if self.cache.failures.recent(self._cache_key(task, model_id)) is not None:
            return False
        size = cached_bytes(model_id)
        return size is not None and size <= self.cache.budget

    def batches(self, task: str) -> bool:
        return batches_locally(task)

    @staticmethod
    def _cache_key(task: str, model_id: str) -> CacheKey:
        try:
            return local_runner(task).cache_key(model_id)
        except TaskError:
            return (task, model_id)

    # -- running -----------------------------------------------------------------------------
    def _prepare(self, task: str, model_id: str, ctx: RunContext) -> tuple[Runner, AbstractContextManager[Any]]:
        """The task's runner and its loaded model (loading it first, with progress, when needed)."""
        runner = local_runner(task)
        key = runner.cache_key(model_id)
        device = self.device
        expected = 0
        size: int | None = None
        if key not in self.cache:
            self.cache.failures.check(key)  # a recent failed load: skipped, without the progress line
            size = cached_bytes(model_id) if model_id and model_id != "builtin" else 0
            where = "downloading it first (one time)" if size is None else "from the local cache"
            ctx.progress(f"loading {model_id} on {device.name}, {where}")
            expected = size or 0
        ctx.device = device
        ctx.options = ctx.options.on_top_of(self.options)
        return runner, self.cache.using(key, self._loader(runner, model_id, device, ctx, size), expected)

    @staticmethod
    def _loader(runner: Runner, model_id: str, device: Device, ctx: RunContext, size: int | None) -> Callable[[], Any]:
        """The model's load; `size` is what the cache held of its weights when the task began (None: not
        cached, or not looked at because it was loaded then), and the cache is looked at again only then."""
        def load() -> Any:
            cached = size if size is not None else cached_bytes(model_id)
            try:
                with LOAD_LOCK, metered(model_id, cached, ctx.progress):   # a download's progress, if it downloads
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
        return load

    def run(self, task: str, model_id: str, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        runner, model = self._prepare(task, model_id, ctx)
        with model as loaded:
            return runner.run(loaded, inputs, ctx)

    def run_batch(self, task: str, model_id: str, batch: list[TaskInputs], ctx: RunContext) -> list[TaskOutputs]:
        """Several inputs through one model call, for runners that batch (e.g. text-to-image prompts)."""
        runner, model = self._prepare(task, model_id, ctx)
        with model as loaded:
            outputs = runner.run_batch(loaded, batch, ctx)
        if len(outputs) != len(batch):
            raise TaskError(f"{model_id} returned {len(outputs)} results for {len(batch)} inputs")
        return outputs

    def close(self) -> None:
        """Drop the loaded models (the memory goes back once their last calls end)."""
        self.cache.clear()
