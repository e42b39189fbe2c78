"""Stage 2: a model for every task. One LLM call chooses for all tasks that have a real choice;
a task with a single candidate needs no call. An answer naming a model that is not a candidate
falls back to the top-ranked one, and the reason says so."""
from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jarvis.catalog.entries import ModelInfo
from jarvis.catalog.languages import covers, read_request
from jarvis.errors import LLMError
from jarvis.llm import prompts
from jarvis.llm.backend import LLMBackend, Usage
from jarvis.llm.plan_schema import ChoiceSchema
from jarvis.pipeline.lenient_json import close_open, extract_json, strip_fences
from jarvis.pipeline.plan import Plan, Task

log = logging.getLogger(__name__)


Describe = Callable[[Sequence[ModelInfo]], str]   # candidates as the selection prompt lists them
Watch = Callable[[Iterator[str]], Iterator[str]]   # sees the answer's deltas go by (progress)


@dataclass
class Choice:
    """The model picked for one task, why, and the ranked candidates it was picked from."""
    task_id: int
    model: str
    reason: str
    candidates: list[str]


def list_ids(candidates: Sequence[ModelInfo]) -> str:
    """The plainest candidate list: one id per line."""
    return "\n".join(f"- {c.id}" for c in candidates)


def _describe(task: Task, candidates: Sequence[ModelInfo], describe: Describe) -> str:
    args = "; ".join(f"{k}: {', '.join(str(v)[:80] for v in vs)}" for k, vs in task.args.items())
    return f"Task {task.id}: {task.task} ({args})\n{describe(candidates)}"


GENERATED_TEXT = re.compile(r"<GENERATED>-\d+")   # another task's output inside a text, unknown until it runs
UNASSIGNED = -1   # a bare {"id": MODEL, "reason": ...} (HuggingGPT's per-task format) names no task
_TASK_KEY = re.compile(r"\s*+(?:task\s*+(?:id)?\s*+[#:_-]?\s*+)?(\d{1,9}+)\s*+", re.I)


def _task_key(key: Any) -> int | None:
    if isinstance(key, bool):
        return None
    if isinstance(key, int):
        return key
    if isinstance(key, float) and key.is_integer():
        return int(key)
    m = _TASK_KEY.fullmatch(key) if isinstance(key, str) and len(key) < 40 else None
    return int(m.group(1)) if m else None


def _parse_choices(text: str) -> dict[int, tuple[str, str]]:
    """{task id: (model id, reason)} from the selector's answer, tolerating the usual variants."""
    text = "" if text is None else str(text)
    try:
        data = extract_json(text)
    except (ValueError, RecursionError):
        try:       # cut off at the length limit, in a long reason: the choice before it still counts
            data = extract_json(close_open(strip_fences(text)))
        except (ValueError, RecursionError):
            return {}
    out: dict[int, tuple[str, str]] = {}
    items: list[tuple[Any, Any]] = []
    if isinstance(data, dict):
        if "id" in data and isinstance(data.get("id"), str) and ("task_id" in data or "task" in data):
            items = [(data.get("task_id", data.get("task")), data)]
        elif isinstance(data.get("id") or data.get("model") or data.get("model_id"), str):
            items = [(UNASSIGNED, data)]
        else:
            items = list(data.items())
    elif isinstance(data, list):
        items = [(d.get("task_id", d.get("task")), d) for d in data if isinstance(d, dict)]
    for key, value in items:
        tid = _task_key(key)
        if tid is None:
            continue
        if isinstance(value, str):
            out[tid] = (value.strip(), "")
        elif isinstance(value, dict):
            model = value.get("id") or value.get("model") or value.get("model_id")
            if isinstance(model, str):
                reason = value.get("reason")
                out[tid] = (model.strip(), reason.strip()[:500] if isinstance(reason, str) else "")
    return out


