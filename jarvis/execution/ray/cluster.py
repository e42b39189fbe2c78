"""Starting or joining Ray, and deploying the model deployment on it.

`local.ray_address` says where: "" starts a Ray instance inside this process's reach (this machine, its
dashboard on 127.0.0.1:8265), "auto" joins the cluster `ray start` (or `python -m jarvis workers`)
runs on this machine, "ray://HOST:10001" reaches a cluster's head through Ray Client. Serve runs
without its HTTP proxies: the app calls the deployment through a handle, so no port is opened.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jarvis.config import LocalConfig
from jarvis.errors import ConfigError
from jarvis.execution.ray.deployment import APP, ReplicaSettings, build_app
from jarvis.execution.ray.lazy import import_ray, import_serve
from jarvis.runners.base import Runner

log = logging.getLogger(__name__)


@dataclass
class RayCluster:
    """The Ray this process is connected to; `started` when this process started it (and so stops it)."""
    address: str
    dashboard_url: str        # "" when the cluster runs no dashboard
    started: bool
    seconds: float            # how long connecting (or starting) took

    def stop(self) -> None:
        """Leave the cluster; one this process started is shut down with its Serve applications."""
        ray = import_ray()
        if self.started:
            import_serve().shutdown()
        ray.shutdown()


def connect(local: LocalConfig, **init: Any) -> RayCluster:
    """Join the cluster local.ray_address names, or start one on this machine; `init` adds
    ray.init's keywords (num_cpus, include_dashboard...). Joining twice reuses the connection."""
    ray = import_ray()
    address = local.ray_address.strip()
    started = time.perf_counter()
    fresh = not address and not ray.is_initialized()
    try:
        context = ray.init(address=address or None, ignore_reinit_error=True, log_to_driver=False, **init)
    except ConnectionError as exc:
        raise ConfigError(f"local.ray_address: no Ray cluster answers at {address!r} ({exc}); start one "
                          "with `ray start --head` or `python -m jarvis workers`, or leave it empty to "
                          "start Ray here") from exc
    url = context.dashboard_url or ""
    if url and "://" not in url:
        url = f"http://{url}"
    return RayCluster(address or "local", url, fresh, round(time.perf_counter() - started, 2))


def deploy(settings: ReplicaSettings, runners: Mapping[str, Runner] | None = None, name: str = APP) -> Any:
    """(Re)deploy the model deployment as the Serve application `name`; returns its handle once its
    replicas are up."""
    serve = import_serve()
    serve.start(proxy_location="Disabled")
    return serve.run(build_app(settings, runners), name=name, route_prefix=None)


def deployment_handle(settings: ReplicaSettings) -> Any:
    """The running deployment's handle (deployed by `python -m jarvis workers` or another app), or a
    new deployment when the cluster has none."""
    serve = import_serve()
    try:
        return serve.get_app_handle(APP)
    except serve.exceptions.RayServeException:
        log.info("no %s application on the cluster yet: deploying it", APP)
        return deploy(settings)
