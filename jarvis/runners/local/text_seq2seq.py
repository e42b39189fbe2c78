"""Sequence-to-sequence text runners: summarization, translation, text2text-generation.

The three share one cached load per model (family "seq2seq"): AutoModelForSeq2SeqLM + tokenizer,
input truncated to the encoder window, AutoModelForSeq2SeqLM.generate, decoded without special
tokens. Translation: Marian models per language pair; T5/flan models get a
"translate English to X:" prefix (X from options.target_language, French by default).
"""
from __future__ import annotations

import re
from typing import Any

from jarvis.errors import TaskError
from jarvis.runners.base import Device, RunContext, Runner, TaskInputs, TaskOutputs
from jarvis.runners.local.loading import cancel_criteria
from jarvis.runners.local.text_support import TextModel, input_cap, load_parts, text_input, to_device

# Generation settings a model card may keep under config.task_specific_params[task].
_TASK_GEN_KEYS = ("num_beams", "no_repeat_ngram_size", "length_penalty", "early_stopping", "min_length")
# Language name -> (ISO 639-1, ISO 639-3): T5 prefixes use the name, multi-target Marian the code.
LANGUAGES = {
    "english": ("en", "eng"), "french": ("fr", "fra"), "german": ("de", "deu"), "spanish": ("es", "spa"),
    "italian": ("it", "ita"), "portuguese": ("pt", "por"), "chinese": ("zh", "zho"), "japanese": ("ja", "jpn"),
    "russian": ("ru", "rus"), "arabic": ("ar", "ara"), "dutch": ("nl", "nld"), "romanian": ("ro", "ron"),
    "korean": ("ko", "kor"), "hindi": ("hi", "hin"), "turkish": ("tr", "tur"), "polish": ("pl", "pol"),
}
_INSTRUCTION = re.compile(r"^\s*translate\b[^:\n]{0,60}:\s*", re.IGNORECASE)
_TARGET = re.compile(r"\b(?:in)?to\s+([a-z]+)", re.IGNORECASE)
_SOURCE = re.compile(r"\bfrom\s+([a-z]+)|^\s*translate\s+([a-z]+)\s+(?:in)?to\b", re.IGNORECASE)


