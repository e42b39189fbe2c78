"""What a valid plan and a valid model choice look like, built from the task registry and from each
task's candidates: a JSON schema for servers that take `response_format`, and a Lark grammar
(llguidance's dialect) under which the embedded backend decodes.

The grammar is stricter than any JSON schema can be. A plan decoded under it needs no repair by
jarvis.pipeline.plan_reading.parse_plan: tasks are numbered 0, 1, 2... in order; a task's type is a
runnable one; its args hold exactly the inputs its type takes; a value is a literal (text without
"<", a file name of the right media type, a URL) or "<GENERATED>-K" of an earlier task K that
produces that type; and `dep` lists exactly the tasks its args refer to. Which earlier tasks
produce what is known only once they are written, so the grammar is built again after each task
(`checkpoint`). Literals are capped so that the answer always ends within its token budget.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import combinations, product
from typing import Any

from jarvis.files.media_types import MEDIA_SUFFIXES
from jarvis.pipeline.lenient_json import Brackets
from jarvis.runners.registry import TASK_TYPES, TaskType

TEXT_CHARS = 300      # longest literal text in a plan
FILE_CHARS = 160      # longest file name or URL
REASON_CHARS = 160    # longest reason given for a model choice
MIN_CHARS = 14        # below this cap a task type is no longer offered: the token budget is spent
                      # (a slot's room must also hold a reference, '"<GENERATED>-NN"')
_END = 4              # the closing "]" and the end-of-text token, with room to spare

# one JSON string character: anything printable but a quote, a backslash and "<" (which would start a
# <GENERATED> reference inside a literal), or a simple escape
_CHAR = r'([^"\\<\x00-\x1f]|\\["\\\/nt])'
_FIRST = r'([^"\\<\x00-\x20]|\\["\\\/nt])'   # the first visible one: a value that is only spaces is no value


def runnable_task_types(mode: str) -> list[TaskType]:
    """The task types a plan may use in an inference mode: a local runner ships for them (local),
    Inference Providers serve them (remote), or either (hybrid)."""
    return [t for t in TASK_TYPES.values() if (mode != "remote" and t.local) or (mode != "local" and t.remote)]


def arg_layout(spec: TaskType) -> list[tuple[str, int]]:
    """(resource type, how many) in the order the type's inputs first name them: the keys of its args."""
    return [(rtype, spec.count(rtype)) for rtype in dict.fromkeys(spec.inputs)]


def _lit(text: str) -> str:
    """A Lark string literal matching `text` exactly (escaped as JSON: Lark refuses some raw characters)."""
    return json.dumps(text)


def _ref(task_id: int) -> str:
    return _lit(json.dumps(f"<GENERATED>-{task_id}"))


