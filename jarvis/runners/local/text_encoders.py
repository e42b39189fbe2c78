"""Encoder-model text runners: extractive question answering (span decoding over windows of
the context) and sentence similarity (mean-pooled embeddings, cosine)."""
from __future__ import annotations

import inspect
import json
import logging
from typing import Any

from jarvis.errors import TaskError
from jarvis.runners.base import Device, RunContext, Runner, TaskInputs, TaskOutputs
from jarvis.runners.local.text_support import TextModel, cut_to_tokens, load_parts, num, to_device, two_texts

log = logging.getLogger(__name__)

MAX_ANSWER_TOKENS = 30


class QuestionAnsweringRunner(Runner):
    """Finds the answer span to a question in a context text (inputs.text = [question, context]).

    A context longer than the model's window is read in overlapping windows; the best-scoring
    span over all windows wins (score = P(start) * P(end))."""
    task = "question-answering"

    def load(self, model_id: str, device: Device) -> TextModel:
        from transformers import AutoModelForQuestionAnswering
        loaded = load_parts(model_id, self.task, AutoModelForQuestionAnswering.from_pretrained, device)
        if not loaded.tokenizer.is_fast:
            raise TaskError(f"{model_id} has no fast tokenizer, which answer offsets need; pick another model")
        accepted = set(inspect.signature(loaded.model.forward).parameters)
        loaded.extra["inputs"] = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in accepted]
        return loaded

    def run(self, loaded: TextModel, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        import torch
        question, context = two_texts(inputs, "question", "context")
        tok, limit = loaded.tokenizer, loaded.max_tokens
        question, _ = cut_to_tokens(question, tok, max(4, limit // 4))
        budget = max(limit, ctx.options.max_input_tokens)
        context, cut = cut_to_tokens(context, tok, budget)
        enc = tok(question, context, truncation="only_second", max_length=limit, stride=max(1, limit // 4),
                  return_overflowing_tokens=True, return_offsets_mapping=True, padding="longest",
                  return_tensors="pt")
        batch = {k: enc[k] for k in loaded.extra["inputs"] if k in enc}
        with torch.no_grad():
            out = loaded.model(**to_device(batch, loaded.device))
        best: dict[str, Any] | None = None
        for i in range(enc["input_ids"].shape[0]):
            context_idx = [j for j, s in enumerate(enc.sequence_ids(i)) if s == 1]
            if not context_idx:
                continue
            span = _best_span(out.start_logits[i].float().cpu(), out.end_logits[i].float().cpu(), context_idx)
            if span and (best is None or span[2] > best["score"]):
                offsets = enc["offset_mapping"][i]
                start, end = int(offsets[span[0]][0]), int(offsets[span[1]][1])
                best = {"answer": context[start:end].strip(), "score": span[2], "start": start, "end": end}
        if best is None or not best["answer"]:
            return TaskOutputs(text="no answer found in the context",
                               detail={"answer": "", "score": 0.0, "start": None, "end": None, "truncated": cut})
        best["score"] = num(best["score"])
        return TaskOutputs(text=best["answer"], detail={**best, "truncated": cut})


def _best_span(start_logits: Any, end_logits: Any, context_idx: list[int]) -> tuple[int, int, float] | None:
    """(start, end, probability) of the most likely answer inside the context tokens."""
    import torch
    index = torch.tensor(context_idx)
    p_start = torch.softmax(start_logits[index], dim=-1)
    p_end = torch.softmax(end_logits[index], dim=-1)
    scores = torch.triu(p_start[:, None] * p_end[None, :])           # end >= start
    scores = torch.tril(scores, diagonal=MAX_ANSWER_TOKENS - 1)      # answer not too long
    flat = int(torch.argmax(scores))
    s, e = divmod(flat, scores.shape[1])
    score = float(scores[s, e])
    return (context_idx[s], context_idx[e], score) if score > 0 else None


class SentenceSimilarityRunner(Runner):
    """Cosine similarity of sentence embeddings (inputs.text = [a, b, ...]: a against each other).

    Pooling follows the sentence-transformers repo (1_Pooling/config.json: CLS or mean tokens);
    mean pooling when the repo does not say."""
    task = "sentence-similarity"

    def load(self, model_id: str, device: Device) -> TextModel:
        from transformers import AutoModel
        loaded = load_parts(model_id, self.task, AutoModel.from_pretrained, device)
        loaded.extra["pooling"], max_seq = _sentence_settings(model_id)
        if max_seq:
            loaded.max_tokens = min(loaded.max_tokens, max_seq)
        return loaded

    def run(self, loaded: TextModel, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        import torch
        first, _ = two_texts(inputs, "first sentence", "second sentence")
        texts = [first] + [str(t).strip() for t in inputs.text[1:] if str(t).strip()]
        enc = loaded.tokenizer(texts, truncation=True, max_length=loaded.max_tokens, padding=True,
                               return_tensors="pt")
        truncated = any(len(loaded.tokenizer(t)["input_ids"]) > loaded.max_tokens for t in texts)
        enc = to_device(enc, loaded.device)
        with torch.no_grad():
            hidden = loaded.model(**enc).last_hidden_state.float()
        if loaded.extra["pooling"] == "cls":
            pooled = hidden[:, 0]
        else:
            mask = enc["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        pooled = torch.nn.functional.normalize(pooled, dim=-1)
        sims = [num(float(pooled[0] @ pooled[i]), 4) for i in range(1, len(texts))]
        if len(sims) == 1:
            text = f"similarity: {sims[0]:.2f}"
        else:
            text = "similarity to the first sentence: " + ", ".join(
                f"sentence {i + 2}: {s:.2f}" for i, s in enumerate(sims))
        return TaskOutputs(text=text, detail={"similarity": sims[0], "similarities": sims,
                                              "pooling": loaded.extra["pooling"], "truncated": truncated})


def _repo_json(model_id: str, filename: str) -> dict[str, Any]:
    """A JSON file of the repo, or {} when it has none (or it cannot be fetched)."""
    from huggingface_hub import hf_hub_download
    try:
        with open(hf_hub_download(model_id, filename)) as fh:
            data = json.load(fh)
    except Exception as exc:  # absent (a plain transformers repo) or unreadable: the defaults apply
        log.debug("%s has no usable %s: %s", model_id, filename, exc)
        return {}
    return data if isinstance(data, dict) else {}


def _sentence_settings(model_id: str) -> tuple[str, int | None]:
    """Pooling ('cls' or 'mean') and max_seq_length from a sentence-transformers repo; mean
    pooling and the model's own window for a plain transformers model."""
    pooling = _repo_json(model_id, "1_Pooling/config.json")
    mode = "cls" if pooling.get("pooling_mode_cls_token") and not pooling.get("pooling_mode_mean_tokens") else "mean"
    max_seq = _repo_json(model_id, "sentence_bert_config.json").get("max_seq_length")
    return mode, (int(max_seq) if isinstance(max_seq, int) and max_seq > 0 else None)
