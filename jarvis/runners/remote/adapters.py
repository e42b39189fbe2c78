"""One function per task type that calls the InferenceClient method serving it and turns the result
into Jarvis outputs; the registry names each task's adapter, and the remote executor calls it.

Every adapter has one signature, `adapter(call, inputs, ctx) -> TaskOutputs`, where `call` says which
client and model to use. Captioning and (document) visual question answering can also go to a
vision-language model through chat completion: the `*_by_vlm` adapters.
"""
from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jarvis.errors import TaskError
from jarvis.runners.base import RunContext, TaskInputs, TaskOutputs
from jarvis.runners.remote import payloads
from jarvis.runners.vlm_prompts import CAPTION_PROMPT, DOCUMENT_PROMPT, VQA_PROMPT

if TYPE_CHECKING:  # for its type only: huggingface_hub loads at the first remote call
    from huggingface_hub import InferenceClient


@dataclass(frozen=True)
class RemoteCall:
    """Where one remote call goes: the client, the model asked for, whether the client posts to a URL."""
    client: InferenceClient
    model_id: str
    is_url: bool = False

    @property
    def model(self) -> str | None:
        """The `model` argument of a client method: None when the client already targets a URL."""
        return None if self.is_url else self.model_id


Adapter = Callable[[RemoteCall, TaskInputs, RunContext], TaskOutputs]


# -- text --------------------------------------------------------------------------------------

