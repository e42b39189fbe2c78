"""The realistic bugs that once slipped through the suite (issue 17), put back one at a time into a
scratch copy by scripts/seeded_bugs.py: each must fail at least one test, so none can return unnoticed."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_every_seeded_bug_fails_a_test():
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "seeded_bugs.py")], cwd=ROOT,
                         capture_output=True, text=True, timeout=880)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SURVIVED" not in run.stdout
    assert "11 of 11 seeded bugs caught" in run.stdout, run.stdout
