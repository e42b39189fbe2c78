"""What the hf-inference API accepts for each task, as huggingface_hub's InferenceClient sends it:
a fake that answers any body would pass a client that sends an image to a text model, a question
without its context, or audio the server cannot decode. `shape_error` says what a real server would
refuse (400), or None."""
from __future__ import annotations

import base64
import binascii
import io
import json
from typing import Any

TEXT_IN = {"text-classification", "token-classification", "summarization", "translation", "text-generation",
           "text-to-image", "text-to-speech", "text-to-video"}
IMAGE_IN = {"image-classification", "object-detection", "image-segmentation", "image-to-text", "image-to-image"}
AUDIO_IN = {"automatic-speech-recognition", "audio-classification", "audio-to-audio"}
CHAT_ROLES = {"system", "user", "assistant"}


def _is_image(data: bytes) -> bool:
    from PIL import Image
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.verify()
        return True
    except Exception:
        return False


def _is_audio(data: bytes) -> bool:
    import soundfile as sf
    try:
        sf.info(io.BytesIO(data))
        return True
    except Exception:
        return False


def _b64_image(value: Any) -> bool:
    if not isinstance(value, str) or not value:
        return False
    try:
        return _is_image(base64.b64decode(value.split(",", 1)[-1], validate=True))
    except (binascii.Error, ValueError):
        return False


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _json_body(kind: str, data: Any) -> str | None:
    if not isinstance(data, dict):
        return f"{kind} takes a JSON object with 'inputs'"
    inputs = data.get("inputs")
    if not isinstance(data.get("parameters", {}), dict):
        return "'parameters' must be an object"
    if kind in TEXT_IN:
        return None if _text(inputs) else f"{kind} takes 'inputs' as a non-empty string"
    if kind == "question-answering":
        ok = isinstance(inputs, dict) and _text(inputs.get("question")) and _text(inputs.get("context"))
        return None if ok else "question-answering takes 'inputs': {'question': str, 'context': str}"
    if kind == "sentence-similarity":
        sentences = inputs.get("sentences") if isinstance(inputs, dict) else None
        ok = (isinstance(inputs, dict) and _text(inputs.get("source_sentence")) and isinstance(sentences, list)
              and bool(sentences) and all(_text(s) for s in sentences))
        return None if ok else "sentence-similarity takes 'inputs': {'source_sentence': str, 'sentences': [str]}"
    if kind == "visual-question-answering":   # huggingface_hub sends question and image beside inputs
        ok = _text(data.get("question")) and _b64_image(data.get("image"))
        return None if ok else "visual-question-answering takes 'question' and a base64 'image'"
    if kind == "document-question-answering":
        ok = isinstance(inputs, dict) and _text(inputs.get("question")) and _b64_image(inputs.get("image"))
        return None if ok else "document-question-answering takes 'inputs': {'question': str, 'image': base64}"
    if kind == "image-to-image":
        ok = _b64_image(inputs) and _text((data.get("parameters") or {}).get("prompt"))
        return None if ok else "image-to-image as JSON takes a base64 image in 'inputs' and parameters.prompt"
    if kind in IMAGE_IN:
        return None if _b64_image(inputs) else f"{kind} takes image bytes, or a base64 image in 'inputs'"
    if kind in AUDIO_IN:
        return f"{kind} takes the audio file's bytes as the body"
    return None


def _chat_body(data: Any) -> str | None:
    messages = data.get("messages") if isinstance(data, dict) else None
    if not isinstance(messages, list) or not messages:
        return "a chat completion takes a non-empty 'messages' list"
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in CHAT_ROLES:
            return f"each message needs a role among {sorted(CHAT_ROLES)}"
        content = m.get("content")
        if not (isinstance(content, str) or isinstance(content, list) and all(
                isinstance(p, dict) and p.get("type") in ("text", "image_url") for p in content)):
            return "a message's content is a string or a list of text / image_url parts"
    if "max_tokens" in data and not (isinstance(data["max_tokens"], int) and data["max_tokens"] > 0):
        return "max_tokens must be a positive integer"
    return None


def shape_error(kind: str, content_type: str, body: bytes) -> str | None:
    """Why the hf-inference API would refuse this request body for `kind` (a task, or "chat")."""
    is_json = "json" in content_type
    data: Any = None
    if is_json:
        try:
            data = json.loads(body or b"null")
        except ValueError:
            return "the body is not valid JSON"
    if kind == "chat":
        return _chat_body(data) if is_json else "a chat completion takes a JSON body"
    if is_json:
        return _json_body(kind, data)
    if kind in IMAGE_IN:
        return None if _is_image(body) else f"{kind}: the body is not an image the server can read"
    if kind in AUDIO_IN:
        return None if _is_audio(body) else f"{kind}: the body is not audio the server can read"
    return f"{kind} takes a JSON body, not {content_type or 'an untyped body'}"
