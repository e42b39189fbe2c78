"""Local runners of the image+text tasks transformers 5 has no pipeline for: captioning, visual question
answering and document question answering. Each runner has one small table from a config model_type to the
classes that load it (vision-encoder-decoder and BLIP captioners, ViLT and BLIP VQA, Donut); any other
vision-language model (SmolVLM, Qwen2.5-VL, Florence-2...) is asked through its chat template with the
task's prompt (the "chat" route), as the remote vision-language route asks a hosted one.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jarvis.errors import TaskError
from jarvis.runners.base import Device, RunContext, Runner, TaskInputs, TaskOutputs
from jarvis.runners.local.loading import load_error, make_pipeline, torch_dtype
from jarvis.runners.media.images import load_rgb
from jarvis.runners.vlm_prompts import CAPTION_PROMPT, DOCUMENT_PROMPT, VQA_PROMPT

DONUT_PROMPT = "<s_docvqa><s_question>{question}</s_question><s_answer>"


@dataclass
class Loaded:
    """A model with what prepares its inputs and decodes its outputs."""
    kind: str                   # code path: "encoder-decoder", "blip", "chat", "vilt", "donut", "pipeline"
    model: Any
    processor: Any = None       # image processor, or a combined processor
    tokenizer: Any = None
    device: Device = field(default_factory=Device)


@dataclass(frozen=True)
class Route:
    """How a runner loads one kind of model: its code path and the transformers classes (by name)."""
    kind: str
    model_class: str
    processor_class: str = "AutoProcessor"
    tokenizer: bool = False     # a separate AutoTokenizer decodes its outputs


CHAT = Route("chat", "AutoModelForImageTextToText")
CAPTIONERS = {"vision-encoder-decoder": Route("encoder-decoder", "VisionEncoderDecoderModel", "AutoImageProcessor",
                                              tokenizer=True),
              "blip": Route("blip", "BlipForConditionalGeneration")}
VQA_MODELS = {"vilt": Route("vilt", "ViltForQuestionAnswering", "ViltProcessor"),
              "blip": Route("blip", "BlipForQuestionAnswering")}
DONUT = Route("donut", "VisionEncoderDecoderModel", "DonutProcessor")


def _config(model_id: str) -> Any:
    from transformers import AutoConfig
    return AutoConfig.from_pretrained(model_id)


def _is_vlm(config: Any) -> bool:
    """Whether transformers loads this config as an image-text-to-text (chat) model."""
    from transformers import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING
    return type(config) in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING


def _load(route: Route, model_id: str, device: Device) -> Loaded:
    """The model, processor (and tokenizer) of a route, placed on the device in eval mode."""
    import transformers as tf
    model = getattr(tf, route.model_class).from_pretrained(model_id)
    processor = getattr(tf, route.processor_class).from_pretrained(model_id)
    tokenizer = tf.AutoTokenizer.from_pretrained(model_id) if route.tokenizer else None
    if route.kind == "donut":
        tokenizer = processor.tokenizer
    model = model.to(device.name, dtype=torch_dtype(device))
    model.eval()
    return Loaded(route.kind, model, processor, tokenizer, device)


def _pixels(processor: Any, image: Any, loaded: Loaded, **kwargs: Any) -> dict[str, Any]:
    """Processor outputs as tensors on the model's device, float pixel values in the model's dtype
    (a pixel attention mask stays boolean)."""
    batch = processor(images=image, return_tensors="pt", **kwargs)
    out = {}
    for key, value in batch.items():
        value = value.to(loaded.device.name)
        if key.startswith("pixel") and value.is_floating_point():
            value = value.to(loaded.model.dtype)
        out[key] = value
    return out


def _question(inputs: TaskInputs) -> str:
    """The question about the image, stripped; an error when it is empty."""
    question = str(inputs.first("text")).strip()
    if not question:
        raise TaskError("the question is empty: ask something about the image")
    return question


def _guarded_load(task: str, model_id: str, build: Callable[[], Loaded]) -> Loaded:
    """build(), its failures (other than missing files and our own errors) explained by load_error."""
    try:
        return build()
    except (OSError, TaskError):
        raise
    except (ValueError, KeyError, ImportError, RuntimeError, TypeError, AttributeError) as exc:
        raise load_error(model_id, task, exc) from exc


def ask_chat(loaded: Loaded, image: Any, prompt: str, new_tokens: int) -> str:
    """A vision-language model's reply to the image and prompt, through its chat template (the prompt
    alone when its processor has none), greedy, without the prompt's tokens and special tokens."""
    import torch
    processor = loaded.processor
    if getattr(processor, "chat_template", None):
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
        text = processor.apply_chat_template(messages, add_generation_prompt=True)
    else:
        text = prompt
    batch = _pixels(processor, [image], loaded, text=[text])
    with torch.inference_mode():
        ids = loaded.model.generate(**batch, max_new_tokens=new_tokens, do_sample=False)
    if not getattr(loaded.model.config, "is_encoder_decoder", False) and "input_ids" in batch:
        ids = ids[:, batch["input_ids"].shape[1]:]
    return re.sub(r"\s+", " ", processor.batch_decode(ids, skip_special_tokens=True)[0]).strip()


