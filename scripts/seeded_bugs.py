"""Put each of the realistic bugs that once slipped through the suite (issue 17) back into a scratch copy
of the tree, one at a time, run the tests that guard that behaviour, and report which test catches it.

    python scripts/seeded_bugs.py            # every bug; exit status 1 if any survives
    python scripts/seeded_bugs.py 4 6b       # only these

The checkout is never touched. A bug whose text no longer matches the source (the code moved) is an
error, not a pass: update its entry here along with the code.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Bug:
    key: str
    what: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


PLAN_TESTS = ("tests/test_plan.py", "tests/test_pinned_plan_reading.py", "tests/test_scheduler_spec.py")
CHAIN_TESTS = ("tests/test_scheduler_spec.py", "tests/test_pinned_scheduler.py", "tests/test_controller_spec.py")
BUGS = [
    Bug("1", "a <GENERATED>-K inside other text loses its dependency", "jarvis/pipeline/plan.py",
        "out.update(int(m) for m in REF.findall(v))",
        "out.update(int(m) for m in REF.findall(v) if REF.fullmatch(v.strip()))", PLAN_TESTS),
    Bug("2", "cycle detection makes a single pass", "jarvis/pipeline/plan_checks.py",
        "    while progress:\n        progress = False\n", "    for _once in range(1):\n        progress = False\n",
        PLAN_TESTS),
    Bug("3", "the store resolves an absolute path without its inside-the-store check", "jarvis/files/store.py",
        "if resolved and resolved.is_relative_to(self.root) and resolved.is_file():",
        "if resolved and resolved.is_file():", ("tests/test_pinned_store.py", "tests/test_scheduler_spec.py")),
    Bug("3b", "a text argument naming a file outside the session is read", "jarvis/pipeline/inputs.py",
        "            path = store.resolve(text)\n", "            path = Path(text).resolve()\n",
        ("tests/test_pinned_store.py",)),
    Bug("4", "only the first address of a DNS answer is vetted", "jarvis/outbound.py",
        "        for ip in addresses:\n", "        for ip in addresses[:1]:\n",
        ("tests/test_pinned_policies.py", "tests/test_netfetch.py")),
    Bug("5", "a prefix of a token is accepted", "jarvis/frontends/http/auth.py",
        "if given and hmac.compare_digest(given.encode(), token.encode()):", "if given and token.startswith(given):",
        ("tests/test_pinned_http_auth.py", "tests/test_hardening_endpoints.py")),
    Bug("6", "the LLM client scrubs the key from an upstream error on HTTP 400 only", "jarvis/llm/client.py",
        'return ": " + self._scrub(str(getattr(exc, "message", exc)))[:300]',
        'return ": " + (self._scrub if getattr(exc, "status_code", None) == 400 else str)'
        '(str(getattr(exc, "message", exc)))[:300]', ("tests/test_pinned_llm_keys.py",)),
    Bug("6b", "the inference client scrubs the token from an upstream error on HTTP 400 only",
        "jarvis/execution/remote.py",
        'server = self._scrub(getattr(exc, "server_message", None) or "").strip().splitlines()',
        'server = (self._scrub if status == 400 else str)(getattr(exc, "server_message", None) or "")'
        '.strip().splitlines()', ("tests/test_secrets.py",)),
    Bug("7", "the literal <GENERATED>-K is passed on instead of the producer's text", "jarvis/pipeline/inputs.py",
        "                    inputs.text.append(str(value))", "                    inputs.text.append(str(v))",
        CHAIN_TESTS),
    Bug("8", "a reference inside a text is left unsubstituted", "jarvis/pipeline/inputs.py",
        "    text = REF.sub(sub, value)", "    text = value", CHAIN_TESTS),
    Bug("9", "a skipped task does not pass its skip on (its dependents wait forever)", "jarvis/pipeline/scheduler.py",
        "                self.failed[tid] = reason\n", "", CHAIN_TESTS),
]


def copy_tree(into: Path) -> None:
    for name in ("jarvis", "tests", "pyproject.toml", "config.yaml", "examples"):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, into / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.exists():
            shutil.copy2(source, into / name)


def first_failure(work: Path, tests: tuple[str, ...]) -> tuple[str | None, str]:
    """The first failing test's id (None when all pass) and pytest's summary line."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(work))
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-m", "not slow and not browser",
         "-rf", "--no-header", *tests], cwd=work, env=env, capture_output=True, text=True, timeout=900)
    failed = re.search(r"^FAILED (.+?)(?: - .*)?$", run.stdout, re.M)
    summary = next((line for line in reversed(run.stdout.splitlines()) if re.match(r"^=*\s*\d+ \w+", line)), "")
    return (failed.group(1) if failed else None), summary.strip("= ")


def main(keys: list[str]) -> int:
    chosen = [b for b in BUGS if not keys or b.key in keys]
    survived = 0
    with tempfile.TemporaryDirectory(prefix="jarvis-seeded-") as scratch:
        work = Path(scratch)
        copy_tree(work)
        for bug in chosen:
            target = work / bug.path
            source = target.read_text()
            if source.count(bug.old) != 1:
                print(f"bug {bug.key}: its text is not found once in {bug.path}; update scripts/seeded_bugs.py")
                return 2
            target.write_text(source.replace(bug.old, bug.new))
            try:
                caught, summary = first_failure(work, bug.tests)
            finally:
                target.write_text(source)
            survived += caught is None
            print(f"bug {bug.key:3} {bug.what}\n    {'caught by ' + caught if caught else 'SURVIVED'} ({summary})",
                  flush=True)
    print(f"{len(chosen) - survived} of {len(chosen)} seeded bugs caught")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
