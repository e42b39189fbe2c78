"""Video files: write frames as an H.264 MP4 (yuv420p, even sizes) that browsers play, read a first frame.

PyAV wheels ship either libx264 or libopenh264; the encoder is picked from what the installed wheel has.
Nothing here holds a whole video in memory or decodes more than it needs: frames are encoded as they
come, the frame count comes from the packets, and the demuxer is forced from the file's magic bytes
(FFmpeg never guesses: a playlist could name URLs or local files).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import lru_cache
from itertools import chain
from pathlib import Path
from typing import Any, cast

from jarvis.errors import TaskError
from jarvis.files.content_checks import av_format

H264_ENCODERS = ("libx264", "libopenh264", "h264")


@lru_cache(maxsize=1)
def h264_encoder() -> str:
    """Name of an H.264 encoder the installed PyAV has; TaskError when it has none."""
    import av

    for name in H264_ENCODERS:
        try:
            codec = av.codec.Codec(name, "w")
        except Exception:
            continue
        if codec.name in ("libx264", "libopenh264"):  # "h264" resolves to the build's default encoder
            return codec.name
    raise TaskError("this PyAV build has no H.264 encoder (libx264 or libopenh264); "
                    "install the PyAV wheel from PyPI (`pip install av`) to write MP4 video")


def _to_uint8_rgb(frame: Any):
    """A frame (PIL image, or array HxWx3/HxW in uint8 or float 0..1) as a uint8 RGB numpy array."""
    import numpy as np

    if hasattr(frame, "convert"):  # PIL image
        return np.asarray(frame.convert("RGB"), dtype=np.uint8)
    arr = np.asarray(frame)
    if arr.dtype != np.uint8:
        arr = arr.astype(np.float32)
        if arr.size and float(arr.max()) <= 1.0 + 1e-6:
            arr = arr * 255.0
        arr = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    if arr.ndim != 3:
        raise TaskError(f"cannot write a video frame of shape {arr.shape}; expected height x width x channels")
    if arr.shape[-1] == 4:
        arr = arr[..., :3]
    elif arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    return np.ascontiguousarray(arr)


def _even(arr):
    """Crop a frame by at most one pixel per side so both sides are even (yuv420p needs it)."""
    h, w = arr.shape[:2]
    if h < 2 or w < 2:
        raise TaskError(f"video frames of {w}x{h} pixels are too small to encode")
    return arr[: h - h % 2, : w - w % 2]


def write_mp4(frames: Iterable[Any], path: str | Path, fps: int = 8, stop: Callable[[], None] = lambda: None) -> Path:
    """Write frames (PIL images or arrays) to `path` as H.264 MP4, yuv420p, even dimensions. Frames are
    encoded one at a time as the iterable yields them; `stop` runs between frames and raises to end."""
    import av

    pending = iter(frames)
    first = next(pending, None)
    if first is None:
        raise TaskError("the model produced no video frames; try again with another prompt or model")
    head = _even(_to_uint8_rgb(first))
    h, w = head.shape[:2]
    rgb = chain([head], (_even(_to_uint8_rgb(f)) for f in pending))
    path = Path(path)
    encoder = h264_encoder()
    with av.open(str(path), mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
        stream = cast("av.VideoStream", container.add_stream(encoder, rate=int(fps)))  # a video codec's stream
        stream.width, stream.height = w, h
        stream.pix_fmt = "yuv420p"
        if encoder == "libx264":
            stream.options = {"crf": "20", "preset": "veryfast"}
        for arr in rgb:
            stop()
            if arr.shape[:2] != (h, w):
                arr = _resize(arr, w, h)
            frame = av.VideoFrame.from_ndarray(arr, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _resize(arr, width: int, height: int):
    import numpy as np
    from PIL import Image

    return np.asarray(Image.fromarray(arr).resize((width, height)), dtype=np.uint8)


def _demuxer(path: str | Path) -> str:
    """The PyAV format to force for a video file; TaskError when its magic bytes name none."""
    fmt = av_format(Path(path))
    if fmt is None:
        raise TaskError(f"{Path(path).name} is not a video Jarvis can read; send an MP4, WEBM, MOV, MKV or AVI file")
    return fmt


def read_first_frame(path: str | Path):
    """The first frame of a video as an RGB PIL image (e.g. to feed a video into an image task)."""
    import av

    fmt = _demuxer(path)
    try:
        with av.open(str(path), format=fmt) as container:
            for frame in container.decode(video=0):
                return frame.to_image().convert("RGB")
    except (av.error.FFmpegError, OSError, IndexError) as exc:
        raise TaskError(f"could not read video {Path(path).name}: {exc}; is it a valid video file?") from exc
    raise TaskError(f"video {Path(path).name} has no frames")


def reencode_mp4(source: str | Path, path: str | Path, stop: Callable[[], None] = lambda: None) -> Path:
    """Any video Jarvis reads re-encoded as H.264 MP4, decoded and encoded a frame at a time."""
    import av

    with av.open(str(source), format=_demuxer(source)) as container:
        frames = (frame.to_ndarray(format="rgb24") for frame in container.decode(video=0))
        return write_mp4(frames, path, stop=stop)


def video_info(path: str | Path) -> dict:
    """Codec name, frame count, size and duration of a video (for checks and the record). Frames are
    counted from the packets, nothing is decoded: a million frames take a second, not minutes."""
    import av

    with av.open(str(path), format=_demuxer(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for packet in container.demux(stream) if packet.size)
        return {"codec": stream.codec_context.name, "frames": frames, "width": stream.width,
                "height": stream.height, "pix_fmt": stream.codec_context.pix_fmt,
                "seconds": float(container.duration or 0) / 1e6}
