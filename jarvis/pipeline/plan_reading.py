"""Stage 1: the LLM's plan answer read into a Plan (jarvis.pipeline.plan), then checked (plan_checks).

Accepts HuggingGPT's format exactly ({"task", "id", "dep", "args"}, "<GENERATED>-K", dep [-1]) and
what LLMs write around it. Repairs what can be repaired and records each repair; a task that
cannot run carries an `error` the user sees, and its dependents are skipped with the reason.
The references carry the meaning: `dep` is rebuilt from the <GENERATED>-K references.
"""
from __future__ import annotations

import json
import re
from typing import Any

from jarvis.errors import PlanError
from jarvis.files.media_types import media_type
from jarvis.pipeline.lenient_json import MAX_CHARS, extract_json, find_objects, strip_fences
from jarvis.pipeline.plan import REF, ArgValue, Plan, Ref, Task
from jarvis.pipeline.plan_checks import validate
from jarvis.runners.registry import RESOURCE_TYPES, TASK_TYPES, UNSUPPORTED_TASKS, canonical_task

_FULL_REF = re.compile(r"^\s*+<\s*+GENERATED\s*+>?\s*+[-_:]?\s*+(\d{1,9}+)\s*+>?\s*+$", re.I)
_MAX_NESTING = 12   # argument values nested deeper than this are refused, not recursed into

TASK_KEYS = ("task", "type", "task_type", "name", "tool")
_ID_KEYS = ("id", "task_id", "tid")
_DEP_KEYS = ("dep", "deps", "dependencies", "depends_on", "dependency")
_ARGS_KEYS = ("args", "arguments", "inputs", "input", "parameters", "params")
# what LLMs call an argument -> (resource type, slot); slot None = next free slot
_ARG_ALIASES = {
    "question": ("text", 0), "query": ("text", 0), "context": ("text", 1), "passage": ("text", 1),
    "text1": ("text", 0), "sentence1": ("text", 0), "source_sentence": ("text", 0), "sentence": ("text", 0),
    "text2": ("text", 1), "sentence2": ("text", 1), "sentences": ("text", 1), "other": ("text", 1),
    "prompt": ("text", None), "instruction": ("text", None), "description": ("text", None),
    "texts": ("text", None), "input_text": ("text", None), "content": ("text", None),
    "images": ("image", None), "img": ("image", None), "image_url": ("image", None), "picture": ("image", None),
    "control_image": ("image", None), "document": ("image", None),
    "audios": ("audio", None), "audio_url": ("audio", None), "speech": ("audio", None),
    "videos": ("video", None), "video_url": ("video", None),
}


def _raw_tasks(text: str) -> tuple[list[Any], list[str]]:
    """The list of task-like dicts in the LLM's answer, and what had to be repaired to find it."""
    repairs: list[str] = []
    if not text or not text.strip():
        raise PlanError("the planner returned an empty answer")
    body = strip_fences(text)
    try:
        value = extract_json(text)
    except ValueError:
        value = None
    objects, truncated = find_objects(body, must_have=TASK_KEYS)
    if truncated:
        value = None   # it stops inside a task (the length limit): what parsed is only a part; read task by task
    if isinstance(value, dict):
        for key in ("tasks", "plan", "steps"):
            if isinstance(value.get(key), list):
                return value[key], repairs
        if any(k in value for k in TASK_KEYS):
            return [value], repairs
    if isinstance(value, list) and all(isinstance(v, dict) for v in value):   # [] too: a plan of no tasks
        return value, repairs
    if truncated:
        repairs.append(f"the plan was cut off; kept its {len(objects)} complete task(s)")
    if objects:
        repairs.append("the plan was not valid JSON; recovered its tasks one by one")
        return objects, repairs
    raise PlanError("the planner's answer holds no task list (expected JSON like "
                    '[{"task": ..., "id": 0, "dep": [-1], "args": {...}}])')


