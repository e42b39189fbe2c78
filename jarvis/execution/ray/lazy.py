"""Ray is an optional extra: it is imported here, on first use, with an install hint when it is missing."""
from __future__ import annotations

from types import ModuleType
from typing import Any

from jarvis.errors import ConfigError

INSTALL_HINT = "pip install -r requirements-ray.txt (or pip install 'jarvis-hugginggpt[ray]')"


def import_ray() -> ModuleType:
    """The ray package, or a ConfigError saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(f"local.backend is ray, but Ray is not installed: {INSTALL_HINT}; or set "
                          "local.backend: inprocess") from exc
    return ray


def import_serve() -> Any:
    """ray.serve (after import_ray's check), typed loosely: parts of its API carry no annotations."""
    import_ray()
    from ray import serve
    return serve
