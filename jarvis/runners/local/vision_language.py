"""Local runners of the image+text tasks transformers 5 has no pipeline for: captioning
(vision-encoder-decoder and BLIP), visual question answering (ViLT and BLIP) and document
question answering (Donut; other architectures through the document-question-answering pipeline).
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

DONUT_PROMPT = "<s_docvqa><s_question>{question}</s_question><s_answer>"


@dataclass
class Loaded:
    """A model with what prepares its inputs and decodes its outputs."""
    kind: str                   # code path: "encoder-decoder", "blip", "generic", "vilt", "donut", "pipeline"
    model: Any
    processor: Any = None       # image processor, or a combined processor
    tokenizer: Any = None
    device: Device = field(default_factory=Device)


def _model_type(model_id: str) -> tuple[str, Any]:
    """The repo's config model_type, and the config itself."""
    from transformers import AutoConfig
    config = AutoConfig.from_pretrained(model_id)
    return config.model_type, config


def _place(model: Any, device: Device) -> Any:
    """The model on the device in its dtype, in eval mode."""
    model = model.to(device.name, dtype=torch_dtype(device))
    model.eval()
    return model


def _pixels(processor: Any, image: Any, loaded: Loaded, **kwargs: Any) -> dict[str, Any]:
    """Processor outputs as tensors on the model's device, pixel values in the model's dtype."""
    batch = processor(images=image, return_tensors="pt", **kwargs)
    out = {}
    for key, value in batch.items():
        value = value.to(loaded.device.name)
        if key.startswith("pixel"):
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


class ImageToTextRunner(Runner):
    """A caption of an image: vision-encoder-decoder (ViT+GPT-2 style), BLIP, or any image-text-to-text model."""
    task = "image-to-text"

    def load(self, model_id: str, device: Device) -> Loaded:
        def build() -> Loaded:
            import transformers as tf
            model_type, _ = _model_type(model_id)
            model: Any
            if model_type == "vision-encoder-decoder":
                model = tf.VisionEncoderDecoderModel.from_pretrained(model_id)
                return Loaded("encoder-decoder", _place(model, device), tf.AutoImageProcessor.from_pretrained(model_id),
                              tf.AutoTokenizer.from_pretrained(model_id), device)
            if model_type == "blip":
                model = tf.BlipForConditionalGeneration.from_pretrained(model_id)
                return Loaded("blip", _place(model, device), tf.AutoProcessor.from_pretrained(model_id), None, device)
            model = tf.AutoModelForImageTextToText.from_pretrained(model_id)
            return Loaded("generic", _place(model, device), tf.AutoProcessor.from_pretrained(model_id), None, device)
        return _guarded_load(self.task, model_id, build)

    def run(self, loaded: Loaded, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        import torch
        image = load_rgb(inputs.first("image"))
        try:
            batch = _pixels(loaded.processor, image, loaded)
            with torch.inference_mode():
                ids = loaded.model.generate(**batch, max_new_tokens=ctx.options.new_tokens("caption"))
        except (ValueError, TypeError, RuntimeError) as exc:
            if loaded.kind != "generic":
                raise
            raise TaskError(f"this model cannot caption an image without a prompt ({str(exc)[:200]}); pick a "
                            "captioning model such as nlpconnect/vit-gpt2-image-captioning") from exc
        decoder = loaded.tokenizer or loaded.processor
        caption = decoder.batch_decode(ids, skip_special_tokens=True)[0].strip()
        caption = re.sub(r"\s+", " ", caption)
        return TaskOutputs(text=caption or "(the model produced an empty caption)", detail={"caption": caption})


class VisualQARunner(Runner):
    """An answer to a question about an image: ViLT picks from its answer vocabulary, BLIP generates."""
    task = "visual-question-answering"

    def load(self, model_id: str, device: Device) -> Loaded:
        def build() -> Loaded:
            import transformers as tf
            model_type, _ = _model_type(model_id)
            model: Any
            if model_type == "vilt":
                model = tf.ViltForQuestionAnswering.from_pretrained(model_id)
                return Loaded("vilt", _place(model, device), tf.ViltProcessor.from_pretrained(model_id), None, device)
            if model_type == "blip":
                model = tf.BlipForQuestionAnswering.from_pretrained(model_id)
                return Loaded("blip", _place(model, device), tf.AutoProcessor.from_pretrained(model_id), None, device)
            raise TaskError(f"{model_id} is a {model_type} model; local visual question answering supports "
                            "ViLT and BLIP models (e.g. dandelin/vilt-b32-finetuned-vqa); pick one or use remote mode")
        return _guarded_load(self.task, model_id, build)

    def run(self, loaded: Loaded, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        import torch
        image = load_rgb(inputs.first("image"))
        question = _question(inputs)
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
    """An answer to a question about a document image; Donut reads the page itself (no OCR needed)."""
    task = "document-question-answering"

    def load(self, model_id: str, device: Device) -> Loaded:
        def build() -> Loaded:
            import transformers as tf
            model_type, config = _model_type(model_id)
            encoder_type = getattr(getattr(config, "encoder", None), "model_type", "")
            if model_type == "vision-encoder-decoder" and "donut" in encoder_type:
                model = tf.VisionEncoderDecoderModel.from_pretrained(model_id)
                processor = tf.DonutProcessor.from_pretrained(model_id)
                return Loaded("donut", _place(model, device), processor, processor.tokenizer, device)
            return Loaded("pipeline", make_pipeline(self.task, model_id, device), device=device)
        return _guarded_load(self.task, model_id, build)

    def run(self, loaded: Loaded, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        image = load_rgb(inputs.first("image"), max_side=4096)
        question = _question(inputs)
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
