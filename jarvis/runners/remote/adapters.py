"""One InferenceClient call per task type, and its result turned into Jarvis outputs.

Same conventions as the local runners: images PNG, audio 16-bit WAV, video MP4, structured results
as readable text plus a JSON-serialisable detail. Captioning and (document) visual question
answering can also go to a vision-language model through chat completion (call_vlm).
"""
from __future__ import annotations

import base64
import io
import mimetypes
from pathlib import Path
from typing import Any

from jarvis.runners.base import RunContext, TaskError, TaskInputs, TaskOutputs

# Jarvis task type -> what serves it remotely (InferenceClient method, or a raw hf-inference POST)
REMOTE_TASKS = {
    "text-classification", "token-classification", "summarization", "translation", "question-answering",
    "sentence-similarity", "conversational", "text-generation", "text2text-generation",
    "image-classification", "object-detection", "image-segmentation", "image-to-text",
    "visual-question-answering", "document-question-answering", "text-to-image", "image-to-image",
    "image-editing", "text-to-speech", "automatic-speech-recognition", "audio-classification",
    "audio-to-audio", "text-to-video",
}
VLM_TASKS = {"image-to-text", "visual-question-answering", "document-question-answering"}
MAX_TEXT_CHARS = 20000   # longer inputs are cut: services reject huge bodies, models truncate anyway
IMAGE_SUFFIXES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


def _texts(inputs: TaskInputs, n: int, names: tuple[str, ...] = ("text",)) -> list[str]:
    texts = [str(t) for t in inputs.text[:n]]
    if len(texts) < n:
        raise TaskError(f"this task needs {' and '.join(names)} as text inputs and got {len(texts)}")
    return [t[:MAX_TEXT_CHARS] for t in texts]


def _image(inputs: TaskInputs):
    """The first image as bytes with its mime type; PNG/JPEG files as they are, others as RGB PNG."""
    from huggingface_hub.inference._common import MimeBytes
    path = Path(inputs.first("image"))
    mime = IMAGE_SUFFIXES.get(path.suffix.lower())
    if mime and path.is_file():
        return MimeBytes(path.read_bytes(), mime)
    from jarvis.runners.media.images import load_rgb
    buf = io.BytesIO()
    load_rgb(path).save(buf, format="PNG")
    return MimeBytes(buf.getvalue(), "image/png")


def _audio(inputs: TaskInputs):
    from huggingface_hub.inference._common import MimeBytes
    path = Path(inputs.first("audio"))
    if not path.is_file():
        raise TaskError(f"audio file {path.name!r} not found; attach it again")
    return MimeBytes(path.read_bytes(), mimetypes.guess_type(path.name)[0] or "application/octet-stream")


def _plain(obj: Any) -> Any:
    """A library output dataclass (or list of them) as plain JSON-serialisable data."""
    if isinstance(obj, list):
        return [_plain(o) for o in obj]
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items() if not isinstance(v, (bytes, bytearray))}
    if hasattr(obj, "__dataclass_fields__"):
        return {k: _plain(v) for k, v in vars(obj).items()
                if v is not None and not k.startswith("_") and not isinstance(v, (bytes, bytearray))
                and type(v).__module__.split(".")[0] != "PIL"}
    return obj


def _labels(items: Any) -> TaskOutputs:
    items = items if isinstance(items, list) else [items]
    rows = [{"label": str(i.label), "score": round(float(i.score), 4)} for i in items]
    rows.sort(key=lambda r: -r["score"])
    text = "\n".join(f"{r['label']}: {r['score']:.3f}" for r in rows) or "(no labels)"
    return TaskOutputs(text=text, detail=rows)


def _save_image(img, ctx: RunContext, stem: str) -> Path:
    from jarvis.runners.media.images import to_rgb
    path = ctx.new_file(stem, ".png")
    to_rgb(img).save(path, format="PNG")
    return path


def _sniff_audio(data: bytes) -> str:
    if data[:4] == b"RIFF":
        return ".wav"
    if data[:4] == b"fLaC":
        return ".flac"
    if data[:4] == b"OggS":
        return ".ogg"
    if data[:3] == b"ID3" or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0):
        return ".mp3"
    return ".bin"


def save_audio(data: bytes, ctx: RunContext, stem: str = "speech") -> Path:
    """Service audio (wav/flac/mp3/ogg bytes) as 16-bit WAV; bytes kept with their suffix if unreadable."""
    import soundfile as sf

    from jarvis.runners.media.audio_files import write_wav
    if not data:
        raise TaskError("the service returned no audio; try again or pick another model")
    try:
        samples, rate = sf.read(io.BytesIO(data), dtype="float32")
    except Exception as exc:
        suffix = _sniff_audio(data)
        if suffix == ".bin":
            raise TaskError(f"the service returned audio Jarvis cannot read ({exc})") from exc
        path = ctx.new_file(stem, suffix)
        path.write_bytes(data)
        return path
    return write_wav(ctx.new_file(stem, ".wav"), samples, rate)


