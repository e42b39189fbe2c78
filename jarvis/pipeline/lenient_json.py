"""Tolerant extraction of JSON from LLM output: code fences, prose around it, single quotes,
trailing commas, Python literals, stray or missing braces, truncation.

`loads_lenient` parses one JSON text with repairs; `find_objects` finds every balanced {...} that
parses, in one pass over the text, so a broken list still yields its complete objects (and a plan
still streaming, its finished ones); `closed_list` says when a streaming plan's list has ended.
All of them read the text's structure through one scan, `Brackets`.
"""
from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from typing import Any

MAX_CHARS = 200_000      # longest LLM answer read; a planner answer is a few KB (max_tokens caps it)
MAX_SCAN_DEPTH = 4       # braces deeper than this are never parsed on their own (bounds the scan)
_FENCE = re.compile(r"```(?:json|JSON|javascript|python)?\s*(.*?)```", re.S)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")
_SMART = str.maketrans({"\u201c": '"', "\u201d": '"', "\u2018": "'", "\u2019": "'"})
# a reasoning model served without a reasoning parser writes its thoughts first (unclosed when cut)
_REASONING = re.compile(r"\A\s*<think>.*?(?:</think>|\Z)", re.S | re.I)


def strip_reasoning(text: str) -> str:
    """The answer without a leading <think>...</think> block: thoughts may hold JSON that was rejected."""
    return _REASONING.sub("", text, count=1)


def strip_fences(text: str) -> str:
    """The JSON inside a Markdown code fence (the longest, when there are several); else the text.
    A leading reasoning block is never part of it."""
    text = strip_reasoning(text)
    blocks: list[str] = _FENCE.findall(text)
    if blocks:
        return max(blocks, key=len)
    if text.lstrip().startswith("```"):  # an unclosed fence: drop the opening line
        return text.lstrip().split("\n", 1)[-1]
    return text


def loads_lenient(text: str) -> Any:
    """Parse text as JSON, trying a few repairs; raises ValueError when none works."""
    exact = text.strip()
    text = exact.translate(_SMART)   # curly quotes as JSON's quotes only once the text as written failed:
    attempts = [exact, text, _TRAILING_COMMA.sub(r"\1", text)]   # in a valid string they are text
    for candidate in attempts:
        try:
            return json.loads(candidate)
        except (json.JSONDecodeError, RecursionError):
            pass
    pythonish = re.sub(r"\btrue\b", "True", re.sub(r"\bfalse\b", "False", re.sub(r"\bnull\b", "None", attempts[1])))
    if len(pythonish) <= 50_000:  # ast is slow on huge inputs
        try:
            return ast.literal_eval(pythonish)
        except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
            pass
    raise ValueError("not valid JSON")


class Brackets:
    """The one scan of a JSON text (the parsers here and the embedded LLM's plan grammar share it):
    iterating yields (index, bracket, depth) for each of [ ] { } outside double-quoted strings, where
    depth counts the brackets open after it (both kinds, a stray closer too). Once iterated,
    `in_string` and `escaped` say whether the text stops inside a string, just after its backslash."""

    def __init__(self, text: str):
        self.text = text
        self.in_string = self.escaped = False

    def __iter__(self) -> Iterator[tuple[int, str, int]]:
        depth = 0
        in_string = escaped = False
        for i, ch in enumerate(self.text):
            if in_string:
                if escaped:
                    escaped = False
                elif ch == "\\":
                    escaped = True
                elif ch == '"':
                    in_string = False
            elif ch == '"':
                in_string = True
            elif ch in "[{":
                depth += 1
                yield i, ch, depth
            elif ch in "]}":
                depth -= 1
                yield i, ch, depth
        self.in_string, self.escaped = in_string, escaped


def balanced_spans(text: str, opener: str = "{", closer: str = "}",
                   max_depth: int | None = None) -> list[tuple[int, int]]:
    """(start, end) of every balanced opener..closer span, aware of double-quoted strings.

    With max_depth, only spans nested at most that deep are returned: parsing every span of a
    deeply nested text would take time quadratic in its length.
    """
    spans: list[tuple[int, int]] = []
    stack: list[int] = []
    for i, ch, _ in Brackets(text):
        if ch == opener:
            stack.append(i)
        elif ch == closer and stack:
            start = stack.pop()
            if max_depth is None or len(stack) <= max_depth:
                spans.append((start, i + 1))
    return spans


