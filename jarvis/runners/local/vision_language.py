"""Local runners of the image+text tasks transformers 5 has no pipeline for: captioning
(vision-encoder-decoder and BLIP), visual question answering (ViLT and BLIP) and document
question answering (Donut; other architectures through the document-question-answering pipeline).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from jarvis.runners.base import Device, RunContext, TaskError, TaskInputs, TaskOutputs
from jarvis.runners.media.images import load_rgb

# packages some models of these tasks need that Jarvis does not install (DETR: timm; LayoutLM: pytesseract)
OPTIONAL_PACKAGES = ("timm", "pytesseract", "sentencepiece", "protobuf")
DONUT_PROMPT = "<s_docvqa><s_question>{question}</s_question><s_answer>"


def torch_dtype(device: Device):
    import torch
    return torch.float16 if device.half else torch.float32


def load_error(model_id: str, task: str, exc: Exception) -> TaskError:
    """A load failure turned into a message a user can act on (naming a missing package if one is)."""
    text = str(exc).splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
    everything = str(exc).replace(model_id, "")
    missing = next((p for p in OPTIONAL_PACKAGES if re.search(rf"\b{p}\b", everything)), None)
    if missing is None and isinstance(exc, ImportError):
        missing = getattr(exc, "name", None)
    if missing:
        return TaskError(f"{model_id} needs the Python package {missing} to run locally: "
                         f"`pip install {missing}`, or pick another model ({text})")
    return TaskError(f"{model_id} cannot run {task} locally ({text}); pick another model or use remote mode")


@dataclass
class Loaded:
    """A model with what prepares its inputs and decodes its outputs."""
    kind: str                   # code path: "encoder-decoder", "blip", "generic", "vilt", "donut", "pipeline"
    model: Any
    processor: Any = None       # image processor, or a combined processor
    tokenizer: Any = None
    device: Device | None = None


def _model_type(model_id: str) -> tuple[str, Any]:
    from transformers import AutoConfig
    config = AutoConfig.from_pretrained(model_id)
    return config.model_type, config


def _place(model: Any, device: Device) -> Any:
    model = model.to(device.name, dtype=torch_dtype(device))
    model.eval()
    return model


def _pixels(processor: Any, image: Any, loaded: Loaded, **kwargs) -> dict:
    """Processor outputs as tensors on the model's device, pixel values in the model's dtype."""
    batch = processor(images=image, return_tensors="pt", **kwargs)
    out = {}
    for key, value in batch.items():
        value = value.to(loaded.device.name)
        if key.startswith("pixel"):
            value = value.to(loaded.model.dtype)
        out[key] = value
    return out


def _max_new_tokens(ctx: RunContext, default: int = 32) -> int:
    return max(1, int(ctx.options.get("max_new_tokens", default)))


def _question(inputs: TaskInputs) -> str:
    question = str(inputs.first("text")).strip()
    if not question:
        raise TaskError("the question is empty: ask something about the image")
    return question


def _guarded_load(task: str, model_id: str, build) -> Loaded:
    try:
        return build()
    except (OSError, TaskError):
        raise
    except (ValueError, KeyError, ImportError, RuntimeError, TypeError, AttributeError) as exc:
        raise load_error(model_id, task, exc) from exc


class ImageToTextRunner:
    """A caption of an image: vision-encoder-decoder (ViT+GPT-2 style), BLIP, or any image-text-to-text model."""
    task = "image-to-text"

    def load(self, model_id: str, device: Device) -> Loaded:
        def build() -> Loaded:
            import transformers as tf
            model_type, _ = _model_type(model_id)
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
                ids = loaded.model.generate(**batch, max_new_tokens=_max_new_tokens(ctx))
        except (ValueError, TypeError, RuntimeError) as exc:
            if loaded.kind != "generic":
                raise
            raise TaskError(f"this model cannot caption an image without a prompt ({str(exc)[:200]}); pick a "
                            "captioning model such as nlpconnect/vit-gpt2-image-captioning") from exc
        decoder = loaded.tokenizer or loaded.processor
        caption = decoder.batch_decode(ids, skip_special_tokens=True)[0].strip()
        caption = re.sub(r"\s+", " ", caption)
        return TaskOutputs(text=caption or "(the model produced an empty caption)", detail={"caption": caption})


class VisualQARunner:
    """An answer to a question about an image: ViLT picks from its answer vocabulary, BLIP generates."""
    task = "visual-question-answering"

    def load(self, model_id: str, device: Device) -> Loaded:
        def build() -> Loaded:
            import transformers as tf
            model_type, _ = _model_type(model_id)
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
            return TaskOutputs(text=text, detail=detail)
        batch = _pixels(loaded.processor, image, loaded, text=question)
        with torch.inference_mode():
            ids = loaded.model.generate(**batch, max_new_tokens=_max_new_tokens(ctx, 16))
        answer = re.sub(r"\s+", " ", loaded.processor.batch_decode(ids, skip_special_tokens=True)[0]).strip()
        return TaskOutputs(text=answer or "(no answer)", detail=[{"answer": answer}])


def parse_donut_answer(sequence: str, eos: str = "</s>", pad: str = "<pad>") -> str:
    """The answer inside a Donut DocVQA output: the text after the last <s_answer>, tags removed."""
    sequence = sequence.replace(eos, "").replace(pad, "")
    if "<s_answer>" in sequence:
        sequence = sequence.rsplit("<s_answer>", 1)[1]
    sequence = sequence.split("</s_answer>", 1)[0]
    return re.sub(r"\s+", " ", re.sub(r"<[^>]*>", " ", sequence)).strip()


class DocumentQARunner:
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
            from jarvis.runners.local.vision import make_pipeline
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
                return TaskOutputs(text="(no answer found in the document)", detail=detail)
            return TaskOutputs(text=f"{detail[0]['answer']} (score {detail[0]['score']:.2f})", detail=detail)
        return self._run_donut(loaded, image, question, ctx)

    def _run_donut(self, loaded: Loaded, image: Any, question: str, ctx: RunContext) -> TaskOutputs:
        import torch
        tokenizer = loaded.tokenizer
        limit = int(getattr(loaded.model.config.decoder, "max_position_embeddings", 512))
        # the prompt plus room for the answer must fit the decoder's positions (MBart offsets them by 2)
        frame_len = len(tokenizer(DONUT_PROMPT.format(question=""), add_special_tokens=False).input_ids)
        room = max(1, limit - 2 - frame_len - min(_max_new_tokens(ctx), max(8, limit // 4)))
        question_ids = tokenizer(question[:2000], add_special_tokens=False).input_ids[:room]
        question = tokenizer.decode(question_ids, skip_special_tokens=True) if len(question_ids) == room else question
        prompt = DONUT_PROMPT.format(question=question)
        prompt_ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt").input_ids.to(loaded.device.name)
        prompt_ids = prompt_ids[:, : max(1, limit - 3)]
        batch = _pixels(loaded.processor.image_processor, image, loaded)
        new_tokens = min(_max_new_tokens(ctx), max(1, limit - 2 - prompt_ids.shape[1]))
        kwargs = {"pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id}
        if tokenizer.unk_token_id is not None:
            kwargs["bad_words_ids"] = [[tokenizer.unk_token_id]]
        with torch.inference_mode():
            ids = loaded.model.generate(batch["pixel_values"], decoder_input_ids=prompt_ids,
                                        max_new_tokens=new_tokens, **kwargs)
        sequence = tokenizer.batch_decode(ids)[0]
        answer = parse_donut_answer(sequence, str(tokenizer.eos_token), str(tokenizer.pad_token))
        return TaskOutputs(text=answer or "(no answer found in the document)",
                           detail={"answer": answer, "question": question})