def save_video(data: bytes, ctx: RunContext) -> Path:
    """Service video bytes as MP4; a non-H.264 or non-MP4 video is re-encoded to H.264 when possible."""
    if not data or len(data) < 12:
        raise TaskError("the service returned no video; try again or pick another model")
    path = ctx.new_file("video", ".mp4" if data[4:8] == b"ftyp" else ".webm")
    path.write_bytes(data)
    from jarvis.runners.media.video_files import video_info, write_mp4
    try:
        info = video_info(path)
    except Exception as exc:
        raise TaskError(f"the service returned a video Jarvis cannot read ({type(exc).__name__})") from exc
    if info["codec"] == "h264" and path.suffix == ".mp4":
        return path
    import av
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return write_mp4(frames, ctx.new_file("video", ".mp4"))


# -- the calls ---------------------------------------------------------------------------------

def call(client, task: str, model_id: str, inputs: TaskInputs, ctx: RunContext, is_url: bool) -> TaskOutputs:
    """Run one task through the InferenceClient method that serves it."""
    m = None if is_url else model_id  # a URL client already knows where to post
    opts = ctx.options or {}
    if task == "text-classification":
        out = client.text_classification(_texts(inputs, 1)[0], model=m)
        return _labels(out)
    if task == "token-classification":
        out = client.token_classification(_texts(inputs, 1)[0], model=m)
        rows = [{"entity": str(e.entity_group or e.entity or ""), "word": e.word, "score": round(float(e.score), 4),
                 "start": e.start, "end": e.end} for e in out]
        text = "\n".join(f"{r['word']}: {r['entity']} ({r['score']:.2f})" for r in rows) or "(no entities found)"
        return TaskOutputs(text=text, detail=rows)
    if task == "summarization":
        return TaskOutputs(text=client.summarization(_texts(inputs, 1)[0], model=m).summary_text)
    if task == "translation":
        return TaskOutputs(text=client.translation(_texts(inputs, 1)[0], model=m).translation_text)
    if task == "question-answering":
        question, context = _texts(inputs, 2, ("a question", "a context"))
        out = client.question_answering(question=question, context=context, model=m)
        out = out[0] if isinstance(out, list) else out
        return TaskOutputs(text=str(out.answer), detail=_plain(out))
    if task == "sentence-similarity":
        first, second = _texts(inputs, 2, ("two sentences",))
        scores = client.sentence_similarity(first, [second], model=m)
        score = float(scores[0])
        return TaskOutputs(text=f"similarity: {score:.3f}", detail={"similarity": score})
    if task == "conversational":
        return _chat(client, model_id, [{"role": "user", "content": _texts(inputs, 1)[0]}], opts)
    if task in ("text-generation", "text2text-generation"):
        prompt = _texts(inputs, 1)[0]
        try:
            text = client.text_generation(prompt, model=m, max_new_tokens=int(opts.get("max_new_tokens", 256)))
        except ValueError as exc:  # the provider serves this model as a chat model only
            from huggingface_hub.errors import HfHubHTTPError
            if isinstance(exc, HfHubHTTPError) or "Supported task: conversational" not in str(exc):
                raise
            return _chat(client, model_id, [{"role": "user", "content": prompt}], opts)
        return TaskOutputs(text=str(text))
    if task == "image-classification":
        return _labels(client.image_classification(_image(inputs), model=m))
    if task == "object-detection":
        return _detections(client.object_detection(_image(inputs), model=m), inputs, ctx)
    if task == "image-segmentation":
        return _segments(client.image_segmentation(_image(inputs), model=m), inputs, ctx)
    if task == "image-to-text":
        return TaskOutputs(text=str(client.image_to_text(_image(inputs), model=m).generated_text))
    if task == "visual-question-answering":
        out = client.visual_question_answering(_image(inputs), _texts(inputs, 1, ("a question",))[0], model=m)
        return _answers(out)
    if task == "document-question-answering":
        out = client.document_question_answering(_image(inputs), _texts(inputs, 1, ("a question",))[0], model=m)
        return _answers(out)
    if task == "text-to-image":
        return TaskOutputs(image=_save_image(client.text_to_image(_texts(inputs, 1)[0], model=m), ctx, "image"))
    if task in ("image-to-image", "image-editing"):
        prompt = inputs.text[0] if inputs.text else None
        img = client.image_to_image(_image(inputs), prompt=prompt, model=m)
        return TaskOutputs(image=_save_image(img, ctx, "image"))
    if task == "text-to-speech":
        return TaskOutputs(audio=save_audio(client.text_to_speech(_texts(inputs, 1)[0], model=m), ctx))
    if task == "automatic-speech-recognition":
        out = client.automatic_speech_recognition(_audio(inputs), model=m)
        return TaskOutputs(text=str(out.text).strip())
    if task == "audio-classification":
        return _labels(client.audio_classification(_audio(inputs), model=m))
    if task == "audio-to-audio":
        out = client.audio_to_audio(_audio(inputs), model=m)
        if not out:
            raise TaskError("the service returned no audio; try another model")
        paths = [save_audio(item.blob, ctx, "audio") for item in out]
        detail = [{"label": str(item.label), "file": p.name} for item, p in zip(out, paths)]
        return TaskOutputs(audio=paths[0], text=", ".join(d["label"] for d in detail), detail=detail)
    if task == "text-to-video":
        prompt = _texts(inputs, 1)[0]
        data = _post_video(client, prompt) if is_url else client.text_to_video(prompt, model=m)
        return TaskOutputs(video=save_video(data, ctx))
    raise TaskError(f"'{task}' cannot run remotely")