def for_language_pair(task: Task, candidates: Sequence[ModelInfo]) -> list[ModelInfo]:
    """A translation's candidates that can do its language pair (the languages its text names, or its
    source as detected from a literal text), in rank order; an entry whose languages are not recorded
    stays. When none is left, the task carries an error saying so, and gets no candidate."""
    if task.task != "translation" or not candidates:
        return list(candidates)
    literal = next((v for v in task.args.get("text", []) if isinstance(v, str)), "")
    request = read_request(GENERATED_TEXT.sub(" ", literal)) if literal else None
    if request is None or (request.target is None and request.source is None):
        return list(candidates)
    source = None if request.source_detected and GENERATED_TEXT.search(literal) else request.source

    def fits(m: ModelInfo) -> bool:
        return (covers(m.facts.target_languages, request.target) is not False
                and covers(m.facts.source_languages, source) is not False)
    kept = [m for m in candidates if fits(m)]
    if not kept:
        pair = f"{source.title if source else 'any language'} to {request.target.title if request.target else 'any'}"
        task.error = (f"no translation model in the catalog translates {pair} (tried {', '.join(m.id for m in candidates[:5])}); "
                      "add one to the catalog (e.g. facebook/nllb-200-distilled-600M covers 200 languages) or "
                      "ask for another language")
    return kept


def only_choice(task: Task, candidates: Sequence[ModelInfo]) -> Choice | None:
    """The choice when there is nothing to choose: the single candidate (None: zero, or several)."""
    if len(candidates) != 1:
        return None
    return Choice(task.id, candidates[0].id, "the only candidate for this task", [candidates[0].id])


def select_models(plan: Plan, request: str, candidates: Mapping[int, Sequence[ModelInfo]], llm: LLMBackend | None,
                  usage: Usage, describe: Describe = list_ids, watch: Watch = iter) -> dict[int, Choice]:
    """Choose a model per task. `candidates` maps task id -> ranked candidates (objects with .id); a
    task without any is left out. The LLM's answer streams through `watch` (the progress meter)."""
    choices: dict[int, Choice] = {}
    needs_llm = []
    for task in plan.tasks:
        cands = candidates.get(task.id) or []
        if task.error or not cands:
            continue
        only = only_choice(task, cands)
        if only is not None:
            choices[task.id] = only
        else:
            needs_llm.append(task)
    if not needs_llm:
        return choices
    answer: dict[int, tuple[str, str]] = {}
    failure = ""
    if llm is not None:
        body = "\n".join(_describe(t, candidates[t.id], describe) for t in needs_llm)
        prompt = prompts.render("select", request=request[:1500], tasks=body)
        try:
            schema = ChoiceSchema.for_tasks((t.id, [c.id for c in candidates[t.id]]) for t in needs_llm)
            deltas = llm.stream([{"role": "user", "content": prompt}], usage, max_tokens=120 * len(needs_llm) + 60,
                                schema=schema)
            text = "".join(watch(deltas))
            answer = _parse_choices(text)
            if not answer:
                failure = "the model-selection answer was not readable"
        except LLMError as exc:
            failure = f"model selection failed ({exc})"
            log.warning("model selection failed: %s", exc)
    if UNASSIGNED in answer and len(needs_llm) == 1:
        answer.setdefault(needs_llm[0].id, answer[UNASSIGNED])
    for task in needs_llm:
        ids = [c.id for c in candidates[task.id]]
        picked = answer.get(task.id)
        if picked and picked[0] in ids:
            choices[task.id] = Choice(task.id, picked[0], picked[1] or "chosen by the selector", ids)
        elif picked:
            choices[task.id] = Choice(task.id, ids[0], f"the selector named {picked[0][:80]!r}, which is not a "
                                      f"candidate; used the top-ranked {ids[0]}", ids)
        else:
            why = failure or "the selector gave no choice for this task"
            choices[task.id] = Choice(task.id, ids[0], f"{why}; used the top-ranked {ids[0]}", ids)
    return choices
