"""A missing prerequisite skips a test on a developer's machine and fails it in CI."""
from __future__ import annotations

import pytest

from tests.prerequisites import require


@pytest.mark.parametrize("ci", ["true", "TRUE", "1"])
def test_in_ci_a_missing_prerequisite_fails(monkeypatch, ci):
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception, match="needs chromium: apt-get install chromium .CI=true"):
        require(False, "chromium", "apt-get install chromium")
    require(True, "chromium", "apt-get install chromium")


@pytest.mark.parametrize("ci", [None, "", "false", "0"])
def test_elsewhere_a_missing_prerequisite_skips(monkeypatch, ci):
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception, match="needs openssl: apt-get install openssl"):
        require(False, "openssl", "apt-get install openssl")
