"""Local runners of token and text classification, on the transformers pipelines (which still exist
in transformers 5); the other text runners live in text_*.py and use the model classes.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jarvis.errors import TaskError
from jarvis.runners.base import Device, RunContext, Runner, TaskInputs, TaskOutputs
from jarvis.runners.local.loading import first_line, torch_dtype
from jarvis.runners.local.text_support import TextModel, cut_to_tokens, input_cap, model_max_tokens, num, text_input


def _pipeline(task: str, model_id: str, device: Device) -> TextModel:
    """A transformers pipeline whose tokenizer knows the model's real input window."""
    from transformers import pipeline
    build: Callable[..., Any] = pipeline  # its overloads name each task literally; ours is a variable
    try:
        pipe = build(task, model=model_id, device=device.name, dtype=torch_dtype(device))
    except (ValueError, KeyError) as exc:
        raise TaskError(f"{model_id} cannot run {task} locally ({first_line(exc)}); "
                        f"pick a {task} model of a supported architecture") from exc
    limit = model_max_tokens(pipe.model, pipe.tokenizer)
    pipe.tokenizer.model_max_length = limit
    return TextModel(pipe, pipe.tokenizer, limit, device)


class TokenClassificationRunner(Runner):
    """Named entities (or other word labels) with scores and character offsets.

    A long text is read in overlapping windows of the model's size (the pipeline's stride),
    up to options.max_input_tokens tokens in all."""
    task = "token-classification"

    def load(self, model_id: str, device: Device) -> TextModel:
        loaded = _pipeline("token-classification", model_id, device)
        if not loaded.tokenizer.is_fast:
            raise TaskError(f"{model_id} has no fast tokenizer, which entity offsets need; pick another model")
        return loaded

    def run(self, loaded: TextModel, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        text = text_input(inputs)
        text, cut = cut_to_tokens(text, loaded.tokenizer, input_cap(loaded, ctx))
        stride = max(1, min(64, loaded.max_tokens // 8))
        found = loaded.model(text, aggregation_strategy="simple", stride=stride)
        entities = [{"entity": e.get("entity_group", e.get("entity")), "word": text[e["start"]:e["end"]]
                     if e.get("start") is not None else e["word"], "score": num(e["score"]),
                     "start": e.get("start"), "end": e.get("end")} for e in found]
        if entities:
            lines = "; ".join(f"{e['word']} ({e['entity']}, {e['score']:.2f})" for e in entities)
        else:
            lines = "no entities found"
        return TaskOutputs(text=lines, detail={"entities": entities, "truncated": cut})


class TextClassificationRunner(Runner):
    """Labels of a whole text with their scores, best first; long texts are truncated."""
    task = "text-classification"

    def load(self, model_id: str, device: Device) -> TextModel:
        return _pipeline("text-classification", model_id, device)

    def run(self, loaded: TextModel, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        text = text_input(inputs)
        limit = input_cap(loaded, ctx)
        scores = loaded.model(text, top_k=None, truncation=True, max_length=limit)
        if scores and isinstance(scores[0], list):
            scores = scores[0]
        ranked = sorted(((str(s["label"]), num(s["score"])) for s in scores), key=lambda pair: -pair[1])
        labels = [{"label": label, "score": score} for label, score in ranked]
        if not labels:
            raise TaskError("the classifier returned no labels; pick another text-classification model")
        best = labels[0]
        others = ", ".join(f"{s['label']} {s['score']:.2f}" for s in labels[1:5])
        summary = f"{best['label']} (score {best['score']:.2f})" + (f"; others: {others}" if others else "")
        n_tokens = len(loaded.tokenizer(text, add_special_tokens=True)["input_ids"])
        return TaskOutputs(text=summary, detail={"labels": labels, "truncated": n_tokens > limit})
