"""Helpers shared by the text runners: model loading with clear errors, the model's real input
window, and JSON-safe numbers. torch/transformers import lazily."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jarvis.errors import TaskError
from jarvis.runners.base import Device, RunContext, TaskInputs
from jarvis.runners.local.loading import first_line, torch_dtype

# Tokenizers without a declared limit report this huge sentinel; anything above it means "unknown".
_NO_LIMIT = 1_000_000
# RoBERTa-style position embeddings reserve two slots for the padding offset.
_OFFSET_TWO = {"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "data2vec-text", "mpnet", "longformer"}


@dataclass
class TextModel:
    """A loaded model with its tokenizer and the most tokens it can read at once."""
    model: Any
    tokenizer: Any
    max_tokens: int
    device: Device
    extra: dict[str, Any] = field(default_factory=dict)


def model_max_tokens(model: Any, tokenizer: Any, default: int = 512) -> int:
    """The longest input the model takes: the smaller of the tokenizer's and the config's limits."""
    limits: list[int] = []
    declared = getattr(tokenizer, "model_max_length", None)
    if isinstance(declared, int) and 0 < declared < _NO_LIMIT:
        limits.append(declared)
    config = getattr(model, "config", None)
    for name in ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            if getattr(config, "model_type", "") in _OFFSET_TWO:
                value -= 2
            limits.append(value)
            break
    return min(limits) if limits else default


def input_cap(loaded: TextModel, ctx: RunContext, reserve: int = 0) -> int:
    """Tokens of input allowed this run: the model window (less `reserve` for generated tokens),
    capped by options.max_input_tokens so a huge-window model stays fast on CPU."""
    return max(8, min(loaded.max_tokens - reserve, ctx.options.max_input_tokens))


def load_parts(model_id: str, task: str, model_loader: Callable[..., Any], device: Device,
               tokenizer_kwargs: dict[str, Any] | None = None) -> TextModel:
    """Load model + tokenizer with `model_loader` (e.g. AutoModelForSeq2SeqLM.from_pretrained)
    on the device; a model of the wrong kind becomes a TaskError that says so."""
    from transformers import AutoTokenizer
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_id, **(tokenizer_kwargs or {}))
        model = model_loader(model_id, dtype=torch_dtype(device))
    except (ValueError, KeyError) as exc:
        raise TaskError(f"{model_id} cannot run {task} locally ({first_line(exc)}); "
                        f"pick a {task} model of a supported architecture") from exc
    except ImportError as exc:
        raise TaskError(f"{model_id} needs a missing package: {first_line(exc)}") from exc
    model.to(device.name).eval()
    return TextModel(model, tokenizer, model_max_tokens(model, tokenizer), device)


def text_input(inputs: TaskInputs, what: str = "text") -> str:
    """The task's first text, stripped; a clear error when it is empty."""
    text = str(inputs.first("text")).strip()
    if not text:
        raise TaskError(f"the {what} is empty; give this task some text")
    return text


def two_texts(inputs: TaskInputs, first: str, second: str) -> tuple[str, str]:
    """The task's two texts (question then context, or two sentences), stripped; an error names them."""
    texts = [str(t).strip() for t in inputs.text]
    if len(texts) < 2 or not texts[0] or not texts[1]:
        raise TaskError(f"this task needs two texts, the {first} then the {second}; got {len(texts)}")
    return texts[0], texts[1]


def to_device(batch: Any, device: Device) -> dict[str, Any]:
    """A tokenizer/processor batch with every tensor moved to the device."""
    return {k: v.to(device.name) for k, v in batch.items()}


def num(value: Any, digits: int = 4) -> float:
    """A JSON-safe rounded float from a numpy/torch scalar."""
    return round(float(value), digits)


def truncate_ids(ids: list[int], limit: int, keep: str = "start") -> tuple[list[int], bool]:
    """At most `limit` ids, keeping the start or the end; and whether anything was cut."""
    if len(ids) <= limit:
        return ids, False
    return (ids[:limit] if keep == "start" else ids[-limit:]), True


def cut_to_tokens(text: str, tokenizer: Any, limit: int) -> tuple[str, bool]:
    """The start of `text` holding at most `limit` tokens (by character offsets), and whether cut."""
    if len(text) < limit:  # a token covers at least one character
        return text, False
    if not getattr(tokenizer, "is_fast", False):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        return (text, False) if len(ids) <= limit else (tokenizer.decode(ids[:limit]), True)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    offsets = encoded["offset_mapping"]
    if len(offsets) <= limit:
        return text, False
    return text[: offsets[limit - 1][1]], True