class _Seq2SeqRunner(Runner):
    """Shared load and generate for the seq2seq task types."""
    family = "seq2seq"

    def load(self, model_id: str, device: Device) -> TextModel:
        from transformers import AutoModelForSeq2SeqLM
        loaded = load_parts(model_id, self.task, AutoModelForSeq2SeqLM.from_pretrained, device)
        loaded.extra["model_id"] = model_id
        return loaded

    def generate(self, loaded: TextModel, text: str, ctx: RunContext, params_key: str = "",
                 new_tokens: int | None = None) -> tuple[str, dict[str, Any]]:
        import torch
        tok, model = loaded.tokenizer, loaded.model
        limit = input_cap(loaded, ctx)
        n_tokens = len(tok(text)["input_ids"])
        enc = tok(text, truncation=True, max_length=limit, return_tensors="pt")
        wanted = new_tokens or ctx.options.new_tokens("text")
        wanted = max(1, min(wanted, loaded.max_tokens - 1))  # decoder positions are finite too
        kwargs: dict[str, Any] = {"max_new_tokens": wanted, "stopping_criteria": cancel_criteria(ctx)}
        task_params = (getattr(model.config, "task_specific_params", None) or {}).get(params_key) or {}
        kwargs.update({k: task_params[k] for k in _TASK_GEN_KEYS if k in task_params})
        min_length = kwargs.get("min_length", getattr(model.generation_config, "min_length", 0)) or 0
        if min_length >= wanted:
            kwargs["min_length"] = max(0, wanted // 2)
        if getattr(model.generation_config, "pad_token_id", None) is None and tok.pad_token_id is not None:
            kwargs["pad_token_id"] = tok.pad_token_id
        with torch.no_grad():
            out = model.generate(**to_device(enc, loaded.device), **kwargs)
        decoded = tok.decode(out[0], skip_special_tokens=True, clean_up_tokenization_spaces=True).strip()
        return decoded, {"input_tokens": min(n_tokens, limit), "truncated": n_tokens > limit,
                         "output_tokens": int(out.shape[-1])}


def _task_prefix(loaded: TextModel, key: str) -> str:
    params = (getattr(loaded.model.config, "task_specific_params", None) or {}).get(key) or {}
    return str(params.get("prefix") or "")


class SummarizationRunner(_Seq2SeqRunner):
    """A summary of a text (BART, Pegasus, T5 with its "summarize: " prefix)."""
    task = "summarization"

    def run(self, loaded: TextModel, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        text = text_input(inputs)
        summary, detail = self.generate(loaded, _task_prefix(loaded, "summarization") + text, ctx, "summarization")
        return TaskOutputs(text=summary or "(the model produced an empty summary)", detail={"summary": summary, **detail})


class Text2TextRunner(_Seq2SeqRunner):
    """Text in, text out with an instruction-following seq2seq model (flan-t5)."""
    task = "text2text-generation"

    def run(self, loaded: TextModel, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        result, detail = self.generate(loaded, text_input(inputs), ctx)
        return TaskOutputs(text=result, detail={"generated_text": result, **detail})


def _language(name: str | None) -> tuple[str, tuple[str, str] | None]:
    """A language's display name and codes, from a name ("German") or a code ("de", "deu")."""
    if not name:
        return "", None
    key = str(name).strip().lower()
    for lang, codes in LANGUAGES.items():
        if key == lang or key in codes:
            return lang.capitalize(), codes
    return str(name).strip().capitalize(), None


def _named_languages(instruction: str) -> tuple[str | None, str | None]:
    """(source, target) languages an instruction like "Translate English to German:" names;
    only known language names count, so "Translate this to German" has no source."""
    def known(found: re.Match[str] | None) -> str | None:
        name = next((g for g in found.groups() if g), None) if found else None
        return name if name and _language(name)[1] else None
    return known(_SOURCE.search(instruction)), known(_TARGET.search(instruction))


class TranslationRunner(_Seq2SeqRunner):
    """Translation: Marian pair models as they are, T5/flan models with a task prefix.

    A leading instruction ("Translate to German: ...") is understood: it names the target for
    T5 and multi-target Marian models and is not itself translated."""
    task = "translation"

    def run(self, loaded: TextModel, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        text = text_input(inputs)
        match = _INSTRUCTION.match(text)
        named_source, named_target = _named_languages(match.group(0) if match else "")
        body = text[match.end():].strip() if match else text
        if not body:
            raise TaskError("there is no text to translate after the instruction")
        target, target_codes = _language(ctx.options.target_language or named_target)
        model_type = getattr(loaded.model.config, "model_type", "")
        codes = list(getattr(loaded.tokenizer, "supported_language_codes", None) or [])
        if model_type == "marian":
            source = body
            model_id = loaded.extra.get("model_id", "")
            pair = re.search(r"-([a-z]{2,3})$", model_id) if "opus-mt" in model_id else None
            if pair and not codes:  # a one-pair model: its name says the target
                fixed, fixed_codes = _language(pair.group(1))
                if target_codes and fixed_codes and target_codes != fixed_codes:
                    raise TaskError(f"{loaded.extra['model_id']} translates into {fixed}, not {target}; pick a "
                                    f"model for that pair (e.g. Helsinki-NLP/opus-mt-en-{target_codes[0]})")
                target = fixed
            if codes:  # one model, many target languages: it needs a >>code<< token
                wanted = [f">>{c}<<" for c in (target_codes or ())]
                found = next((c for c in wanted if c in codes), None)
                if found is None:
                    raise TaskError(f"this translation model needs a target language among "
                                    f"{', '.join(codes[:12])}...; say which (e.g. 'Translate to French: ...')")
                source = f"{found} {body}"
        elif model_type in ("t5", "mt5", "umt5"):
            from_name = _language(ctx.options.source_language or named_source)[0] or "English"
            target = target or "French"
            source = f"translate {from_name} to {target}: {body}"
        else:
            source = body
        budget = max(ctx.options.new_tokens("text"), int(len(loaded.tokenizer(body)["input_ids"]) * 1.5) + 8)
        result, detail = self.generate(loaded, source, ctx, new_tokens=budget)
        return TaskOutputs(text=result, detail={"translation": result, "target_language": target or None, **detail})