def _first(d: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for k in keys:
        if k in d:
            return d[k]
    return None


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        m = re.fullmatch(r"\s*+(?:<GENERATED>-)?(-?\d{1,18}+)\s*+", value)
        if m:
            return int(m.group(1))
    return None


def _flatten(value: Any, depth: int = 0) -> list[str]:
    if depth > _MAX_NESTING:
        raise RecursionError("nested too deeply")
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        out: list[str] = []
        for v in value:
            out.extend(_flatten(v, depth + 1))
        return out
    if isinstance(value, dict):
        return [json.dumps(value, ensure_ascii=False, default=str)]
    return [str(value)]


def _normalise_args(raw: Any, task_type: str, notes: list[str], tid: int) -> dict[str, list[str]]:
    spec = TASK_TYPES.get(task_type)
    slots: dict[str, dict[int, str]] = {}
    loose: dict[str, list[str]] = {}
    if isinstance(raw, (str, list)):
        raw = {"text": raw}
    if not isinstance(raw, dict):
        return {}
    for key, value in raw.items():
        k = str(key).strip().lower()
        values = _flatten(value)
        if k in RESOURCE_TYPES:
            loose.setdefault(k, []).extend(values)
        elif k in _ARG_ALIASES:
            rtype, slot = _ARG_ALIASES[k]
            if slot is None:
                loose.setdefault(rtype, []).extend(values)
            else:
                for i, v in enumerate(values):
                    slots.setdefault(rtype, {})[slot + i] = v
        else:
            guessed: str | None = None
            for v in values:
                if isinstance(v, str) and not REF.search(v):
                    guessed = media_type(v.split("?")[0])
            as_type = guessed or ("text" if k in ("src", "source", "target", "file", "path", "url", "value") else None)
            # a task of one input type takes an unknown argument as that input: any text, but as media only
            # a reference (an extra "language": "en" is no audio file)
            if as_type is None and spec and len(set(spec.inputs)) == 1 and (
                    spec.inputs[0] == "text" or all(REF.search(v) for v in values)):
                as_type = spec.inputs[0]
            if as_type:
                loose.setdefault(as_type, []).extend(values)
                notes.append(f"task {tid}: read argument {str(key)[:40]!r} as {as_type}")
            else:
                notes.append(f"task {tid}: ignored unknown argument {str(key)[:40]!r}")
    args: dict[str, list[str]] = {}
    for rtype in set(slots) | set(loose):
        fixed = slots.get(rtype, {})
        rest = list(loose.get(rtype, []))
        size = max([len(fixed) + len(rest)] + [i + 1 for i in fixed])
        ordered: list[str] = []
        for i in range(size):
            if i in fixed:
                ordered.append(fixed[i])
            elif rest:
                ordered.append(rest.pop(0))
        ordered.extend(rest)
        args[rtype] = [v for v in ordered if v is not None and str(v).strip() != ""]
    return {k: v for k, v in args.items() if v}


def _to_refs(values: list[str]) -> list[ArgValue]:
    out: list[ArgValue] = []
    for v in values:
        m = _FULL_REF.match(v)
        out.append(Ref(int(m.group(1))) if m else v)
    return out


def parse_plan(text: str, *, max_tasks: int = 12, files: list[str] | None = None) -> Plan:
    """Parse and validate the planner's answer. Raises PlanError only when nothing usable is there."""
    text = "" if text is None else str(text)
    cut = len(text) > MAX_CHARS
    if cut:
        text = text[:MAX_CHARS]
    try:
        items, repairs = _raw_tasks(text)
    except PlanError as exc:
        if cut:
            raise PlanError(f"{exc}; the answer was longer than {MAX_CHARS} characters and only its "
                            "start was read") from None
        raise
    if cut:
        repairs.insert(0, f"the planner's answer was longer than {MAX_CHARS} characters; read only its start")
    return plan_from_items(items, repairs, max_tasks=max_tasks, files=files, raw=text)


def plan_from_items(items: list[Any], repairs: list[str], *, max_tasks: int = 12, files: list[str] | None = None,
                    raw: str = "") -> Plan:
    """The validated plan of the task items the LLM wrote (or, while it streams, of its first ones)."""
    plan = Plan(repairs=repairs, raw=raw)
    if len(items) > max_tasks:
        repairs.append(f"the plan had {len(items)} tasks; kept the first {max_tasks} (inference.max_tasks)")
        items = items[:max_tasks]
    used_ids: set[int] = set()
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            repairs.append(f"ignored plan item {index}: not an object")
            continue
        noted = len(repairs)
        try:
            task = _read_task(item, index, used_ids, repairs)
        except RecursionError:     # an item left out takes no id and leaves no note but this one
            del repairs[noted:]
            repairs.append(f"ignored plan item {index}: its values are nested too deeply to read")
            continue
        plan.tasks.append(task)
    if items and not plan.tasks:
        raise PlanError(f"none of the plan's {len(items)} item(s) could be read: " + "; ".join(repairs[-3:])[:400])
    validate(plan, files or [])
    return plan


def _read_task(item: dict[str, Any], index: int, used_ids: set[int], repairs: list[str]) -> Task:
    """One task from one plan item; numbers it (a missing or taken id: one above the highest so
    far) and records what was repaired."""
    name = _first(item, TASK_KEYS)
    raw_id = _as_int(_first(item, _ID_KEYS))
    tid = raw_id if raw_id is not None and 0 <= raw_id < 10**9 and raw_id not in used_ids else None
    if tid is None:
        tid = max(used_ids, default=-1) + 1
        repairs.append(f"task {index} had {'a duplicate' if raw_id in used_ids else 'no valid'} id; numbered it {tid}")
    error = None
    if name is None or not str(name).strip():
        error, canonical = "the plan gave this task no type", "unknown"
    elif (known := canonical_task(str(name))) is None:
        key = str(name).strip().lower()
        error = UNSUPPORTED_TASKS.get(key) or (f"unknown task type {str(name)[:60]!r} "
                                               "(known types are listed in the planning prompt)")
        canonical = key[:60]
    else:
        canonical = known
        if canonical != name:
            repairs.append(f"task {tid}: read task type {str(name)[:40]!r} as {canonical!r}")
    args = {k: _to_refs(v) for k, v in _normalise_args(_first(item, _ARGS_KEYS), canonical, repairs, tid).items()}
    dep_raw = _flatten(_first(item, _DEP_KEYS))
    dep = sorted({d for d in (_as_int(x) for x in dep_raw) if d is not None and d >= 0})
    used_ids.add(tid)      # only now: an item that cannot be read takes no id
    return Task(tid, canonical, dep, args, error)

