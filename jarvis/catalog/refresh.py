"""`python -m jarvis catalog refresh`: rebuild the model catalog from the Hugging Face Hub.

For each task type: the most downloaded models (HfApi.list_models, sorted by downloads), each then
looked up (jarvis.catalog.hub_facts: model_info with config, siblings, gating and Inference Provider
mapping; weight sizes) for its facts, and a description cut from its model card. Tasks not
refreshed keep their current entries. `--keep-models` looks up the facts of the models the file
already lists, keeping the selection and the descriptions. `--spaces` adds Gradio Spaces that serve
task types (jarvis.catalog.space_search), keeping every model entry.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path

from huggingface_hub import HfApi, constants, get_session
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError
from huggingface_hub.hf_api import ExpandModelProperty_T

from jarvis.catalog.card_text import summarize_card
from jarvis.catalog.entries import DEFAULT_PATH, Catalog, ModelInfo
from jarvis.catalog.hub_facts import LOOKUP_ERRORS, entry_from_info, look_up
from jarvis.catalog.space_search import DEFAULT_TASKS, merge, search_task
from jarvis.errors import CatalogError
from jarvis.hub_internals import HubHTTPError, HubTransportError
from jarvis.runners import registry as tasktypes
from jarvis.shorten import shorten

# How each task type is found on the Hub; tasks absent here need no model or borrow another's.
HUB_QUERIES: dict[str, dict] = {
    **{t.name: {"pipeline_tag": t.name} for t in tasktypes.TASK_TYPES.values() if t.needs_model and not t.models_of},
    "conversational": {"pipeline_tag": "text-generation", "filter": "conversational"},
    "image-editing": {"pipeline_tag": "image-to-image", "search": "pix2pix"},
    "canny-text-to-image": {"filter": "controlnet", "search": "canny"},
    "depth-text-to-image": {"filter": "controlnet", "search": "depth"},
}

# What the listing asks for: enough to rank the models and tell which may run locally.
EXPAND: list[ExpandModelProperty_T] = ["downloads", "likes", "tags", "config", "library_name", "pipeline_tag"]
log = logging.getLogger(__name__)

MIN_LOCAL = 2  # keep at least this many locally runnable models per task when the Hub has them


def refresh(path: str | Path, tasks: Iterable[str] | None = None, per_task: int = 5,
            token: str | bool | None = None, endpoint: str | None = None,
            progress: Callable[[str], None] = lambda line: None) -> int:
    """Rewrite the catalog at `path` (atomically) with fresh Hub data; returns the number of entries."""
    if constants.is_offline_mode():
        raise CatalogError("HF_HUB_OFFLINE is set, so the Hub cannot be reached; "
                           "unset it to refresh the catalog")
    names = _task_names(tasks)
    if per_task < 1:
        raise CatalogError(f"--per-task must be at least 1, got {per_task}")
    path = Path(path)
    # tasks not refreshed (or that the Hub lists nothing for) keep their entries; a new file starts
    # from the shipped catalog
    kept = Catalog.load(path if path.exists() else DEFAULT_PATH).models
    api = HfApi(endpoint=endpoint, token=token)
    _check_reachable(api.endpoint)
    fresh: dict[str, list[ModelInfo]] = {}
    with tempfile.TemporaryDirectory(prefix="jarvis-cards-") as cards:
        for name in names:
            models = _fetch_task(api, name, per_task, cards)
            if models:
                fresh[name] = models
                local = sum(m.runs_locally(use_cache=False) for m in models)
                progress(f"{name}: {len(models)} models ({local} local)")
            else:
                progress(f"{name}: the Hub listed no models; keeping the current entries")
    entries = [m for m in kept if m.task not in fresh or m.space]   # Gradio Space entries are not the Hub's models
    for models in fresh.values():
        entries.extend(models)
    _write_atomic(path, entries)
    return len(entries)


def refresh_facts(path: str | Path, tasks: Iterable[str] | None = None, token: str | bool | None = None,
                  endpoint: str | None = None, progress: Callable[[str], None] = lambda line: None) -> int:
    """Look up the facts, figures and providers of the models the catalog at `path` lists (of `tasks`,
    or all), keeping its selection, descriptions and `local` declarations; returns how many were updated."""
    if constants.is_offline_mode():
        raise CatalogError("HF_HUB_OFFLINE is set, so the Hub cannot be reached; "
                           "unset it to refresh the catalog")
    wanted = set(_task_names(tasks)) if tasks is not None else None
    path = Path(path)
    entries = Catalog.load(path if path.exists() else DEFAULT_PATH).models
    api = HfApi(endpoint=endpoint, token=token)
    _check_reachable(api.endpoint)
    looked_up: dict[str, ModelInfo] = {}
    updated = 0
    with tempfile.TemporaryDirectory(prefix="jarvis-facts-") as scratch:
        for i, old in enumerate(entries):
            if (wanted is not None and old.task not in wanted) or old.space:   # a Space has no model facts
                continue
            try:
                if old.id not in looked_up:
                    looked_up[old.id] = look_up(api, old.id, old.task, scratch)
            except LOOKUP_ERRORS as exc:
                progress(f"{old.id}: look-up failed ({_reason(exc)}); entry kept as it was")
                continue
            new = looked_up[old.id]
            entries[i] = replace(new, task=old.task, description=old.description or new.description,
                                 local=old.local)
            updated += 1
            progress(f"{old.id}: {_facts_line(entries[i])}")
    _write_atomic(path, entries)
    return updated


def refresh_spaces(path: str | Path, tasks: Iterable[str] | None = None, per_task: int = 3,
                   token: str | bool | None = None, endpoint: str | None = None,
                   progress: Callable[[str], None] = lambda line: None) -> int:
    """Add the MCP-capable Gradio Spaces that serve `tasks` (default: those no provider serves) to the
    catalog at `path`, every other entry kept; returns how many Spaces were found."""
    if constants.is_offline_mode():
        raise CatalogError("HF_HUB_OFFLINE is set, so the Hub cannot be reached; unset it to search for Spaces")
    names = _task_names(tasks) if tasks is not None else DEFAULT_TASKS
    path = Path(path)
    entries = Catalog.load(path if path.exists() else DEFAULT_PATH).models
    api = HfApi(endpoint=endpoint, token=token)
    _check_reachable(api.endpoint)
    found: list[ModelInfo] = []
    for name in names:
        try:
            spaces = search_task(api, name, per_task, progress=progress)
        except (HubHTTPError, HfHubHTTPError, OSError, ValueError) as exc:
            raise CatalogError(f"cannot search the Hub's Spaces for '{name}' at {api.endpoint}: {_reason(exc)}; "
                               "check the network connection (or HF_ENDPOINT)") from None
        progress(f"{name}: {len(spaces)} Space(s)")
        found += spaces
    _write_atomic(path, merge(entries, found))
    return len(found)


def _facts_line(entry: ModelInfo) -> str:
    """One progress line of what a look-up found."""
    f = entry.facts
    kind = f.model_type or f.pipeline_class or f.library_name or "unknown architecture"
    size = f" {f.weight_bytes / 1e6:.0f} MB" if f.weight_bytes is not None else ""
    served = ", ".join(entry.providers) if entry.providers else "no provider"
    return f"{kind}, {f.weight_format or 'no weights found'}{size}, {served}"


def _task_names(tasks: Iterable[str] | None) -> list[str]:
    if tasks is None:
        return list(HUB_QUERIES)
    names = []
    for task in tasks:
        name = tasktypes.canonical_task(task)
        if name is None or name not in HUB_QUERIES:
            known = ", ".join(HUB_QUERIES)
            raise CatalogError(f"cannot refresh task '{task}': use one of {known}")
        names.append(name)
    return names


def _check_reachable(endpoint: str) -> None:
    """One quick request without retries, so a machine without network fails fast and plainly."""
    try:
        get_session().get(f"{endpoint}/api/models", params={"limit": 1}, timeout=15)
    except HubTransportError as exc:
        raise CatalogError(f"cannot reach the Hugging Face Hub at {endpoint}: {_reason(exc)}; "
                           "check the network connection (or HF_ENDPOINT)") from None


def _fetch_task(api: HfApi, task: str, per_task: int, cards_dir: str) -> list[ModelInfo]:
    """The task's most downloaded models, topped up with locally runnable ones, with card summaries."""
    query = HUB_QUERIES[task]
    try:
        listed = list(api.list_models(**query, sort="downloads", limit=max(per_task * 4, 20), expand=EXPAND))
    except (HubHTTPError, HfHubHTTPError, OSError, ValueError) as exc:
        raise CatalogError(f"cannot list '{task}' models from {api.endpoint}: {_reason(exc)}; "
                           "check the network connection (or HF_ENDPOINT)") from None
    models = [entry_from_info(task, info) for info in listed if not getattr(info, "disabled", False)]
    chosen = models[:per_task]
    spare_local = [m for m in models[per_task:] if m.runs_locally(use_cache=False)]
    while sum(m.runs_locally(use_cache=False) for m in chosen) < MIN_LOCAL and spare_local:
        chosen.append(spare_local.pop(0))
    detailed = []
    for model in chosen:
        try:
            model = look_up(api, model.id, task, cards_dir)
        except LOOKUP_ERRORS as exc:  # one model's look-up failing keeps what the listing said of it
            log.warning("looking up %s failed (%s); its entry has the listing's facts only", model.id, _reason(exc))
        model.description = _card_summary(api, model.id, cards_dir)
        detailed.append(model)
    return detailed