class _Rules:
    """The grammar's named rules, each written once."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._named: set[str] = set()

    def add(self, name: str, body: str) -> str:
        if name not in self._named:
            self._named.add(name)
            self.lines.append(f"{name}: {body}")
        return name

    def text(self, chars: int) -> str:
        return self.add(f"text_{chars}", f'/"[ ]{{0,3}}{_FIRST}{_CHAR}{{0,{chars - 1}}}"/')

    def media(self, rtype: str, chars: int, files: Sequence[str]) -> str:
        suffixes = "|".join(sorted(s.lstrip(".") for s in MEDIA_SUFFIXES[rtype]))
        name_chars = max(1, chars - 6)
        choices = [f'/"[^"\\\\<>\\x00-\\x1f]{{1,{name_chars}}}\\.({suffixes})"/',
                   f'/"https?:\\/\\/[^"\\\\<>\\x00-\\x20]{{1,{chars}}}"/']
        choices += [_lit(json.dumps(f)) for f in files if len(f) <= chars]
        return self.add(f"{rtype}_{chars}", " | ".join(choices))

    def render(self) -> str:
        return "\n".join(self.lines) + "\n"


@dataclass(frozen=True)
class PlanSchema:
    """A plan for one request: its task types, its length limit, the chat's files by media type."""
    task_types: tuple[TaskType, ...]
    max_tasks: int
    files: tuple[tuple[str, str], ...] = ()    # (name, media type) of the session's files
    name: str = "plan"

    @classmethod
    def for_request(cls, mode: str, max_tasks: int, files: Iterable[tuple[str, str]] = ()) -> PlanSchema:
        return cls(tuple(runnable_task_types(mode)), max_tasks, tuple(files))

    # -- for servers ------------------------------------------------------------------------------
    def json_schema(self) -> dict[str, Any]:
        """The plan as {"tasks": [...]} (OpenAI's structured outputs want an object at the top; the plan
        parser reads both forms). Only what a JSON schema can say: types, ids, args by task type."""
        variants = []
        for spec in self.task_types:
            props: dict[str, Any] = {}
            for rtype, count in arg_layout(spec):
                value = {"type": "string"}
                props[rtype] = value if count == 1 else {"type": "array", "items": value,
                                                         "minItems": count, "maxItems": count}
            args = {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}
            variants.append({"type": "object", "additionalProperties": False,
                             "required": ["task", "id", "dep", "args"],
                             "properties": {"task": {"type": "string", "enum": [spec.name]},
                                            "id": {"type": "integer"},
                                            "dep": {"type": "array", "items": {"type": "integer"}},
                                            "args": args}})
        tasks = {"type": "array", "items": {"anyOf": variants}, "maxItems": self.max_tasks}
        return {"type": "object", "properties": {"tasks": tasks}, "required": ["tasks"], "additionalProperties": False}

    # -- for the embedded backend -----------------------------------------------------------------
    def checkpoint(self, text: str) -> int:
        """Where the last complete task object of a partial plan ends (0 before the first one)."""
        return max((i + 1 for i, ch, depth in Brackets(text) if ch == "}" and depth == 1), default=0)

    def grammar(self, done: str, budget: int) -> str:
        """Every plan that starts with `done` (empty, or complete task objects up to the last one's "}")
        and ends within `budget` more tokens (counted as bytes: a token holds at least one)."""
        written = json.loads(done + "]") if done else []
        produces = [TASK_TYPES[t["task"]].outputs for t in written]
        rules = _Rules()
        k = len(written)
        task = self._task_rule(rules, k, produces, budget - (2 if done else 1)) if k < self.max_tasks else None
        head = _lit(done) if done else '"["'
        rest = '"]"' if task is None else f'"]" | ", " {task}' if done else f'"]" | {task}'
        return f"start: {head} ({rest})\n" + rules.render()

    def _skeleton(self, spec: TaskType, k: int) -> int:
        """Bytes of task k's object without its values (with the longest dep list it can have)."""
        layout = arg_layout(spec)
        slots = sum(count for _, count in layout)
        return len(self._render(spec, k, [10 ** len(str(k)) - 1] * slots, layout, [""] * slots))

    def _least(self, k: int) -> int:
        """The fewest bytes task k and the plan's end can take: the smallest type with the shortest literals."""
        return min(self._skeleton(spec, k) + len(spec.inputs) * (MIN_CHARS + 2) for spec in self.task_types) + 2 + _END

    def _task_rule(self, rules: _Rules, k: int, produces: list[tuple[str, ...]], budget: int) -> str | None:
        """The rule for task k and what may follow it, or None when no task type fits in the budget.
        Another task may follow only when it fits too, however long this one's literals turn out."""
        branches = []
        least = self._least(k + 1)
        for spec in self.task_types:
            layout = arg_layout(spec)
            slots = [rtype for rtype, count in layout for _ in range(count)]
            skeleton = self._skeleton(spec, k)
            chars = min((budget - skeleton - _END) // len(slots) - 2, TEXT_CHARS)
            if chars < MIN_CHARS:
                continue
            values = {rtype: (rules.text(chars) if rtype == "text" else
                              rules.media(rtype, min(chars, FILE_CHARS),
                                          [name for name, media in self.files if media == rtype]))
                      for rtype in set(slots)}
            alternatives = []
            for dep, assignment in _assignments(slots, produces):
                alternatives.append(self._render(spec, k, dep, layout, [
                    _ref(a) if a is not None else values[rtype] for rtype, a in zip(slots, assignment)], lark=True))
            left = budget - skeleton - len(slots) * (chars + 2)
            more = k + 1 < self.max_tasks and left >= least
            follow = '"]"'
            if more:
                # what may follow until the grammar is built again for the next task (the token that
                # closes this object may hold the start of the next one)
                follow = rules.add("more", '"]" | ", {\\"task\\": \\"" LOOSE')
                rules.add("LOOSE", "/[^\\n]{0,400}/")
            rule = f"t{k}_{spec.name.replace('-', '_')}"
            branches.append(rules.add(rule, f"({' | '.join(dict.fromkeys(alternatives))}) {follow}"))
        if not branches:
            return None
        return rules.add(f"task_{k}", " | ".join(branches))

    @staticmethod
    def _render(spec: TaskType, k: int, dep: Sequence[int], layout: list[tuple[str, int]], values: list[str],
                lark: bool = False) -> str:
        """One task object as text (`lark=False`: values are texts) or as a Lark sequence (values are rules
        or literals, written between the object's fixed parts)."""
        parts: list[tuple[bool, str]] = []   # (is fixed text, piece)
        deps = ", ".join(str(d) for d in dep) if dep else "-1"
        parts.append((True, f'{{"task": "{spec.name}", "id": {k}, "dep": [{deps}], "args": {{'))
        i = 0
        for n, (rtype, count) in enumerate(layout):
            parts.append((True, (", " if n else "") + f'"{rtype}": ' + ("[" if count > 1 else "")))
            for c in range(count):
                if c:
                    parts.append((True, ", "))
                parts.append((False, values[i]))
                i += 1
            if count > 1:
                parts.append((True, "]"))
        parts.append((True, "}}"))
        if not lark:
            return "".join(piece for _, piece in parts)
        merged: list[str] = []
        fixed = ""
        for is_fixed, piece in parts:
            if is_fixed:
                fixed += piece
                continue
            if fixed:
                merged.append(_lit(fixed))
                fixed = ""
            merged.append(piece)
        merged.append(_lit(fixed))
        return " ".join(merged)


def _assignments(slots: list[str], produces: list[tuple[str, ...]]) -> list[tuple[list[int], tuple[int | None, ...]]]:
    """Every (dep, what fills each slot) of a task: a slot holds a literal (None) or the output of an
    earlier task that produces its type; dep is exactly the set of tasks used, each used at least once."""
    out: list[tuple[list[int], tuple[int | None, ...]]] = [([], tuple(None for _ in slots))]
    able = [j for j, outputs in enumerate(produces) if any(r in outputs for r in slots)]
    for size in range(1, len(slots) + 1):
        for dep in combinations(able, size):
            options = [[None, *[j for j in dep if rtype in produces[j]]] for rtype in slots]
            for assignment in product(*options):
                if set(dep) == {a for a in assignment if a is not None}:
                    out.append((list(dep), assignment))
    return out


@dataclass(frozen=True)
class ChoiceSchema:
    """The model choices for the tasks that have a real choice: {"TASK_ID": {"id": MODEL_ID, "reason": TEXT}}
    with one entry per task, in order, each id one of that task's candidates."""
    candidates: tuple[tuple[int, tuple[str, ...]], ...]
    name: str = "model_choice"

    @classmethod
    def for_tasks(cls, candidates: Iterable[tuple[int, Sequence[str]]]) -> ChoiceSchema:
        return cls(tuple((tid, tuple(ids)) for tid, ids in candidates))

    def json_schema(self) -> dict[str, Any]:
        props = {str(tid): {"type": "object", "additionalProperties": False, "required": ["id", "reason"],
                            "properties": {"id": {"type": "string", "enum": list(ids)},
                                           "reason": {"type": "string"}}}
                 for tid, ids in self.candidates}
        return {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}

    def checkpoint(self, text: str) -> int:
        return 0    # nothing depends on what came before: one grammar serves the whole answer

    def grammar(self, done: str, budget: int) -> str:
        skeletons = [len(f'"{tid}": {{"id": "", "reason": ""}}, ') + max(map(len, ids)) for tid, ids in self.candidates]
        chars = max(0, min(REASON_CHARS, (budget - sum(skeletons) - _END) // max(1, len(self.candidates))))
        rules = _Rules()
        reason = rules.add("reason", f'/"{_CHAR}{{0,{chars}}}"/')
        entries = []
        for tid, ids in self.candidates:
            models = " | ".join(_lit(json.dumps(i)) for i in ids)
            head, middle = _lit(f'"{tid}": {{"id": '), _lit(', "reason": ')
            entries.append(rules.add(f"choice_{tid}", f'{head} ({models}) {middle} {reason} "}}"'))
        sequence = ' ", " '.join(entries)
        return f'start: "{{" {sequence} "}}"\n' + rules.render()
