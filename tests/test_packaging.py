"""Packaging facts: the Spaces requirements file and pyproject.toml declare the same dependencies, every
third-party module the package imports is declared, and the package data (catalog, prompts) ships."""
from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "jarvis"

# import name -> distribution name, where they differ
DISTRIBUTION_OF = {"yaml": "pyyaml", "PIL": "pillow", "sklearn": "scikit-learn", "huggingface_hub": "huggingface_hub",
                   "av": "av", "soundfile": "soundfile"}
# imported only as a dependency's own module: httpx2 comes with huggingface_hub 2, starlette with fastapi
PROVIDED_BY = {"httpx2": "huggingface_hub", "starlette": "fastapi", "pydantic": "fastapi", "safetensors": "transformers",
               "tokenizers": "transformers", "authlib": "gradio"}


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~ ;]", requirement.strip(), maxsplit=1)[0].lower().replace("-", "_")


def _requirements_txt() -> list[str]:
    lines = [line.split("#", 1)[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    return [line for line in lines if line]


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _normalise(requirement: str) -> str:
    return re.sub(r"\s+", "", requirement).lower().replace("-", "_")


def test_requirements_txt_matches_pyproject_dependencies():
    declared = sorted(_normalise(r) for r in _pyproject()["project"]["dependencies"])
    assert sorted(_normalise(r) for r in _requirements_txt()) == declared


def test_torch_is_pinned_to_the_cpu_build():
    assert "torch==2.13.0" in _requirements_txt()


def test_every_third_party_import_is_declared():
    project = _pyproject()["project"]
    optional = [r for group in project["optional-dependencies"].values() for r in group]
    declared = {_name(r) for r in project["dependencies"] + optional}
    stdlib = set(sys.stdlib_module_names)
    missing = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in stdlib or top == "jarvis" or top == "__future__":
                    continue
                dist = PROVIDED_BY.get(top) or DISTRIBUTION_OF.get(top, top)
                if dist.lower().replace("-", "_") not in declared:
                    missing.add(f"{top} ({path.relative_to(ROOT)})")
    assert not missing, f"imported but not declared in pyproject.toml: {sorted(missing)}"


def test_optional_imports_are_guarded():
    """What only an optional extra installs is imported inside `try: ... except ImportError` with an install hint."""
    extras = _pyproject()["project"]["optional-dependencies"]
    optional = {_name(r) for name, group in extras.items() if name != "dev" for r in group}
    assert optional, "no optional extras declared"
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        guarded = {id(node) for t in ast.walk(tree) if isinstance(t, ast.Try)
                   and any(isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError")
                           for h in t.handlers)
                   for stmt in t.body for node in ast.walk(stmt)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] in optional:
                        assert id(node) in guarded, f"{path}: {alias.name} is optional; guard its import"


def test_console_script_and_package_data_are_declared():
    project = _pyproject()
    assert project["project"]["scripts"]["jarvis"] == "jarvis.frontends.cli:main"
    data = project["tool"]["setuptools"]["package-data"]
    for package, patterns in data.items():
        folder = ROOT / package.replace(".", "/")
        for pattern in patterns:
            assert list(folder.glob(pattern)), f"{package}: nothing matches {pattern}"
