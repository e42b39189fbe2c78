"""Prompt templates live as text files beside this module; `{name}` marks a placeholder.

Rendering is strict: a placeholder without a value, or a value without a placeholder, is an error
(a misspelt name would otherwise send the LLM a literal `{files}` or silently drop a value).
JSON braces in the templates are not placeholders: only `{identifier}` is.
"""
from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from jarvis.errors import TemplateError

_DIR = Path(__file__).resolve().parent
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@cache
def load(name: str) -> str:
    """The template's text (stripped); FileNotFoundError for an unknown name."""
    return (_DIR / f"{name}.txt").read_text(encoding="utf-8").strip()


def render(name: str, **values: str) -> str:
    """The template with every placeholder filled, in one pass (a value's own braces stay as they are)."""
    text = load(name)
    wanted = set(_PLACEHOLDER.findall(text))
    missing, unused = sorted(wanted - values.keys()), sorted(values.keys() - wanted)
    if missing or unused:
        problems = ([f"no value for {', '.join(missing)}"] if missing else []) + (
            [f"no placeholder for {', '.join(unused)}"] if unused else [])
        raise TemplateError(f"prompt template {name!r}: {'; '.join(problems)} "
                            f"(its placeholders: {', '.join(sorted(wanted)) or 'none'})")
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)