def text_classification(call: RemoteCall, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
    return payloads.labels(call.client.text_classification(payloads.texts(inputs, 1)[0], model=call.model))


def token_classification(call: RemoteCall, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
    out = call.client.token_classification(payloads.texts(inputs, 1)[0], model=call.model)
    rows = [{"entity": str(e.entity_group or e.entity or ""), "word": e.word, "score": round(float(e.score), 4),
             "start": e.start, "end": e.end} for e in out]
    text = "\n".join(f"{r['word']}: {r['entity']} ({r['score']:.2f})" for r in rows) or "(no entities found)"
    return TaskOutputs(text=text, detail={"entities": rows})


def summarization(call: RemoteCall, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
    summary = str(call.client.summarization(payloads.texts(inputs, 1)[0], model=call.model).summary_text)
    return TaskOutputs(text=summary, detail={"summary": summary})


def translation(call: RemoteCall, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
    translated = str(call.client.translation(payloads.texts(inputs, 1)[0], model=call.model).translation_text)
    return TaskOutputs(text=translated, detail={"translation": translated})


def question_answering(call: RemoteCall, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
    question, context = payloads.texts(inputs, 2, ("a question", "a context"))
    out = call.client.question_answering(question=question, context=context, model=call.model)
    best = out[0] if isinstance(out, list) else out
    return TaskOutputs(text=str(best.answer), detail=payloads.plain(best))


def sentence_similarity(call: RemoteCall, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
    first, second = payloads.texts(inputs, 2, ("two sentences",))
    score = float(call.client.sentence_similarity(first, [second], model=call.model)[0])
    return TaskOutputs(text=f"similarity: {score:.3f}", detail={"similarity": score, "similarities": [score]})


def conversational(call: RemoteCall, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
    messages = [{"role": "user", "content": payloads.texts(inputs, 1)[0]}]
    out = _chat(call, call.model_id, messages, ctx.options.new_tokens("remote-text"))
    out.detail = {"reply": out.text}
    return out


def text_generation(call: RemoteCall, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
    """A continuation; a model the provider serves only as a chat model is asked through chat instead."""
    prompt = payloads.texts(inputs, 1)[0]
    new_tokens = ctx.options.new_tokens("remote-text")
    try:
        text = str(call.client.text_generation(prompt, model=call.model, max_new_tokens=new_tokens))
    except ValueError as exc:  # the provider serves this model as a chat model only
        from huggingface_hub.errors import HfHubHTTPError
        if isinstance(exc, HfHubHTTPError) or "Supported task: conversational" not in str(exc):
            raise
        text = _chat(call, call.model_id, [{"role": "user", "content": prompt}], new_tokens).text or ""
    return TaskOutputs(text=text, detail={"continuation": text})


def text2text_generation(call: RemoteCall, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
    """Text rewritten into text: the text-generation call, its result named as the local runner names it."""
    out = text_generation(call, inputs, ctx)
    out.detail = {"generated_text": out.text}
    return out


def _chat(call: RemoteCall, model: str, messages: list[dict[str, Any]], max_tokens: int) -> TaskOutputs:
    """One chat completion; its reply as the output text."""
    out = call.client.chat_completion(messages, model=model, max_tokens=max_tokens)
    if not out.choices:
        raise TaskError(f"{model} returned no answer")
    return TaskOutputs(text=str(out.choices[0].message.content or "").strip())


# -- vision ------------------------------------------------------------------------------------

def image_classification(call: RemoteCall, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
    return payloads.labels(call.client.image_classification(payloads.image(inputs), model=call.model))


def object_detection(call: RemoteCall, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
    return payloads.detections(call.client.object_detection(payloads.image(inputs), model=call.model), inputs, ctx)


def image_segmentation(call: RemoteCall, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
    return payloads.segments(call.client.image_segmentation(payloads.image(inputs), model=call.model), inputs, ctx)


def image_to_text(call: RemoteCall, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
    caption = str(call.client.image_to_text(payloads.image(inputs), model=call.model).generated_text)
    return TaskOutputs(text=caption, detail={"caption": caption})


def visual_question_answering(call: RemoteCall, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
    question = payloads.texts(inputs, 1, ("a question",))[0]
    return payloads.answers(call.client.visual_question_answering(payloads.image(inputs), question, model=call.model))


def document_question_answering(call: RemoteCall, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
    question = payloads.texts(inputs, 1, ("a question",))[0]
    return payloads.answers(call.client.document_question_answering(payloads.image(inputs), question,
                                                                    model=call.model))


def text_to_image(call: RemoteCall, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
    img = call.client.text_to_image(payloads.texts(inputs, 1)[0], model=call.model)
    return TaskOutputs(image=payloads.save_image(img, ctx, "image"))


def image_to_image(call: RemoteCall, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
    """A transformed image; the text, when given, is the prompt or the editing instruction."""
    prompt = inputs.text[0] if inputs.text else None
    img = call.client.image_to_image(payloads.image(inputs), prompt=prompt, model=call.model)
    return TaskOutputs(image=payloads.save_image(img, ctx, "image"))


# -- audio and video ---------------------------------------------------------------------------

def text_to_speech(call: RemoteCall, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
    data = call.client.text_to_speech(payloads.texts(inputs, 1)[0], model=call.model)
    return TaskOutputs(audio=payloads.save_audio(data, ctx))


def automatic_speech_recognition(call: RemoteCall, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
    out = call.client.automatic_speech_recognition(payloads.audio(inputs), model=call.model)
    return TaskOutputs(text=str(out.text).strip())


def audio_classification(call: RemoteCall, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
    return payloads.labels(call.client.audio_classification(payloads.audio(inputs), model=call.model))


def audio_to_audio(call: RemoteCall, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
    out = call.client.audio_to_audio(payloads.audio(inputs), model=call.model)
    if not out:
        raise TaskError("the service returned no audio; try another model")
    paths = [payloads.save_audio(item.blob, ctx, "audio") for item in out]
    sources = [{"label": str(item.label), "file": p.name} for item, p in zip(out, paths)]
    return TaskOutputs(audio=paths[0], text=", ".join(d["label"] for d in sources), detail={"sources": sources})


def text_to_video(call: RemoteCall, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
    prompt = payloads.texts(inputs, 1)[0]
    data = _post_video(call.client, prompt) if call.is_url else call.client.text_to_video(prompt, model=call.model)
    return TaskOutputs(video=payloads.save_video(data, ctx))


def _post_video(client: InferenceClient, prompt: str) -> bytes:
    """text-to-video on a URL: the hf-inference wire format, posted by hand (the library's
    hf-inference helper has no text-to-video)."""
    from jarvis.hub_internals import RequestParameters, post_raw
    headers = {"content-type": "application/json", "accept": "video/mp4"}
    if client.token:
        headers["authorization"] = f"Bearer {client.token}"
    params = RequestParameters(url=str(client.model), task="text-to-video", model=client.model,
                               json={"inputs": prompt}, data=None, headers=headers)
    return post_raw(client, params)


# -- vision-language routes --------------------------------------------------------------------

def caption_by_vlm(call: RemoteCall, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
    """image-to-text asked of a vision-language model."""
    out = _ask_vlm(call, CAPTION_PROMPT, inputs, ctx)
    out.detail = {"caption": out.text}
    return out


def answer_by_vlm(call: RemoteCall, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
    """visual-question-answering asked of a vision-language model."""
    question = payloads.texts(inputs, 1, ("a question",))[0]
    return _answers_of(_ask_vlm(call, VQA_PROMPT.format(question=question), inputs, ctx))


def document_answer_by_vlm(call: RemoteCall, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
    """document-question-answering asked of a vision-language model."""
    question = payloads.texts(inputs, 1, ("a question",))[0]
    return _answers_of(_ask_vlm(call, DOCUMENT_PROMPT.format(question=question),
                                inputs, ctx))


def _answers_of(out: TaskOutputs) -> TaskOutputs:
    """A vision-language model's answer in the visual QA detail shape (no score: it gives none)."""
    out.detail = {"answers": [{"answer": out.text}]}
    return out


def _ask_vlm(call: RemoteCall, prompt: str, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
    """The prompt and the image (sent as a data: URL) through chat completion to call.model_id."""
    image = payloads.image(inputs)
    url = f"data:{image.mime_type};base64,{base64.b64encode(bytes(image)).decode()}"
    messages = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                             {"type": "text", "text": prompt}]}]
    out = _chat(call, call.model_id, messages, ctx.options.new_tokens("vlm-answer"))
    if not out.text:
        raise TaskError(f"the vision-language model {call.model_id} returned an empty answer")
    return out
