"""What a test needs from the machine (Chromium, openssl, ../shared/data): skipped on a developer's
machine that lacks it, a failure in CI (`CI` set to true, as CI services do), so a green CI run
means every test ran."""
from __future__ import annotations

import os

import pytest

TRUE = {"1", "true", "yes", "on"}


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in TRUE


def require(available: bool, what: str, how: str) -> None:
    """Skip (fail in CI) unless `available`; `what` the test needs, `how` to get it."""
    if available:
        return
    message = f"needs {what}: {how}"
    if in_ci():
        pytest.fail(f"{message} (CI=true: a missing prerequisite fails instead of skipping)", pytrace=False)
    pytest.skip(message)
