"""The model catalog: cached Hub metadata that the Select stage draws candidates from.

Reads Jarvis's own JSONL (jarvis/catalog/data/catalog.jsonl, or one written by `catalog refresh`) and
HuggingGPT's p0_models.jsonl, ranks models of a task by downloads and filters them by where they run:
locally by their architecture facts (a cached model's own config first), remotely by their providers.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jarvis.catalog.card_text import DESCRIPTION_CHARS, summarize_card
from jarvis.catalog.eligibility import candidate_task, runs_locally
from jarvis.catalog.facts import ModelFacts, cached_facts
from jarvis.credentials import SPACE_ID
from jarvis.errors import CatalogError
from jarvis.runners.registry import TASK_TYPES, canonical_task
from jarvis.shorten import shorten

log = logging.getLogger(__name__)

DEFAULT_PATH = Path(__file__).resolve().parent / "data" / "catalog.jsonl"
MODES = ("local", "remote", "hybrid")


@dataclass
class ModelInfo:
    """One Hub model as the catalog knows it. None/absent figures are unknown, never guessed."""
    id: str
    task: str
    downloads: int | None = None
    likes: int | None = None
    tags: list[str] = field(default_factory=list)
    license: str | None = None
    description: str = ""
    facts: ModelFacts = field(default_factory=ModelFacts)  # what the repo is: library, architecture, weights
    local: bool | None = None           # the entry's `local` key: False = declared not to run here; else facts decide
    providers: list[str] = field(default_factory=list)  # Inference Providers known to serve it
    providers_known: bool = False       # True when `providers` came from the Hub (empty = none serve it)
    providers_checked: str | None = None  # the date (YYYY-MM-DD) of the Hub look-up behind `providers`
    # a Gradio Space runs this entry (jarvis.execution.spaces): its id or app URL, its endpoint, and the
    # endpoint's other arguments by name; such an entry runs in remote and hybrid mode, never locally
    space: str | None = None
    api_name: str | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def current_facts(self) -> ModelFacts:
        """The model's facts: its own files in the local HF cache when it is there, else the entry's."""
        cached = cached_facts(self.id)
        return self.facts if cached is None else cached.over(self.facts)

    def runs_locally(self, use_cache: bool = True) -> bool:
        """Local mode offers it: its task has a local runner and its facts (from the local HF cache when
        `use_cache` and it is cached, else the entry's) do not rule it out; unknown facts: it is tried."""
        if self.space:
            return False
        facts = self.current_facts() if use_cache else self.facts
        return runs_locally(self.task, facts, self.tags, self.local)

    @property
    def remote(self) -> bool:
        """Can be asked of Inference Providers (a provider serves it, or nobody checked and the task
        allows it), or of the Gradio Space that runs it."""
        if self.providers or self.space:
            return True
        task = TASK_TYPES.get(self.task)
        return not self.providers_known and task is not None and task.remote

    def to_json(self) -> dict[str, Any]:
        """Our JSONL shape: unknown figures are left out."""
        out: dict[str, Any] = {"id": self.id, "task": self.task}
        for key in ("downloads", "likes"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        out["tags"] = list(self.tags)
        if self.license:
            out["license"] = self.license
        out["description"] = self.description
        out.update(self.facts.to_json())
        if self.local is not None:
            out["local"] = self.local
        if self.providers_known:
            out["providers"] = list(self.providers)
        if self.providers_checked:
            out["providers_checked"] = self.providers_checked
        if self.space:
            out.update(space=self.space, api_name=self.api_name)
            if self.params:
                out["params"] = dict(self.params)
        return out


class Catalog:
    """Models by task type, in file order; `candidates` ranks and filters them for one task."""

    def __init__(self, models: Iterable[ModelInfo] = (), source: str = "", skipped: int = 0):
        self.models: list[ModelInfo] = list(models)
        self.source = source
        self.skipped = skipped  # malformed lines left out while loading

    @classmethod
    def load(cls, path: str | Path | None = None) -> Catalog:
        """Read our JSONL or HuggingGPT's p0_models.jsonl (None = the catalog shipped with Jarvis)."""
        path = Path(path) if path else DEFAULT_PATH
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise CatalogError(f"cannot read the model catalog {path}: {reason}; "
                               "set catalog.path to a readable JSONL file or leave it empty "
                               "for the shipped one") from None
        models: list[ModelInfo] = []
        problems: list[str] = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                models.append(parse_entry(json.loads(line)))
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                problems.append(f"line {number}: {exc}")
        if problems:
            log.warning("model catalog %s: skipped %d malformed line(s) (first: %s)",
                        path, len(problems), problems[0])
        return cls(models, str(path), len(problems))

    def __len__(self) -> int:
        return len(self.models)

    def __iter__(self) -> Iterator[ModelInfo]:
        return iter(self.models)

    def tasks(self) -> list[str]:
        """Task types that have candidates (depth-control when depth estimators are present)."""
        present = {m.task for m in self.models}
        present |= {t.name for t in TASK_TYPES.values() if t.models_of and t.models_of in present}
        return sorted(present)

    def get(self, model_id: str) -> ModelInfo | None:
        return next((m for m in self.models if m.id == model_id), None)

    def candidates(self, task: str, k: int = 5, mode: str = "local", exclude: Iterable[str] = (),
                   budget_bytes: int | None = None, light_bytes: int | None = None) -> list[ModelInfo]:
        """Up to k models for `task`, most downloaded first (unknown counts after known, in file order),
        then the entries a Gradio Space runs that the k left out: a Space's use is not counted in
        downloads, so ranking would cut it although it may be its task type's only remote home.
        With `budget_bytes` (local and hybrid mode), a local model whose recorded weights exceed the
        memory budget ranks after every model that fits: it would have to evict everything, or fail.
        With `light_bytes` (given when local models run on a CPU), a model whose recorded weights exceed
        it ranks after the lighter ones (unknown sizes count as light), before those over the budget."""
        if mode not in MODES:
            raise ValueError(f"unknown inference mode '{mode}': use one of {', '.join(MODES)}")
        name = candidate_task(canonical_task(task) or task)
        excluded = set(exclude)
        seen: set[str] = set()
        pool: list[ModelInfo] = []
        for m in self.models:
            if m.task != name or m.id in excluded or m.id in seen:
                continue
            if mode == "local" and not m.runs_locally() or mode == "remote" and not m.remote:
                continue
            seen.add(m.id)
            pool.append(m)
        def too_big(m: ModelInfo) -> bool:
            size = m.facts.weight_bytes
            return (mode != "remote" and budget_bytes is not None and size is not None and size > budget_bytes
                    and m.runs_locally(use_cache=False))

        def heavy(m: ModelInfo) -> bool:
            size = m.facts.weight_bytes
            return light_bytes is not None and size is not None and size > light_bytes

        pool.sort(key=lambda m: (too_big(m), heavy(m), m.downloads is None, -(m.downloads or 0)))  # stable
        top = pool[:max(k, 0)]
        return top + [m for m in pool[len(top):] if m.space] if top else top


def describe(models: Iterable[ModelInfo], desc_chars: int = 100) -> str:
    """Candidates for the selection prompt, one short line each: id, figures, cut description."""
    lines = []
    for m in models:
        figures = [f"{_short_number(m.downloads)} downloads" if m.downloads is not None else "",
                   f"{_short_number(m.likes)} likes" if m.likes is not None else ""]
        figures_text = ", ".join(f for f in figures if f)
        line = f"- {m.id}" + (f" ({figures_text})" if figures_text else "")
        if m.description:
            line += ": " + shorten(m.description, desc_chars)
        lines.append(line)
    return "\n".join(lines)


def _short_number(n: int | None) -> str:
    if n is None:
        return "?"
    for limit, suffix in ((1_000_000_000, "B"), (1_000_000, "M"), (1_000, "k")):
        if n >= limit:
            return f"{n / limit:.1f}".rstrip("0").rstrip(".") + suffix
    return str(n)


# ---------------------------------------------------------------- reading entries

def parse_entry(obj: Any) -> ModelInfo:
    """One JSON object, ours or HuggingGPT's (recognised by its `meta` key)."""
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    model_id, raw_task = obj["id"], obj.get("task") or obj.get("pipeline_tag")
    if not isinstance(model_id, str) or not model_id.strip() or not isinstance(raw_task, str):
        raise ValueError("needs string 'id' and 'task'")
    task = canonical_task(raw_task) or raw_task.strip()
    hugginggpt = "meta" in obj  # HuggingGPT's p0 lines always carry it; ours never do
    meta = (obj.get("meta") or {}) if hugginggpt else obj
    if not isinstance(meta, dict):
        raise ValueError("'meta' is not an object")
    tags = meta.get("tags") or []
    tags = [tags] if isinstance(tags, str) else [str(t) for t in tags]
    license_ = meta.get("license")
    if isinstance(license_, list):
        license_ = ", ".join(str(x) for x in license_) or None
    description = str(obj.get("description") or "")
    local = obj.get("local")
    if hugginggpt:  # its facts: the card's library and the Hub's task tag, when given
        description = summarize_card(description)
        library, tag = meta.get("library_name"), obj.get("pipeline_tag")
        facts = ModelFacts(library_name=library if isinstance(library, str) else None,
                           pipeline_tag=tag if isinstance(tag, str) else None)
    else:
        description = shorten(description, DESCRIPTION_CHARS)
        facts = ModelFacts.from_json(obj)
        if local is not None and not isinstance(local, bool):
            raise ValueError("'local' is not true or false")
    providers = obj.get("providers")
    if providers is not None and not isinstance(providers, list):
        raise ValueError("'providers' is not a list")
    checked = obj.get("providers_checked")
    space, api_name, params = _space_fields(obj)
    return ModelInfo(id=model_id.strip(), task=task, downloads=_count(obj.get("downloads")),
                     likes=_count(obj.get("likes")), tags=tags,
                     license=str(license_) if license_ else None, description=description, facts=facts,
                     local=local if isinstance(local, bool) else None,
                     providers=[str(p) for p in providers or []], providers_known=providers is not None,
                     providers_checked=str(checked) if checked else None, space=space, api_name=api_name,
                     params=params)


def _space_fields(obj: dict[str, Any]) -> tuple[str | None, str | None, dict[str, Any]]:
    """`space`, `api_name`, `params` of an entry a Gradio Space runs (all None/empty otherwise)."""
    space, api_name, params = obj.get("space"), obj.get("api_name"), obj.get("params") or {}
    if space is None:
        if api_name is not None or params:
            raise ValueError("'api_name' and 'params' belong to an entry with a 'space'")
        return None, None, {}
    if not isinstance(space, str) or not (SPACE_ID.fullmatch(space) or space.startswith(("http://", "https://"))):
        raise ValueError("'space' must be a Space id (owner/name) or a Gradio app URL")
    if not isinstance(api_name, str) or not api_name.startswith("/"):
        raise ValueError("an entry with a 'space' needs its endpoint as 'api_name' (\"/predict\")")
    if not isinstance(params, dict) or not all(isinstance(k, str) for k in params):
        raise ValueError("'params' must be an object of the endpoint's other arguments by name")
    return space, api_name, dict(params)


def _count(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"bad count {value!r}")
    return int(value)
