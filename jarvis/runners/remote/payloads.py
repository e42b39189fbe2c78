"""What goes into and comes out of a remote call: inputs as the service wants them (texts cut to a size
services accept, images and audio as bytes with their mime type) and service results as Jarvis outputs
(images PNG, audio 16-bit WAV, video MP4, structured results as readable text plus a JSON detail).
"""
from __future__ import annotations

import io
import mimetypes
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import soundfile as sf
from PIL import Image

from jarvis.errors import TaskError
from jarvis.runners.base import RunContext, TaskInputs, TaskOutputs
from jarvis.runners.media.audio_files import write_wav
from jarvis.runners.media.images import draw_boxes, load_rgb, overlay_masks, to_rgb
from jarvis.runners.media.video_files import reencode_mp4, video_info

if TYPE_CHECKING:  # for its type only: huggingface_hub loads at the first remote call
    from jarvis.hub_internals import MimeBytes

MAX_TEXT_CHARS = 20000   # longer inputs are cut: services reject huge bodies, models truncate anyway
IMAGE_SUFFIXES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


def texts(inputs: TaskInputs, n: int, names: tuple[str, ...] = ("text",)) -> list[str]:
    """The first n texts, each cut to MAX_TEXT_CHARS; an error naming what is missing."""
    found = [str(t) for t in inputs.text[:n]]
    if len(found) < n:
        raise TaskError(f"this task needs {' and '.join(names)} as text inputs and got {len(found)}")
    return [t[:MAX_TEXT_CHARS] for t in found]


def image(inputs: TaskInputs) -> MimeBytes:
    """The first image as bytes with its mime type; PNG/JPEG files as they are, others as RGB PNG."""
    from jarvis.hub_internals import MimeBytes
    path = Path(inputs.first("image"))
    mime = IMAGE_SUFFIXES.get(path.suffix.lower())
    if mime and path.is_file():
        return MimeBytes(path.read_bytes(), mime)
    buf = io.BytesIO()
    load_rgb(path).save(buf, format="PNG")
    return MimeBytes(buf.getvalue(), "image/png")


def audio(inputs: TaskInputs) -> MimeBytes:
    """The first audio file as bytes with its mime type (the service decodes it)."""
    from jarvis.hub_internals import MimeBytes
    path = Path(inputs.first("audio"))
    if not path.is_file():
        raise TaskError(f"audio file {path.name!r} not found; attach it again")
    return MimeBytes(path.read_bytes(), mimetypes.guess_type(path.name)[0] or "application/octet-stream")


def plain(obj: Any) -> Any:
    """A library output dataclass (or list of them) as plain JSON-serialisable data."""
    if isinstance(obj, list):
        return [plain(o) for o in obj]
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items() if not isinstance(v, (bytes, bytearray))}
    if hasattr(obj, "__dataclass_fields__"):
        return {k: plain(v) for k, v in vars(obj).items()
                if v is not None and not k.startswith("_") and not isinstance(v, (bytes, bytearray))
                and type(v).__module__.split(".")[0] != "PIL"}
    return obj


def labels(items: Any) -> TaskOutputs:
    """Classification results (label, score), best first, as text lines and a detail list."""
    items = items if isinstance(items, list) else [items]
    ranked = sorted(((str(i.label), round(float(i.score), 4)) for i in items), key=lambda pair: -pair[1])
    text = "\n".join(f"{label}: {score:.3f}" for label, score in ranked) or "(no labels)"
    return TaskOutputs(text=text, detail={"labels": [{"label": label, "score": score} for label, score in ranked]})


def answers(out: Any) -> TaskOutputs:
    """Question-answering results, best first: the best answer as text, all of them as detail."""
    items = out if isinstance(out, list) else [out]
    if not items:
        return TaskOutputs(text="(no answer)", detail={"answers": []})
    found = [(str(i.answer), round(float(i.score or 0.0), 4)) for i in items]
    return TaskOutputs(text=found[0][0], detail={"answers": [{"answer": answer, "score": score} for answer, score in found]})


def save_image(img: Image.Image, ctx: RunContext, stem: str) -> Path:
    """A service image saved as an RGB PNG in the session directory."""
    path = ctx.new_file(stem, ".png")
    to_rgb(img).save(path, format="PNG")
    return path


def detections(out: list[Any], inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
    """Object detection results: boxes drawn on the input image, and listed as text and detail."""
    img = load_rgb(inputs.first("image"))
    found: list[tuple[str, float, list[float]]] = []
    for d in out:
        box = d.box
        found.append((str(d.label), round(float(d.score), 4),
                      [float(box.xmin), float(box.ymin), float(box.xmax), float(box.ymax)]))
    drawn = draw_boxes(img, found)
    text = "\n".join(f"{label} ({score:.2f}) at {[round(v) for v in box]}" for label, score, box in found)
    rows = [{"label": label, "score": score, "box": box} for label, score, box in found]
    return TaskOutputs(image=save_image(drawn, ctx, "detection"), text=text or "(no objects found)",
                       detail={"objects": rows})


def segments(out: list[Any], inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
    """Segmentation results: the masks as a colour overlay on the input image, labels as text and detail."""
    img = load_rgb(inputs.first("image"))
    masks: list[np.ndarray] = []
    found: list[tuple[str, float | None]] = []
    for seg in out:
        mask = seg.mask.convert("L")
        if mask.size != img.size:
            mask = mask.resize(img.size)
        masks.append(np.asarray(mask) > 127)
        found.append((str(seg.label), None if seg.score is None else round(float(seg.score), 4)))
    text = "\n".join(label + (f" ({score:.2f})" if score is not None else "") for label, score in found)
    return TaskOutputs(image=save_image(overlay_masks(img, masks), ctx, "segmentation"),
                       text=text or "(no regions found)",
                       detail={"segments": [{"label": lb, "score": sc} for lb, sc in found]})


def _sniff_audio(data: bytes) -> str:
    """The file suffix of audio bytes by their magic number; ".bin" when unknown."""
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
    try:
        info = video_info(path)
    except Exception as exc:
        raise TaskError(f"the service returned a video Jarvis cannot read ({type(exc).__name__})") from exc
    if info["codec"] == "h264" and path.suffix == ".mp4":
        return path
    return reencode_mp4(path, ctx.new_file("video", ".mp4"), stop=ctx.raise_if_cancelled)
