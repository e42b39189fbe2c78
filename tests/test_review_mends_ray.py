"""The Ray executor's readiness knows the replicas' failed loads (review finding: RayExecutor.ready did
not, so hybrid mode could send a task to a replica that fails it at once, while the in-process executor
said no). One local Ray instance, one replica, the session's tiny SST2 and a copy of it with a corrupt
weights file; the replica remembers a failed load for TTL seconds.
"""
from __future__ import annotations

import dataclasses
import shutil
import time

import pytest

from jarvis.errors import ModelSkippedError, TaskError
from jarvis.runners.base import Device, RunContext, TaskInputs
from tests.tiny import snapshot_dir

SST2 = "distilbert/distilbert-base-uncased-finetuned-sst-2-english"
BROKEN = "acme/broken-sst2-ready"   # SST2's files with a corrupt weights file
TASK = "text-classification"
TTL = 8.0


@pytest.fixture(scope="module")
def replica(tiny_models, hub_cache):
    """(the handle, settings) of one replica on a Ray instance of its own, stopped at the end."""
    from jarvis.config import LocalConfig
    from jarvis.execution.ray.cluster import connect, deploy
    from jarvis.execution.ray.deployment import ReplicaSettings
    snap = snapshot_dir(hub_cache, BROKEN)
    shutil.copytree(snapshot_dir(hub_cache, SST2), snap, dirs_exist_ok=True)
    (snap / "model.safetensors").write_bytes(b"\0" * 64)
    cluster = connect(LocalConfig(device="cpu", backend="ray"), num_cpus=1, include_dashboard=False)
    try:
        settings = dataclasses.replace(ReplicaSettings(device="cpu"), budget_bytes=2 ** 20, cpus=0.5,
                                       failed_load_ttl=TTL)
        yield deploy(settings, name="jarvis-ready"), settings
    finally:
        cluster.stop()


def classify(executor, model, tmp_path):
    ctx = RunContext(Device(), lambda stem, suffix: tmp_path / f"{stem}{suffix}")
    return executor.run(TASK, model, TaskInputs(text=["I love this film"]), ctx)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_model_that_failed_to_load_on_a_replica_is_not_ready_until_the_replica_forgets_it(replica, tmp_path):
    from jarvis.execution.ray.executor import RayExecutor
    handle, settings = replica
    first = RayExecutor(handle, settings)
    assert first.ready(TASK, BROKEN) and first.ready(TASK, SST2)    # cached and small: they look ready
    with pytest.raises(TaskError, match=f"could not load {BROKEN} on the Ray replica"):
        classify(first, BROKEN, tmp_path)
    failed = time.monotonic()
    assert not first.ready(TASK, BROKEN)
    assert first.ready(TASK, SST2) and classify(first, SST2, tmp_path).detail["labels"]

    # another app (or this one restarted) learns it from the replica's skip, with the failure's own age
    time.sleep(TTL / 2)
    second = RayExecutor(handle, settings)
    assert second.ready(TASK, BROKEN)
    with pytest.raises(ModelSkippedError, match=f"skipped: {BROKEN} failed to load"):
        classify(second, BROKEN, tmp_path)
    assert not second.ready(TASK, BROKEN)

    time.sleep(max(0.0, failed + TTL + 0.5 - time.monotonic()))     # the replica forgets it now: so do they
    assert first.ready(TASK, BROKEN) and second.ready(TASK, BROKEN)
