"""Catalog entries from the Hugging Face Hub's metadata: HfApi.model_info with the config, siblings,
gating and inferenceProviderMapping expansions, the weight files' sizes (paths-info), and, for repos
whose config the Hub does not parse (a diffusers ControlNet, a scikit-learn model), their config.json.

Used by `catalog refresh`; the facts are read with the same code that reads a cached model's files
(jarvis.catalog.facts.facts_from_files), so the catalog and the local cache describe a repo alike.
"""
from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from huggingface_hub import HfApi
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError
from huggingface_hub.hf_api import ExpandModelProperty_T, RepoFile

from jarvis.catalog.entries import ModelInfo
from jarvis.catalog.facts import ModelFacts, facts_from_files, weight_files
from jarvis.hub_internals import HubHTTPError
from jarvis.shorten import shorten

log = logging.getLogger(__name__)

# What one model's look-up asks for (model_info's expand): figures, card, config, files, providers.
INFO_EXPAND: list[ExpandModelProperty_T] = [
    "downloads", "likes", "tags", "cardData", "config", "library_name", "pipeline_tag", "gated", "siblings",
    "inferenceProviderMapping"]
LOOKUP_ERRORS = (HubHTTPError, HfHubHTTPError, OSError, ValueError, KeyError)


def today() -> str:
    """The date of a look-up, as the catalog records it (UTC, YYYY-MM-DD)."""
    return datetime.now(UTC).date().isoformat()


def entry_from_info(task: str, info: Any, repo_config: dict[str, Any] | None = None,
                    sizes: dict[str, int] | None = None, checked: str | None = None) -> ModelInfo:
    """A catalog entry from the Hub's ModelInfo (huggingface_hub.hf_api.ModelInfo) of a listing or a
    look-up; facts the response lacks stay unknown."""
    card = info.card_data
    license_ = getattr(card, "license", None) if card is not None else None
    if isinstance(license_, list):
        license_ = ", ".join(map(str, license_))
    config = info.config if isinstance(info.config, dict) else {}
    pipeline = config.get("diffusers")
    model_index = pipeline if isinstance(pipeline, dict) and isinstance(pipeline.get("_class_name"), str) else None
    names = [s.rfilename for s in info.siblings or []]
    facts = facts_from_files(repo_config or config, model_index, names, sizes)
    gated = info.gated if isinstance(info.gated, (bool, str)) else None
    facts = ModelFacts(library_name=info.library_name, pipeline_tag=info.pipeline_tag, gated=gated).over(facts)
    mapping = info.inference_provider_mapping
    providers = None if mapping is None else [m.provider for m in mapping if m.status == "live"]
    return ModelInfo(
        id=info.id, task=task, downloads=info.downloads, likes=info.likes, tags=list(info.tags or []),
        license=str(license_) if license_ else None, description="", facts=facts,
        providers=providers or [], providers_known=providers is not None,
        providers_checked=(checked or today()) if providers is not None else None)


def look_up(api: HfApi, model_id: str, task: str, scratch: str) -> ModelInfo:
    """One model's entry with every fact the Hub has (no description); raises LOOKUP_ERRORS."""
    info = api.model_info(model_id, expand=INFO_EXPAND)
    names = [s.rfilename for s in info.siblings or []]
    config = info.config if isinstance(info.config, dict) else {}
    repo_config = None
    if "config.json" in names and not isinstance(config.get("model_type"), str) and "diffusers" not in config:
        repo_config = _json_file(api, model_id, "config.json", scratch)
    weights = weight_files(names)[1]
    sizes: dict[str, int] = {}
    if weights:
        sizes = {f.path: f.size for f in api.get_paths_info(model_id, weights) if isinstance(f, RepoFile)}
    return entry_from_info(task, info, repo_config, sizes)


def _json_file(api: HfApi, model_id: str, filename: str, scratch: str) -> dict[str, Any] | None:
    """A small JSON file of the repo (downloaded into `scratch`); None when missing or unreadable."""
    try:
        path = api.hf_hub_download(model_id, filename, cache_dir=scratch)
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, HubHTTPError, EntryNotFoundError) as exc:
        log.debug("no %s for %s: %s", filename, model_id, shorten(exc, 160))
        return None
    return data if isinstance(data, dict) else None
