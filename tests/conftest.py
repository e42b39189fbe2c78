"""Test session setup: offline Hugging Face cache of tiny models, scripted LLM server.

The environment is set before anything imports huggingface_hub or transformers, which read
HF_HUB_CACHE and HF_HUB_OFFLINE at import time.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

_ROOT = Path(tempfile.mkdtemp(prefix="jarvis-tests-"))
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HOME"] = str(_ROOT / "hf-home")
os.environ["HF_HUB_CACHE"] = str(_ROOT / "hub")
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["TRANSFORMERS_VERBOSITY"] = "error"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ.pop("OPENAI_API_KEY", None)
os.environ.pop("OPENAI_BASE_URL", None)
os.environ.pop("HF_TOKEN", None)
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


import pytest

from tests.prerequisites import require

SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
BUILD_TIMEOUT = 240   # seconds for the test that first builds the tiny models (pyproject.toml: 60 per test)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The first test to use the tiny models builds them all (tens of seconds on a loaded machine):
    that one test, and no other, gets BUILD_TIMEOUT unless its own mark allows longer."""
    first = next((item for item in items if "tiny_models" in getattr(item, "fixturenames", ())), None)
    if first is None:
        return
    marked = first.get_closest_marker("timeout")
    limit = None if marked is None else marked.args[0] if marked.args else marked.kwargs.get("timeout")
    if limit is None or limit < BUILD_TIMEOUT:
        first.add_marker(pytest.mark.timeout(BUILD_TIMEOUT))


@pytest.fixture(autouse=True)
def _own_data_directory(tmp_path_factory, monkeypatch) -> None:
    """Each test's saved web conversations (session.store: auto) in a folder of its own, not the user's."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("data")))


@pytest.fixture(scope="session")
def hub_cache() -> Path:
    return Path(os.environ["HF_HUB_CACHE"])


@pytest.fixture(scope="session")
def tiny_models(hub_cache) -> dict[str, float]:
    """Every tiny model, built once per test session into the offline HF cache."""
    from tests.tiny import build_all
    return build_all(hub_cache)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    require(SHARED_DATA.is_dir(), "../shared/data beside the checkout",
            "put the reference data (see its README) in a folder named shared/data next to this project")
    return SHARED_DATA
