"""Starting fast: `import jarvis` loads none of the pipeline (its public names load on first use),
and `python -m jarvis --help` or a mistyped command answers without the controller, the catalog
or the LLM client (each command imports what it needs). Checked in a fresh interpreter."""
from __future__ import annotations

import json
import subprocess
import sys

import jarvis

HEAVY = ("jarvis.pipeline.controller", "jarvis.catalog.entries", "jarvis.llm.client", "jarvis.catalog.refresh",
         "jarvis.session", "huggingface_hub", "openai", "numpy")


def loaded_after(code: str) -> list[str]:
    probe = code + f"\nimport json, sys\nprint(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_cli(*argv: str) -> str:
    return ("import runpy, sys\n"
            f"sys.argv = ['jarvis', *{list(argv)!r}]\n"
            "try:\n    runpy.run_module('jarvis', run_name='__main__')\nexcept SystemExit:\n    pass")


def test_importing_the_package_loads_none_of_the_pipeline():
    assert loaded_after("import jarvis") == []


def test_help_and_a_mistyped_command_load_none_of_the_pipeline():
    assert loaded_after(run_cli("--help")) == []
    assert loaded_after(run_cli("run")) == []              # missing its request: argparse answers
    assert loaded_after(run_cli("catalog", "--help")) == []


def test_the_public_names_load_on_first_use_and_are_the_defining_modules_objects():
    from jarvis.pipeline.controller import Controller
    from jarvis.runners.registry import TASK_TYPES
    assert jarvis.Controller is Controller and jarvis.TASK_TYPES is TASK_TYPES
    assert set(jarvis.__all__) <= set(dir(jarvis))
    try:
        jarvis.NotAName   # noqa: B018
    except AttributeError as exc:
        assert "NotAName" in str(exc)
    else:
        raise AssertionError("an unknown name must raise AttributeError")
