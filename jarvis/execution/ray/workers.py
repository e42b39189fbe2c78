"""`python -m jarvis workers`: start or join Ray, deploy the model deployment, say where its dashboard is.

With local.ray_address empty it starts Ray on this machine and stays in the foreground (Ray lives as
long as this command): apps on this machine join it with local.ray_address: auto. Joining a cluster
(auto, ray://...) deploys and returns: Serve keeps the deployment running on the cluster.
"""
from __future__ import annotations

import signal
import sys
import threading
import time
from types import FrameType
from typing import TextIO

from jarvis.config import LocalConfig
from jarvis.errors import ConfigError
from jarvis.execution.ray.cluster import connect, deploy
from jarvis.execution.ray.deployment import ReplicaSettings


def run_workers(local: LocalConfig, out: TextIO = sys.stdout, stop: threading.Event | None = None) -> int:
    """Deploy and report; 0 on success, 2 when Ray is missing or unreachable. `stop` ends the foreground
    wait (SIGINT and SIGTERM set it)."""
    started = time.perf_counter()
    try:
        cluster = connect(local)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    settings = ReplicaSettings.from_config(local)
    deploy(settings)
    replicas = (f"{settings.replicas} to {settings.max_replicas} replicas (autoscaling)"
                if settings.max_replicas > settings.replicas else f"{settings.replicas} replica(s)")
    print(f"Ray: {'started on this machine' if cluster.started else 'joined ' + cluster.address}; "
          f"the model deployment runs {replicas}, {settings.cpus:g} CPU and {settings.gpus:g} GPU each, "
          f"{settings.budget_bytes / 1024 ** 3:g} GiB of models each "
          f"(ready in {time.perf_counter() - started:.1f} s)", file=out)
    print(f"Ray dashboard: {cluster.dashboard_url or 'not running on this cluster'}", file=out)
    if not cluster.started:
        print("The deployment stays on the cluster; apps use it with local.backend: ray and this "
              "local.ray_address.", file=out)
        cluster.stop()
        return 0
    print("Apps on this machine use it with local.backend: ray and local.ray_address: auto. "
          "Ctrl-C stops Ray.", file=out, flush=True)
    stop = stop or threading.Event()

    def end(signum: int, frame: FrameType | None) -> None:
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, end)
        signal.signal(signal.SIGTERM, end)
    stop.wait()
    cluster.stop()
    return 0
