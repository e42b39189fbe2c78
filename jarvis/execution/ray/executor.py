"""The Ray executor: local tasks run in the Ray Serve deployment, on this machine or a cluster.

It implements the Executor protocol like the in-process executor, with the same runners and outputs;
its attempts are recorded as executor "ray", and each task's detail names the replica and node that
ran it. Inputs and outputs travel as bytes (wire.py); the files a task produced are written into
the session's store here. A replica that dies during a task (killed, out of memory, its node lost)
costs one retry, which Serve routes to a live replica; a second loss fails the attempt, and the
dispatcher moves on to the next candidate model, as for any executor.

A model that failed to load on a replica is remembered here too, from the replica's answer and for as
long as the replica remembers it (LoadFailures, the replicas' failed_load_ttl): `ready` says no to it,
so hybrid mode sends its tasks to the remote executor instead of a replica that fails them at once.

Tasks on Ray do not take the server's local slot (local_slots.py): the replicas are the limit, each
runs one task at a time, and Serve queues the rest.
"""
from __future__ import annotations

import logging
import time
from typing import Any

from jarvis.config import LocalConfig
from jarvis.errors import ModelSkippedError, TaskError
from jarvis.execution.model_cache import LoadFailures
from jarvis.execution.ray.cluster import RayCluster, connect, deployment_handle
from jarvis.execution.ray.deployment import ReplicaSettings
from jarvis.execution.ray.lazy import import_ray
from jarvis.execution.ray.wire import WireRequest, WireResult, pack_inputs, unpack_outputs
from jarvis.execution.readiness import cached_bytes
from jarvis.runners.base import RunContext, TaskInputs, TaskOutputs
from jarvis.runners.registry import TASK_TYPES, batches_locally, local_runner

log = logging.getLogger(__name__)

WAIT_POLL = 0.25      # seconds between looks at the task's cancel flag while a replica works


def _lost_replica_errors() -> tuple[type[BaseException], ...]:
    """Ray's errors for a replica (or its worker process or node) that went away during a call."""
    exceptions = import_ray().exceptions
    return (exceptions.RayActorError, exceptions.WorkerCrashedError, exceptions.NodeDiedError,
            exceptions.OutOfMemoryError, exceptions.ObjectLostError)


def _lost(model_id: str, exc: BaseException) -> str:
    why = "ran out of memory" if type(exc).__name__ == "OutOfMemoryError" else "stopped"
    return f"the Ray replica running {model_id} {why} during the task ({type(exc).__name__})"


class RayExecutor:
    """Runs local tasks on Ray Serve replicas through a deployment handle; shared by every session."""
    name = "ray"

    def __init__(self, handle: Any, settings: ReplicaSettings, cluster: RayCluster | None = None):
        self.handle = handle
        self.settings = settings
        self.cluster = cluster          # left (and stopped, when started here) on close; None: the caller's
        self._served: set[tuple[str, str]] = set()
        self.failures = LoadFailures(settings.failed_load_ttl)   # the replicas' failed loads, as they told them

    @classmethod
    def from_config(cls, local: LocalConfig) -> RayExecutor:
        """Join or start Ray as local.ray_address says, and use (or deploy) the model deployment."""
        cluster = connect(local)
        settings = ReplicaSettings.from_config(local)
        return cls(deployment_handle(settings), settings, cluster)

    @property
    def dashboard_url(self) -> str:
        return self.cluster.dashboard_url if self.cluster is not None else ""

    # -- what can run here -----------------------------------------------------------------
    def can_run(self, task: str) -> bool:
        spec = TASK_TYPES.get(task)
        return spec is not None and spec.local

    def ready(self, task: str, model_id: str) -> bool:
        """Not when it failed to load on a replica a short while ago; else when a replica ran it already, or
        its files are in this machine's cache and fit a replica's budget."""
        if not self.can_run(task):
            return False
        if self.failures.recent(local_runner(task).cache_key(model_id)) is not None:
            return False
        if (task, model_id) in self._served:
            return True
        size = cached_bytes(model_id)
        return size is not None and size <= self.settings.budget_bytes

    def batches(self, task: str) -> bool:
        return batches_locally(task)

    # -- running -----------------------------------------------------------------------------
    def run(self, task: str, model_id: str, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        return self._call(task, model_id, [inputs], ctx)[0]

    def run_batch(self, task: str, model_id: str, batch: list[TaskInputs], ctx: RunContext) -> list[TaskOutputs]:
        return self._call(task, model_id, batch, ctx)

    def _call(self, task: str, model_id: str, batch: list[TaskInputs], ctx: RunContext) -> list[TaskOutputs]:
        cache_key = local_runner(task).cache_key(model_id)
        request = WireRequest(task, model_id, [pack_inputs(inputs) for inputs in batch], ctx.options)
        ctx.progress(f"sent to Ray ({model_id})")
        result = self._send("|".join(cache_key), request, ctx)
        for line in result.progress:
            ctx.progress(line)
        if result.failed_load is not None:
            ago, why = result.failed_load
            self.failures.remember(cache_key, why, ago)
        elif result.error is None:
            self.failures.forget(cache_key)
        if result.error is not None:     # a skip (a recent failed load on the replica) reads as in-process
            raise ModelSkippedError(result.error) if result.skipped else TaskError(result.error)
        if len(result.outputs) != len(batch):
            raise TaskError(f"{model_id} returned {len(result.outputs)} results for {len(batch)} inputs")
        self._served.add((task, model_id))
        where = {"replica": result.replica, "node": result.node}
        return [unpack_outputs(out, ctx, where) for out in result.outputs]

    def _send(self, key: str, request: WireRequest, ctx: RunContext) -> WireResult:
        """The replica's answer; a replica lost during the call costs one retry, the second loss fails."""
        lost = _lost_replica_errors()
        retried = False
        while True:
            started = time.perf_counter()
            try:
                return self._wait(self.handle.options(multiplexed_model_id=key).remote(request), ctx)
            except lost as exc:
                message = _lost(request.model_id, exc)
                log.info("%s", message)
                if retried:
                    raise TaskError(f"{message}, twice: see the Ray dashboard for why the replicas stop "
                                    "(memory, node loss), or lower local.memory_budget_gb") from exc
                retried = True
                ctx.on_retry(message, time.perf_counter() - started, request.model_id)
                ctx.progress(f"{message}; retrying on another replica")

    @staticmethod
    def _wait(response: Any, ctx: RunContext) -> WireResult:
        """The replica's answer; a cancelled task (timed out, stopped) cancels the call."""
        while True:
            try:
                result: WireResult = response.result(timeout_s=WAIT_POLL)
                return result
            except TimeoutError:
                if ctx.cancel.is_set():
                    response.cancel()
                    ctx.raise_if_cancelled()

    def close(self) -> None:
        """Leave the cluster (stopping the Ray instance this process started, if it did)."""
        if self.cluster is not None:
            self.cluster.stop()
            self.cluster = None
