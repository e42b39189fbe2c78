"""The model catalog: cached Hub metadata that the Select stage draws candidates from.

Reads Jarvis's own JSONL (jarvis/catalog/data/catalog.jsonl, or one written by `catalog refresh`) and
HuggingGPT's p0_models.jsonl, ranks models of a task by downloads and filters them by where they run.
"""
from __future__ import annotations

import html
import json
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from jarvis.runners import registry as tasktypes

log = logging.getLogger(__name__)

DEFAULT_PATH = Path(__file__).resolve().parent / "data" / "catalog.jsonl"
MODES = ("local", "remote", "hybrid")
DESCRIPTION_CHARS = 300
# A task whose candidates are another task's models (depth-control runs a depth estimator).
SOURCE_TASK = {"depth-control": "depth-estimation"}


class CatalogError(Exception):
    """The catalog file cannot be used; the message says which file and what to do."""


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
    local: bool = False                 # runs with the runners Jarvis ships
    providers: list[str] = field(default_factory=list)  # Inference Providers known to serve it
    providers_known: bool = False       # True when `providers` came from the Hub (empty = none serve it)

    @property
    def remote(self) -> bool:
        """Can be asked of Inference Providers: a provider serves it, or nobody checked and the task allows it."""
        if self.providers:
            return True
        task = tasktypes.TASK_TYPES.get(self.task)
        return not self.providers_known and task is not None and task.remote

    def to_json(self) -> dict:
        """Our JSONL shape: unknown figures are left out."""
        out: dict = {"id": self.id, "task": self.task}
        for key in ("downloads", "likes"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        out["tags"] = list(self.tags)
        if self.license:
            out["license"] = self.license
        out["description"] = self.description
        out["local"] = self.local
        if self.providers_known:
            out["providers"] = list(self.providers)
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
        present |= {task for task, source in SOURCE_TASK.items() if source in present}
        return sorted(present)

    def get(self, model_id: str) -> ModelInfo | None:
        return next((m for m in self.models if m.id == model_id), None)

    def candidates(self, task: str, k: int = 5, mode: str = "local",
                   exclude: Iterable[str] = ()) -> list[ModelInfo]:
        """Up to k models for `task`, most downloaded first (unknown counts after known, in file order)."""
        if mode not in MODES:
            raise ValueError(f"unknown inference mode '{mode}': use one of {', '.join(MODES)}")
        name = tasktypes.canonical_task(task) or task
        name = SOURCE_TASK.get(name, name)
        excluded = set(exclude)
        seen: set[str] = set()
        pool: list[ModelInfo] = []
        for m in self.models:
            if m.task != name or m.id in excluded or m.id in seen:
                continue
            if mode == "local" and not m.local or mode == "remote" and not m.remote:
                continue
            seen.add(m.id)
            pool.append(m)
        pool.sort(key=lambda m: (m.downloads is None, -(m.downloads or 0)))  # stable: file order kept
        return pool[:max(k, 0)]


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


def shorten(text: str, limit: int) -> str:
    """Cut at a word boundary with an ellipsis when longer than `limit` characters."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[:limit - 3]
    if " " in cut[limit // 2:]:
        cut = cut[:cut.rfind(" ")]
    return cut.rstrip(" ,;:.-") + "..."


# ---------------------------------------------------------------- reading entries

def parse_entry(obj: dict) -> ModelInfo:
    """One JSON object, ours or HuggingGPT's (recognised by its `meta`/`pipeline_tag` keys)."""
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    model_id, raw_task = obj["id"], obj.get("task") or obj.get("pipeline_tag")
    if not isinstance(model_id, str) or not model_id.strip() or not isinstance(raw_task, str):
        raise ValueError("needs string 'id' and 'task'")
    task = tasktypes.canonical_task(raw_task) or raw_task.strip()
    hugginggpt = "meta" in obj or "pipeline_tag" in obj
    meta = (obj.get("meta") or {}) if hugginggpt else obj
    if not isinstance(meta, dict):
        raise ValueError("'meta' is not an object")
    tags = meta.get("tags") or []
    tags = [tags] if isinstance(tags, str) else [str(t) for t in tags]
    license_ = meta.get("license")
    if isinstance(license_, list):
        license_ = ", ".join(str(x) for x in license_) or None
    description = str(obj.get("description") or "")
    if hugginggpt:
        description = summarize_card(description)
        local = is_local_family(task, tags=tags, model_id=model_id, library=meta.get("library_name"))
    else:
        description = shorten(description, DESCRIPTION_CHARS)
        local = obj.get("local") is True
    providers = obj.get("providers")
    if providers is not None and not isinstance(providers, list):
        raise ValueError("'providers' is not a list")
    return ModelInfo(id=model_id.strip(), task=task, downloads=_count(obj.get("downloads")),
                     likes=_count(obj.get("likes")), tags=tags,
                     license=str(license_) if license_ else None, description=description, local=local,
                     providers=[str(p) for p in providers or []], providers_known=providers is not None)


def _count(value) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"bad count {value!r}")
    return int(value)


# ---------------------------------------------------------------- which models run locally