def _chat(client, model_id: str, messages: list[dict], opts: dict) -> TaskOutputs:
    out = client.chat_completion(messages, model=model_id, max_tokens=int(opts.get("max_new_tokens", 256)))
    if not out.choices:
        raise TaskError(f"{model_id} returned no answer")
    return TaskOutputs(text=str(out.choices[0].message.content or "").strip())


def _post_video(client, prompt: str) -> bytes:
    """text-to-video on a URL: the hf-inference wire format, posted by hand (the library's
    hf-inference helper has no text-to-video)."""
    from huggingface_hub.inference._common import RequestParameters
    headers = {"content-type": "application/json", "accept": "video/mp4"}
    if client.token:
        headers["authorization"] = f"Bearer {client.token}"
    params = RequestParameters(url=client.model, task="text-to-video", model=client.model,
                               json={"inputs": prompt}, data=None, headers=headers)
    return client._inner_post(params)


def _answers(out: Any) -> TaskOutputs:
    items = out if isinstance(out, list) else [out]
    if not items:
        return TaskOutputs(text="(no answer)", detail=[])
    rows = [{"answer": str(i.answer), "score": round(float(i.score or 0.0), 4)} for i in items]
    return TaskOutputs(text=rows[0]["answer"], detail=rows)


def _detections(out: list, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
    from jarvis.runners.media.images import draw_boxes, load_rgb
    img = load_rgb(inputs.first("image"))
    rows = []
    for d in out:
        box = d.box
        rows.append({"label": str(d.label), "score": round(float(d.score), 4),
                     "box": [float(box.xmin), float(box.ymin), float(box.xmax), float(box.ymax)]})
    drawn = draw_boxes(img, [(r["label"], r["score"], r["box"]) for r in rows])
    text = "\n".join(f"{r['label']} ({r['score']:.2f}) at {[round(v) for v in r['box']]}" for r in rows)
    return TaskOutputs(image=_save_image(drawn, ctx, "detection"), text=text or "(no objects found)", detail=rows)


def _segments(out: list, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
    import numpy as np

    from jarvis.runners.media.images import load_rgb, overlay_masks
    img = load_rgb(inputs.first("image"))
    masks, rows = [], []
    for seg in out:
        mask = seg.mask.convert("L")
        if mask.size != img.size:
            mask = mask.resize(img.size)
        masks.append(np.asarray(mask) > 127)
        rows.append({"label": str(seg.label), "score": None if seg.score is None else round(float(seg.score), 4)})
    text = "\n".join(r["label"] + (f" ({r['score']:.2f})" if r["score"] is not None else "") for r in rows)
    return TaskOutputs(image=_save_image(overlay_masks(img, masks), ctx, "segmentation"),
                       text=text or "(no regions found)", detail=rows)


# -- vision-language fallback ------------------------------------------------------------------

VLM_PROMPTS = {
    "image-to-text": "Describe this image in one sentence.",
    "visual-question-answering": "Answer the question about this image in a few words: {q}",
    "document-question-answering": "This image is a document. Answer from it, in a few words: {q}",
}


def call_vlm(client, task: str, vlm: str, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
    """A captioning or VQA task asked to a vision-language model, the image sent as a data: URL."""
    image = _image(inputs)
    url = f"data:{image.mime_type};base64,{base64.b64encode(bytes(image)).decode()}"
    question = "" if task == "image-to-text" else _texts(inputs, 1, ("a question",))[0]
    prompt = VLM_PROMPTS[task].format(q=question)
    messages = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                             {"type": "text", "text": prompt}]}]
    out = _chat(client, vlm, messages, {"max_new_tokens": (ctx.options or {}).get("max_new_tokens", 128)})
    if not out.text:
        raise TaskError(f"the vision-language model {vlm} returned an empty answer")
    out.detail = {"answer": out.text}
    return out