def _card_summary(api: HfApi, model_id: str, cards_dir: str) -> str:
    """The model card's first prose paragraph; empty when the card is missing or unreadable."""
    try:
        readme = api.hf_hub_download(model_id, "README.md", cache_dir=cards_dir)
        return summarize_card(Path(readme).read_text(encoding="utf-8", errors="replace"))
    except (OSError, HubHTTPError, EntryNotFoundError) as exc:  # no card, a gated repo, a failed download
        log.debug("no model card for %s: %s", model_id, _reason(exc))
        return ""
    except Exception:  # one unreadable card must not sink the whole refresh
        log.warning("reading the model card of %s failed", model_id, exc_info=True)
        return ""


def _reason(exc: BaseException) -> str:
    """The exception's message on one line, cut to 160 characters."""
    return shorten(exc, 160) or type(exc).__name__


def _write_atomic(path: Path, entries: list[ModelInfo]) -> None:
    """Write the catalog to a temporary file beside `path`, then move it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for entry in entries:
                f.write(json.dumps(entry.to_json(), ensure_ascii=False) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    """CLI: refresh the catalog, print one progress line per task; exit 1 with one line on failure."""
    parser = argparse.ArgumentParser(prog="python -m jarvis catalog refresh",
                                     description="Rebuild the model catalog from the Hugging Face Hub.")
    parser.add_argument("--output", default=os.environ.get("JARVIS_CATALOG") or str(DEFAULT_PATH),
                        help="catalog file to write (default: $JARVIS_CATALOG, else the shipped "
                             "jarvis/catalog/data/catalog.jsonl)")
    parser.add_argument("--per-task", type=int, default=5, help="most downloaded models kept per task")
    parser.add_argument("--task", action="append", dest="tasks", metavar="TASK",
                        help="refresh only this task type (repeatable); others keep their entries")
    parser.add_argument("--endpoint", default=None, help="Hub URL (default: HF_ENDPOINT or huggingface.co)")
    parser.add_argument("--spaces", action="store_true",
                        help="add MCP-capable Gradio Spaces serving the task types (default: those no Inference "
                             "Provider serves), checked against their API; the models are kept")
    parser.add_argument("--keep-models", action="store_true",
                        help="keep the models the file lists and only look up their facts, figures and providers")
    args = parser.parse_args(argv)
    hub_log = logging.getLogger("huggingface_hub")
    level = hub_log.level
    hub_log.setLevel(logging.ERROR)  # its retry warnings would bury the one-line error
    say: Callable[[str], None] = lambda line: print(line, flush=True)
    try:
        if args.spaces:
            count = refresh_spaces(args.output, tasks=args.tasks, per_task=args.per_task,
                                   endpoint=args.endpoint, progress=say)
            print(f"added or updated {count} Gradio Spaces in {args.output}")
            return 0
        if args.keep_models:
            count = refresh_facts(args.output, tasks=args.tasks, endpoint=args.endpoint, progress=say)
            print(f"updated the facts of {count} entries in {args.output}")
            return 0
        count = refresh(args.output, tasks=args.tasks, per_task=args.per_task, endpoint=args.endpoint,
                        progress=say)
    except CatalogError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        hub_log.setLevel(level)
    print(f"wrote {count} models to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