# diffusers tasks: pipeline classes the runners build, and name/tag hints when no class tag is known.
_DIFFUSERS = {
    "text-to-image": ({"StableDiffusionPipeline"}, ("stable-diffusion",)),
    "image-to-image": ({"StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline"}, ("stable-diffusion",)),
    "image-editing": ({"StableDiffusionInstructPix2PixPipeline"}, ("pix2pix",)),
    "text-to-video": ({"TextToVideoSDPipeline"}, ("text-to-video-ms", "zeroscope")),
    "canny-text-to-image": ({"ControlNetModel"}, ("controlnet",)),
    "depth-text-to-image": ({"ControlNetModel"}, ("controlnet",)),
}
_NOT_SD15 = ("sdxl", "-xl", "flux", "sd3", "sd-3", "kandinsky")
# Tasks whose runners call specific model classes: config model_type -> name hints (for files without config).
_FAMILIES = {
    "image-to-text": {"vision-encoder-decoder": ("vit-gpt2", "trocr", "donut"), "blip": ("blip-image",)},
    "visual-question-answering": {"vilt": ("vilt",), "blip": ("blip-vqa",)},
    "document-question-answering": {"vision-encoder-decoder": ("donut",)},
    "text-to-speech": {"vits": ("mms-tts",)},
    "audio-to-audio": {"speecht5": ("speecht5_vc",)},
}
# Libraries whose models the transformers runners cannot load.
_FOREIGN = {"flair", "spacy", "speechbrain", "espnet", "nemo", "pyannote", "keras", "tf-keras", "fastai",
            "paddlenlp", "paddlepaddle", "asteroid", "fairseq", "sklearn", "timm", "open_clip",
            "ultralyticsplus", "yolov5", "yolov8", "stable-baselines3", "adapter-transformers"}


def is_local_family(task: str, *, tags: Iterable[str] = (), model_id: str = "", library: str | None = None,
                    model_type: str | None = None) -> bool:
    """Whether the runners Jarvis ships can load this model: by library, config model_type or tags."""
    tags = {str(t) for t in tags}
    library = (library or "").lower() or None
    task = SOURCE_TASK.get(task, task)
    name = model_id.lower()
    if task == "canny-control":
        return False
    if task in _DIFFUSERS:
        if library not in (None, "diffusers"):
            return False
        classes, hints = _DIFFUSERS[task]
        tagged = {t.split(":", 1)[1] for t in tags if t.startswith("diffusers:")}
        hinted = any(h in name or h in tags for h in hints)
        if "ControlNetModel" in classes:  # ControlNets must be built for Stable Diffusion 1.x
            return hinted and not any(x in name or x in tags for x in _NOT_SD15)
        return bool(tagged & classes) if tagged else hinted
    if task == "tabular-classification":
        return "skops" in tags  # the runner loads only skops files (pickles can run code on load)
    if library is not None and library not in ("transformers", "sentence-transformers"):
        return False
    if library is None and tags & _FOREIGN:
        return False
    families = _FAMILIES.get(task)
    if families is None:
        return task in tasktypes.TASK_TYPES
    if model_type is not None:
        return model_type in families
    return any(hint in name for hints in families.values() for hint in hints)


# ---------------------------------------------------------------- model card text

_FRONT_MATTER = re.compile(r"\A\s*---\s*\n.*?\n---\s*(\n|\Z)", re.S)
_CODE_BLOCK = re.compile(r"(```|~~~).*?(\1|\Z)", re.S)
_HTML_COMMENT = re.compile(r"<!--.*?(-->|\Z)", re.S)
_DROP_ELEMENTS = re.compile(r"<(script|style|details|table)\b.*?</\1\s*>", re.S | re.I)
_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)|!\[[^\]]*\]\[[^\]]*\]")
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)|\[([^\]]+)\]\[[^\]]*\]")
_REF_DEF = re.compile(r"^\s*\[[^\]]+\]:\s*\S+.*$", re.M)
_TAG = re.compile(r"</?[a-zA-Z][^>]*>")
_URL = re.compile(r"<?https?://\S+>?")
_EMPHASIS = re.compile(r"(\*\*|__|\*|`)(\S(?:.*?\S)?)\1")
_LIST_MARK = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
_PLACEHOLDER = re.compile(r"\[?more information needed\]?", re.I)
_INVISIBLE = re.compile("[\u200b-\u200f\u2060\ufeff]")
_LABEL = re.compile(r"^(model (description|summary|details)|description|summary|overview)\s*:\s*", re.I)


def summarize_card(body: str, limit: int = DESCRIPTION_CHARS) -> str:
    """A model card's markdown body reduced to its first prose paragraph, plain text, <= limit chars."""
    text = _FRONT_MATTER.sub("", _INVISIBLE.sub("", body or ""))
    for pattern in (_CODE_BLOCK, _HTML_COMMENT, _DROP_ELEMENTS, _IMAGE, _REF_DEF):
        text = pattern.sub("\n", text)
    text = _LINK.sub(lambda m: m.group(1) or m.group(2) or "", text)
    text = html.unescape(_URL.sub("", _TAG.sub(" ", text)))
    prose: list[str] = []
    listed: list[str] = []
    for block in re.split(r"\n\s*\n", text):
        lines = [ln.strip() for ln in block.strip().splitlines() if ln.strip()]
        lines = [ln for ln in lines if not ln.startswith(("#", "|")) and not re.fullmatch(r"[-=*_:| ]+", ln)]
        if not lines:
            continue
        is_list = all(_LIST_MARK.match(ln) for ln in lines)
        words = " ".join(_LIST_MARK.sub("", ln.lstrip("> ").strip()) for ln in lines)
        words = _PLACEHOLDER.sub("", _EMPHASIS.sub(r"\2", words))
        words = _LABEL.sub("", " ".join(words.split()).strip(" -:"))
        if len(words.split()) < 4 or not re.search(r"[A-Za-z\u00c0-\uffff]{2}", words):
            continue
        (listed if is_list else prose).append(words)
    parts = prose or listed
    summary = ""
    for part in parts:  # one paragraph; a very short lead sentence borrows the next paragraph
        summary = f"{summary} {part}".strip()
        if len(summary) >= 80:
            break
    return shorten(summary, limit)