def find_objects(text: str, must_have: tuple[str, ...] = ()) -> tuple[list[dict[str, Any]], bool]:
    """Outermost dicts in text that parse (leniently) and hold one of `must_have` keys.

    Returns (objects in order, truncated) where truncated says an object was opened but never closed.
    """
    spans, truncated = _scan_objects(text)
    spans.sort(key=lambda s: (s[0], -s[1]))
    found: list[tuple[int, dict[str, Any]]] = []
    covered_until = -1
    for start, end in spans:
        if start < covered_until:
            continue
        try:
            obj = loads_lenient(text[start:end])
        except ValueError:
            continue
        if isinstance(obj, dict) and (not must_have or any(k in obj for k in must_have)):
            found.append((start, obj))
            covered_until = end
    return [o for _, o in found], truncated


def _scan_objects(text: str) -> tuple[list[tuple[int, int]], bool]:
    """One scan for find_objects: the balanced {...} spans nested at most MAX_SCAN_DEPTH deep (as
    balanced_spans finds them), and whether the text ends with an object still open (cut off at a
    length limit), also when it stops just after a nested `]` or `}`: a `{` among the brackets left
    open, where a closer closes whichever bracket was opened last. When the scan ends inside a string,
    its quotes are not JSON's (single-quoted text holding a `"`), so only the text's end tells: an open
    brace after the last closed span and no closing bracket last."""
    spans: list[tuple[int, int]] = []
    braces: list[int] = []       # where each `{` not yet closed by a `}` began
    opened: list[str] = []       # every bracket left open, both kinds
    scan = Brackets(text)
    for i, ch, _ in scan:
        if ch == "{":
            braces.append(i)
        elif ch == "}" and braces:
            start = braces.pop()
            if len(braces) <= MAX_SCAN_DEPTH:
                spans.append((start, i + 1))
        if ch in "[{":
            opened.append(ch)
        elif opened:
            opened.pop()
    if not scan.in_string:
        return spans, "{" in opened
    last_close = max((end for _, end in spans), default=0)
    return spans, "{" in text[last_close:] and text.rstrip()[-1:] not in ("}", "]")


def close_open(text: str) -> str:
    """A JSON text cut off midway (at a length limit) with its open string, arrays and objects closed:
    `{"0": {"id": "a/b", "reason": "because` reads as the choice it began to be."""
    text = text[:MAX_CHARS]
    closers: list[str] = []
    scan = Brackets(text)
    for _, ch, _ in scan:
        if ch in "[{":
            closers.append("]" if ch == "[" else "}")
        elif closers:
            closers.pop()
    if scan.escaped:
        text = text[:-1]
    return text + ('"' if scan.in_string else "") + "".join(reversed(closers))


def closed_list(text: str) -> bool:
    """Whether an answer still being written already holds a whole top-level JSON list of objects (or
    an empty one): what a planner writes after it adds nothing to the plan."""
    body = strip_fences(text)
    for start, end in balanced_spans(body, "[", "]", max_depth=0):
        try:
            value = loads_lenient(body[start:end])
        except ValueError:
            continue
        if isinstance(value, list) and all(isinstance(v, dict) for v in value):
            return True
    return False


def extract_json(text: str) -> Any:
    """The JSON value an LLM meant, or raise ValueError. Tries the whole text, then the first
    bracketed value inside it."""
    text = strip_fences(text[:MAX_CHARS])
    try:
        return loads_lenient(text)
    except ValueError:
        pass
    for opener, closer in (("[", "]"), ("{", "}")):
        start = text.find(opener)
        if start < 0:
            continue
        end = text.rfind(closer)
        if end > start:
            try:
                return loads_lenient(text[start:end + 1])
            except ValueError:
                continue
    raise ValueError("no JSON found")
