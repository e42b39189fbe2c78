"""Sequence-to-sequence text runners: summarization, translation, text2text-generation.

The three share one cached load per model (family "seq2seq"): AutoModelForSeq2SeqLM + tokenizer,
input truncated to the encoder window, AutoModelForSeq2SeqLM.generate, decoded without special
tokens. Translation (TranslationRunner): NLLB-200/M2M100 with the target language forced, Marian
pair and multi-target models, T5/flan with a "translate X to Y:" prefix.
"""
from __future__ import annotations

import re
from typing import Any

from jarvis.catalog.languages import ENGLISH, FRENCH, Language, Request, best_code, language, read_request
from jarvis.errors import TaskError
from jarvis.runners.base import Device, RunContext, Runner, TaskInputs, TaskOutputs
from jarvis.runners.local.loading import cancel_criteria
from jarvis.runners.local.text_support import TextModel, input_cap, load_parts, text_input, to_device

# Generation settings a model card may keep under config.task_specific_params[task].
_TASK_GEN_KEYS = ("num_beams", "no_repeat_ngram_size", "length_penalty", "early_stopping", "min_length")
_NLLB_CODE = re.compile(r"^[a-z]{3}_[A-Z][a-z]{3}$")   # fra_Latn
_M2M_CODE = re.compile(r"^__[a-z]{2,3}__$")            # __fr__


class _Seq2SeqRunner(Runner):
    """Shared load and generate for the seq2seq task types."""
    family = "seq2seq"

    def load(self, model_id: str, device: Device) -> TextModel:
        from transformers import AutoModelForSeq2SeqLM
        loaded = load_parts(model_id, self.task, AutoModelForSeq2SeqLM.from_pretrained, device)
        loaded.extra["model_id"] = model_id
        return loaded

    def generate(self, loaded: TextModel, text: str, ctx: RunContext, params_key: str = "",
                 new_tokens: int | None = None, input_ids: list[int] | None = None,
                 forced_bos: int | None = None) -> tuple[str, dict[str, Any]]:
        """The model's output for `text` (or for `input_ids` already built and cut to the window), its
        first token forced to `forced_bos` when given (NLLB/M2M100's target language)."""
        import torch
        tok, model = loaded.tokenizer, loaded.model
        limit = input_cap(loaded, ctx)
        if input_ids is not None:
            n_tokens = len(input_ids)
            ids = torch.tensor([input_ids])
            enc = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
        else:
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
        if forced_bos is not None:
            kwargs["forced_bos_token_id"] = forced_bos
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


class TranslationRunner(_Seq2SeqRunner):
    """Translation into the language the request names (run option target_language, or a leading
    "Translate [from X] to Y:" that is not itself translated); the source is named the same way or
    detected (jarvis.catalog.languages).

    NLLB-200 and M2M100 read the source's language code before the text and are forced to start their
    output with the target's (forced_bos_token_id); a multi-target Marian model takes a ">>code<<"
    token (opus-mt-en-zh: >>cmn_Hans<<); a one-pair Marian model translates into its one language;
    T5/flan models get a "translate X to Y:" prefix."""
    task = "translation"

    def run(self, loaded: TextModel, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        opts = ctx.options
        request = read_request(text_input(inputs), opts.source_language, opts.target_language)
        if not request.body:
            raise TaskError("there is no text to translate after the instruction")
        model_type = getattr(loaded.model.config, "model_type", "")
        target: Language | None
        budget = max(opts.new_tokens("text"), int(len(loaded.tokenizer(request.body)["input_ids"]) * 1.5) + 8)
        if model_type == "m2m_100":
            target, source, ids, codes = _coded_input(loaded, request, ctx)
            forced = int(loaded.tokenizer.convert_tokens_to_ids(codes["target"]))
            result, detail = self.generate(loaded, "", ctx, new_tokens=budget, input_ids=ids, forced_bos=forced)
        else:
            target, prompt, codes = _marian_or_t5_input(loaded, request, model_type)
            source = request.source
            result, detail = self.generate(loaded, prompt, ctx, new_tokens=budget)
        return TaskOutputs(text=result, detail={
            "translation": result, "target_language": target.title if target else None,
            "source_language": source.title if source else None, "source_detected": request.source_detected,
            "language_codes": codes, **detail})


def _language_codes(tokenizer: Any) -> list[str]:
    """The language tokens of a many-to-many tokenizer: NLLB's fra_Latn, M2M100's __fr__."""
    return [t for t in tokenizer.get_vocab() if _NLLB_CODE.match(t) or _M2M_CODE.match(t)]


def _coded_input(loaded: TextModel, request: Request,
                 ctx: RunContext) -> tuple[Language, Language | None, list[int], dict[str, str]]:
    """(target, source, input ids, language codes) for NLLB-200 / M2M100: [source code] text </s>, the
    output forced to begin with the target's code. Unknown source: English's code is used."""
    tok = loaded.tokenizer
    codes = _language_codes(tok)
    model_id = loaded.extra.get("model_id", "this model")
    target = request.target or (ENGLISH if request.source is not None and request.source != ENGLISH else None)
    if target is None:
        raise TaskError("say which language to translate into (e.g. 'Translate to French: ...')")
    target_code = best_code(codes, target)
    if target_code is None:
        raise TaskError(f"{model_id} does not translate into {target.title}; pick a model for that language")
    source = request.source
    source_code = best_code(codes, source) if source is not None else None
    if source_code is None:
        if source is not None:
            raise TaskError(f"{model_id} does not read {source.title}; pick a model for that language")
        source_code = best_code(codes, ENGLISH) or target_code
    limit = max(1, input_cap(loaded, ctx) - 2)
    body = tok(request.body, add_special_tokens=False)["input_ids"][:limit]
    ids = [tok.convert_tokens_to_ids(source_code), *body, tok.eos_token_id]
    return target, source, ids, {"source": source_code, "target": target_code}


def _marian_or_t5_input(loaded: TextModel, request: Request,
                        model_type: str) -> tuple[Language | None, str, dict[str, str]]:
    """(target, text to encode, the target's token if the model takes one) for Marian and T5-style models."""
    target, body = request.target, request.body
    model_id = loaded.extra.get("model_id", "")
    if model_type == "marian":
        codes = list(getattr(loaded.tokenizer, "supported_language_codes", None) or [])
        if codes:  # one model, many target languages: it needs a >>code<< token
            found = best_code(codes, target) if target else None
            if found is None:
                raise TaskError(f"{model_id} needs a target language among {', '.join(codes[:12])}...; "
                                "say which (e.g. 'Translate to French: ...')")
            return target, f"{found} {body}", {"target": found}
        pair = re.search(r"-([a-z]{2,3})$", model_id) if "opus-mt" in model_id else None
        fixed = language(pair.group(1)) if pair else None
        if fixed is not None:  # a one-pair model: its name says the target
            if target is not None and target != fixed:
                raise TaskError(f"{model_id} translates into {fixed.title}, not {target.title}; pick a model "
                                f"for that pair (e.g. facebook/nllb-200-distilled-600M)")
            target = fixed
        return target, body, {}
    if model_type in ("t5", "mt5", "umt5"):
        target = target or FRENCH
        source = request.source or ENGLISH
        return target, f"translate {source.title} to {target.title}: {body}", {}
    return target, body, {}
