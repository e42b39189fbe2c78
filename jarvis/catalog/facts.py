"""What a model *is*, as its repository says: library, config model_type and architectures, diffusers
pipeline class, weight format and size, gating, the files that matter. Eligibility is judged from
these facts, never from the model's name.

The same reading serves three sources: a catalog entry's recorded facts (`from_json`), the Hub's
metadata and file list (catalog refresh), and a model's own files in the local Hugging Face cache
(`cached_facts`), which win over what the catalog recorded because they are what will be loaded.
A fact nobody knows stays None (or empty): unknown is never guessed.
"""
from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from huggingface_hub import constants, try_to_load_from_cache

log = logging.getLogger(__name__)

# Weight formats by preference: the first one a repo has is the one its loader reads.
WEIGHT_FORMATS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("safetensors", (".safetensors",)), ("bin", (".bin",)), ("pt", (".pt", ".pth")), ("ckpt", (".ckpt",)),
    ("gguf", (".gguf",)), ("onnx", (".onnx",)), ("skops", (".skops",)), ("pickle", (".pkl", ".pickle")),
    ("joblib", (".joblib",)), ("h5", (".h5", ".keras")), ("msgpack", (".msgpack",)),
)
# Files with weight suffixes that are not weights: training state saved beside a checkpoint.
_NOT_WEIGHTS = re.compile(r"(^|/)(training_args\.bin|optimizer\.(pt|bin)|scheduler\.pt|rng_state[^/]*\.pth)$")
# A precision variant ("model.fp16.safetensors"): loaded only when asked for, so not counted.
_VARIANT = re.compile(r"\.(fp16|bf16|fp32|int8|non_ema|ema)\.[a-z0-9]+$")
# Non-weight files that decide whether a model loads: configs, tokenizers, processors.
_KEY_FILES = re.compile(r"^(config\.json|generation_config\.json|model_index\.json|modules\.json|"
                        r"preprocessor_config\.json|processor_config\.json|feature_extractor_config\.json|"
                        r"image_processor_config\.json|video_preprocessor_config\.json|tokenizer(_config)?\.json|"
                        r"tokenizer\.model|special_tokens_map\.json|added_tokens\.json|vocab\.(json|txt)|"
                        r"merges\.txt|chat_template\.(json|jinja)|[^/]*\.spm|sentencepiece[^/]*\.model)$")
MARKER_FILES = ("config.json", "model_index.json", "preprocessor_config.json", "tokenizer_config.json")


@dataclass(frozen=True)
class ModelFacts:
    """A model repository's facts; None/empty = unknown."""
    library_name: str | None = None          # the Hub's library: transformers, diffusers, sklearn, speechbrain...
    pipeline_tag: str | None = None          # the Hub's task tag
    model_type: str | None = None            # transformers config.json "model_type"
    architectures: tuple[str, ...] = ()      # transformers config.json "architectures"
    pipeline_class: str | None = None        # diffusers "_class_name" (model_index.json, or config.json of one model)
    cross_attention_dim: int | None = None   # diffusers UNet/ControlNet text width (768 = Stable Diffusion 1.x)
    gated: bool | str | None = None          # False, or the Hub's gating: "auto" / "manual"
    weight_format: str | None = None         # the format its loader reads: safetensors, bin, skops, pickle...
    weight_bytes: int | None = None          # size of those weight files
    files: tuple[str, ...] = ()              # configs, tokenizer and processor files present
    # translation: the languages it reads and writes, as its card or tokenizer lists them ("mul" = many)
    source_languages: tuple[str, ...] = ()
    target_languages: tuple[str, ...] = ()

    @property
    def architecture_known(self) -> bool:
        """Whether anything beyond the library says which code loads it."""
        return any((self.model_type, self.architectures, self.pipeline_class, self.weight_format))

    def over(self, base: ModelFacts) -> ModelFacts:
        """These facts, with the ones unknown here taken from `base`."""
        changes = {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) not in (None, ())}
        return replace(base, **changes)

    def to_json(self) -> dict[str, Any]:
        """The known facts as catalog keys (unknown ones left out)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or value == ():
                continue
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> ModelFacts:
        """Facts recorded in a catalog entry; a key of the wrong type is a ValueError naming it."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            value = obj.get(f.name)
            if value is None:
                continue
            if f.name in ("architectures", "files", "source_languages", "target_languages"):
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise ValueError(f"'{f.name}' is not a list of strings")
                value = tuple(value)
            elif f.name in ("cross_attention_dim", "weight_bytes"):
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise ValueError(f"'{f.name}' is not a count")
            elif f.name == "gated":
                if not isinstance(value, (bool, str)):
                    raise ValueError("'gated' is neither false nor a gating kind")
            elif not isinstance(value, str):
                raise ValueError(f"'{f.name}' is not a string")
            values[f.name] = value
        return cls(**values)