class ImageToTextRunner(Runner):
    """A caption of an image: vision-encoder-decoder (ViT+GPT-2 style), BLIP, or any vision-language model."""
    task = "image-to-text"

    def load(self, model_id: str, device: Device) -> Loaded:
        def build() -> Loaded:
            return _load(CAPTIONERS.get(_config(model_id).model_type, CHAT), model_id, device)
        return _guarded_load(self.task, model_id, build)

    def run(self, loaded: Loaded, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        import torch
        image = load_rgb(inputs.first("image"))
        if loaded.kind == "chat":
            try:
                caption = ask_chat(loaded, image, CAPTION_PROMPT, ctx.options.new_tokens("caption"))
            except (ValueError, TypeError, RuntimeError) as exc:
                raise TaskError(f"this model cannot caption an image ({str(exc)[:200]}); pick a captioning or "
                                "vision-language model such as HuggingFaceTB/SmolVLM-256M-Instruct") from exc
            return TaskOutputs(text=caption or "(the model produced an empty caption)", detail={"caption": caption})
        batch = _pixels(loaded.processor, image, loaded)
        with torch.inference_mode():
            ids = loaded.model.generate(**batch, max_new_tokens=ctx.options.new_tokens("caption"))
        decoder = loaded.tokenizer or loaded.processor
        caption = re.sub(r"\s+", " ", decoder.batch_decode(ids, skip_special_tokens=True)[0].strip())
        return TaskOutputs(text=caption or "(the model produced an empty caption)", detail={"caption": caption})


class VisualQARunner(Runner):
    """An answer to a question about an image: ViLT picks from its answer vocabulary, BLIP and
    vision-language models generate."""
    task = "visual-question-answering"

    def load(self, model_id: str, device: Device) -> Loaded:
        def build() -> Loaded:
            config = _config(model_id)
            route = VQA_MODELS.get(config.model_type) or (CHAT if _is_vlm(config) else None)
            if route is None:
                raise TaskError(f"{model_id} is a {config.model_type} model; local visual question answering runs "
                                "ViLT, BLIP and vision-language models (e.g. HuggingFaceTB/SmolVLM-256M-Instruct); "
                                "pick one or use remote mode")
            return _load(route, model_id, device)
        return _guarded_load(self.task, model_id, build)

    def run(self, loaded: Loaded, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        import torch
        image = load_rgb(inputs.first("image"))
        question = _question(inputs)
        if loaded.kind == "chat":
            answer = ask_chat(loaded, image, VQA_PROMPT.format(question=question), ctx.options.new_tokens("vlm-answer"))
            return TaskOutputs(text=answer or "(no answer)", detail={"answers": [{"answer": answer}]})
        if loaded.kind == "vilt":
            limit = int(getattr(loaded.model.config, "max_position_embeddings", 40))
            batch = _pixels(loaded.processor, image, loaded, text=question, truncation=True, max_length=limit,
                            padding="max_length")
            with torch.inference_mode():
                logits = loaded.model(**batch).logits[0].float()
            scores = torch.sigmoid(logits)
            top = torch.topk(scores, k=min(5, scores.numel()))
            id2label = loaded.model.config.id2label
            detail = [{"answer": str(id2label.get(int(i), i)), "score": round(float(s), 4)}
                      for s, i in zip(top.values, top.indices)]
            best = detail[0]
            others = ", ".join(f"{d['answer']} {d['score']:.2f}" for d in detail[1:])
            text = f"{best['answer']} (score {best['score']:.2f}" + (f"; other answers: {others})" if others else ")")
            return TaskOutputs(text=text, detail={"answers": detail})
        batch = _pixels(loaded.processor, image, loaded, text=question)
        with torch.inference_mode():
            ids = loaded.model.generate(**batch, max_new_tokens=ctx.options.new_tokens("short-answer"))
        answer = re.sub(r"\s+", " ", loaded.processor.batch_decode(ids, skip_special_tokens=True)[0]).strip()
        return TaskOutputs(text=answer or "(no answer)", detail={"answers": [{"answer": answer}]})


def parse_donut_answer(sequence: str, eos: str = "</s>", pad: str = "<pad>") -> str:
    """The answer inside a Donut DocVQA output: the text after the last <s_answer>, tags removed."""
    sequence = sequence.replace(eos, "").replace(pad, "")
    if "<s_answer>" in sequence:
        sequence = sequence.rsplit("<s_answer>", 1)[1]
    sequence = sequence.split("</s_answer>", 1)[0]
    return re.sub(r"\s+", " ", re.sub(r"<[^>]*>", " ", sequence)).strip()


class DocumentQARunner(Runner):
    """An answer to a question about a document image; Donut and vision-language models read the page
    themselves (no OCR needed)."""
    task = "document-question-answering"

    def load(self, model_id: str, device: Device) -> Loaded:
        def build() -> Loaded:
            config = _config(model_id)
            encoder_type = getattr(getattr(config, "encoder", None), "model_type", "")
            if config.model_type == "vision-encoder-decoder" and "donut" in encoder_type:
                return _load(DONUT, model_id, device)
            if _is_vlm(config):
                return _load(CHAT, model_id, device)
            return Loaded("pipeline", make_pipeline(self.task, model_id, device), device=device)
        return _guarded_load(self.task, model_id, build)

    def run(self, loaded: Loaded, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        image = load_rgb(inputs.first("image"), max_side=4096)
        question = _question(inputs)
        if loaded.kind == "chat":
            prompt = DOCUMENT_PROMPT.format(question=question)
            answer = ask_chat(loaded, image, prompt, ctx.options.new_tokens("vlm-answer"))
            return TaskOutputs(text=answer or "(no answer found in the document)",
                               detail={"answers": [{"answer": answer}]})
        if loaded.kind == "pipeline":
            try:
                results = loaded.model(image=image, question=question, top_k=3)
            except (ImportError, ValueError) as exc:
                raise load_error("this model", self.task, exc) from exc
            results = results if isinstance(results, list) else [results]
            detail = [{"answer": str(r.get("answer", "")), "score": round(float(r.get("score") or 0.0), 4)}
                      for r in results]
            if not detail or not detail[0]["answer"]:
                return TaskOutputs(text="(no answer found in the document)", detail={"answers": detail})
            return TaskOutputs(text=f"{detail[0]['answer']} (score {detail[0]['score']:.2f})",
                               detail={"answers": detail})
        return self._run_donut(loaded, image, question, ctx)

    def _run_donut(self, loaded: Loaded, image: Any, question: str, ctx: RunContext) -> TaskOutputs:
        import torch
        tokenizer = loaded.tokenizer
        limit = int(getattr(loaded.model.config.decoder, "max_position_embeddings", 512))
        # the prompt plus room for the answer must fit the decoder's positions (MBart offsets them by 2)
        frame_len = len(tokenizer(DONUT_PROMPT.format(question=""), add_special_tokens=False).input_ids)
        wanted = ctx.options.new_tokens("caption")
        room = max(1, limit - 2 - frame_len - min(wanted, max(8, limit // 4)))
        question_ids = tokenizer(question[:2000], add_special_tokens=False).input_ids[:room]
        question = tokenizer.decode(question_ids, skip_special_tokens=True) if len(question_ids) == room else question
        prompt = DONUT_PROMPT.format(question=question)
        prompt_ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt").input_ids.to(loaded.device.name)
        prompt_ids = prompt_ids[:, : max(1, limit - 3)]
        batch = _pixels(loaded.processor.image_processor, image, loaded)
        new_tokens = min(wanted, max(1, limit - 2 - prompt_ids.shape[1]))
        kwargs: dict[str, Any] = {"pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id}
        if tokenizer.unk_token_id is not None:
            kwargs["bad_words_ids"] = [[tokenizer.unk_token_id]]
        with torch.inference_mode():
            ids = loaded.model.generate(batch["pixel_values"], decoder_input_ids=prompt_ids,
                                        max_new_tokens=new_tokens, **kwargs)
        sequence = tokenizer.batch_decode(ids)[0]
        answer = parse_donut_answer(sequence, str(tokenizer.eos_token), str(tokenizer.pad_token))
        return TaskOutputs(text=answer or "(no answer found in the document)",
                           detail={"answers": [{"answer": answer}], "question": question})