def weight_files(filenames: Iterable[str]) -> tuple[str | None, list[str]]:
    """(format, files) of the weights a loader reads: the preferred format present, without precision
    variants, training state, and (in a diffusers pipeline repo) the single-file checkpoints at its root."""
    names = [n for n in filenames if not _NOT_WEIGHTS.search(n) and not _VARIANT.search(n)]
    if "model_index.json" in names:
        names = [n for n in names if "/" in n]
    for fmt, suffixes in WEIGHT_FORMATS:
        chosen = [n for n in names if n.endswith(suffixes)]
        if chosen:
            return fmt, chosen
    return None, []


def facts_from_files(config: Mapping[str, Any] | None, model_index: Mapping[str, Any] | None,
                     filenames: Iterable[str], sizes: Mapping[str, int] | None = None) -> ModelFacts:
    """Facts from a repo's config.json, model_index.json and file list (with sizes when known)."""
    names = sorted(set(filenames))
    config = config or {}
    fmt, weights = weight_files(names)
    size = sum(sizes[n] for n in weights) if sizes is not None and weights and all(n in sizes for n in weights) \
        else None
    facts = ModelFacts(weight_format=fmt, weight_bytes=size,
                       files=tuple(n for n in names if _KEY_FILES.match(n)))
    index_class = (model_index or {}).get("_class_name")
    if isinstance(index_class, str):
        return replace(facts, library_name="diffusers", pipeline_class=index_class)
    if isinstance(config.get("_class_name"), str):   # one diffusers model (a ControlNet, a UNet)
        dim = config.get("cross_attention_dim")
        return replace(facts, library_name="diffusers", pipeline_class=config["_class_name"],
                       cross_attention_dim=dim if isinstance(dim, int) and not isinstance(dim, bool) else None)
    sklearn = config.get("sklearn")
    if isinstance(sklearn, dict):
        model = sklearn.get("model")
        file = str(model.get("file") or "") if isinstance(model, dict) else ""
        declared = sklearn.get("model_format")
        if isinstance(declared, str):
            fmt = declared.lower()
        elif file:
            fmt = weight_files([file])[0]
        return replace(facts, library_name="sklearn", weight_format=fmt)
    model_type = config.get("model_type")
    archs = config.get("architectures")
    if isinstance(model_type, str) or isinstance(archs, list):
        library = "sentence-transformers" if "modules.json" in names else "transformers"
        return replace(facts, library_name=library, model_type=model_type if isinstance(model_type, str) else None,
                       architectures=tuple(str(a) for a in archs) if isinstance(archs, list) else ())
    return facts


# ---------------------------------------------------------------- the local Hugging Face cache

def snapshot(model_id: str) -> Path | None:
    """The cached snapshot of a model repo (its main revision), or None when it is not cached."""
    for name in MARKER_FILES:
        try:
            found = try_to_load_from_cache(model_id, name)
        except Exception as exc:  # an id the hub library refuses (bad characters): not cached
            log.debug("cache look-up for %r failed: %s", model_id, exc)
            return None
        if isinstance(found, str):
            return Path(found).parent
    folder = Path(constants.HF_HUB_CACHE) / ("models--" + model_id.replace("/", "--")) / "snapshots"
    try:
        snaps = [p for p in folder.iterdir() if p.is_dir() and any(p.iterdir())]
    except OSError:
        return None
    return max(snaps, key=lambda p: p.stat().st_mtime) if snaps else None


def cached_facts(model_id: str) -> ModelFacts | None:
    """The facts of a model from its own files in the local HF cache; None when it is not cached."""
    snap = snapshot(model_id)
    if snap is None:
        return None
    try:  # a file added to the snapshot (a download finishing) changes the folder's or a marker's time
        stamp = max([snap.stat().st_mtime_ns] + [(snap / n).stat().st_mtime_ns for n in MARKER_FILES
                                                 if (snap / n).exists()])
    except OSError:
        stamp = 0
    return _read_snapshot(str(snap), stamp)


@lru_cache(maxsize=512)
def _read_snapshot(folder: str, stamp: int) -> ModelFacts:
    """Facts of one snapshot folder, memoised per folder and modification time."""
    snap = Path(folder)
    sizes: dict[str, int] = {}
    for path in snap.rglob("*"):
        try:
            if path.is_file():
                sizes[path.relative_to(snap).as_posix()] = path.stat().st_size
        except OSError:
            continue
    return facts_from_files(_json_file(snap / "config.json"), _json_file(snap / "model_index.json"), sizes, sizes)


def _json_file(path: Path) -> dict[str, Any] | None:
    """A JSON object file; None when absent or unreadable (a broken config is no fact)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
