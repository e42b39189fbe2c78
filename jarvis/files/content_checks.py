"""Check that a file really is the image, audio or video it claims to be, before a model sees it.

Uploads and fetched files are untrusted: this refuses empty, truncated, mislabelled and
decompression-bomb files with a message naming the file, instead of crashing deep in a runner.
Budgets (seconds of audio, rate x channels, video length and pixels in all) are read from the
header, so a tiny file declaring hours of 96 kHz audio is refused before anything is decoded.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import soundfile as sf
from PIL import Image, UnidentifiedImageError

from jarvis.errors import ResourceError
from jarvis.files.media_types import media_type

if TYPE_CHECKING:
    import av

# What each sniffed suffix is called in messages.
_LABELS = {
    ".png": "PNG image", ".jpg": "JPEG image", ".gif": "GIF image", ".webp": "WEBP image",
    ".bmp": "BMP image", ".tiff": "TIFF image", ".wav": "WAV audio", ".flac": "FLAC audio",
    ".ogg": "Ogg audio", ".mp3": "MP3 audio", ".m4a": "M4A audio", ".mp4": "MP4 video",
    ".mov": "QuickTime video", ".webm": "WEBM video", ".mkv": "Matroska video", ".avi": "AVI video",
}
# Containers that may legitimately hold either audio or video.
_AUDIO_OK = {".mp4", ".mov", ".m4a", ".webm", ".mkv", ".ogg"}
_VIDEO_OK = {".mp4", ".mov", ".webm", ".mkv", ".ogg", ".avi"}
# Demuxer forced on PyAV per sniffed container (never let FFmpeg guess: playlists can name URLs).
_AV_FORMATS = {".mp4": "mov", ".mov": "mov", ".m4a": "mov", ".webm": "matroska",
               ".mkv": "matroska", ".avi": "avi", ".ogg": "ogg", ".mp3": "mp3"}
# Image decoders allowed (no EPS/PostScript, which would run Ghostscript).
IMAGE_FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF")
_MAX_PACKETS = 300
_SNIFF_BYTES = 512
_DIB_SIZES = (12, 40, 52, 56, 64, 108, 124)  # BMP info-header sizes
_UNKNOWN_LENGTH = 2 ** 62  # libsndfile reports about 2**63 frames when a header leaves the length out


class MediaLimits(Protocol):
    """The `files:` budgets a check applies (config.FilesConfig holds them and their defaults)."""
    max_image_megapixels: float
    max_audio_seconds: float
    max_audio_rate_channels: int
    max_video_seconds: float
    max_video_total_megapixels: float


def sniff_bytes(head: bytes) -> str | None:
    """The canonical file suffix ('.png', '.jpg', '.mp4', ...) the leading bytes announce, or None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return ".png"
    if head.startswith(b"\xff\xd8\xff"):
        return ".jpg"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return ".gif"
    if head[:4] in (b"RIFF", b"RF64", b"BW64") and len(head) >= 12:
        return {b"WEBP": ".webp", b"WAVE": ".wav", b"AVI ": ".avi"}.get(head[8:12])
    if head.startswith(b"BM") and len(head) >= 18 and int.from_bytes(head[14:18], "little") in _DIB_SIZES:
        return ".bmp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return ".tiff"
    if head.startswith(b"fLaC"):
        return ".flac"
    if head.startswith(b"OggS"):
        return ".ogg"
    if head.startswith(b"ID3") or _mpeg_audio_frame(head):
        return ".mp3"
    if len(head) >= 12 and head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand == b"qt  ":
            return ".mov"
        return ".m4a" if brand in (b"M4A ", b"M4B ", b"M4P ") else ".mp4"
    if len(head) >= 8 and head[4:8] in (b"moov", b"mdat", b"wide"):
        return ".mov"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return ".webm" if b"webm" in head[:64] else ".mkv"
    return None


def _mpeg_audio_frame(head: bytes) -> bool:
    """An MPEG audio frame header: 11 sync bits, a real version and layer, a valid bitrate."""
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    version, layer, bitrate = (head[1] >> 3) & 3, (head[1] >> 1) & 3, head[2] >> 4
    return version != 1 and layer != 0 and bitrate not in (0, 15)


def sniff_type(path: Path) -> str | None:
    """The canonical suffix of the file's real format from its magic bytes (None if unknown)."""
    with open(path, "rb") as f:
        return sniff_bytes(f.read(_SNIFF_BYTES))


def av_format(path: Path) -> str | None:
    """The PyAV demuxer to force for this file, from its magic bytes (None: not a container we open)."""
    return _AV_FORMATS.get(sniff_type(path) or "")


def check_media(path: Path, rtype: str, limits: MediaLimits | None = None, *, max_megapixels: float = 40.0) -> None:
    """Raise ResourceError unless `path` is a readable, sane file of type `rtype` (image|audio|video)
    within `limits` (config.files). Without limits only the image size (max_megapixels) is bounded."""
    path = Path(path)
    name = path.name
    if rtype not in ("image", "audio", "video"):
        return
    if not path.is_file():
        raise ResourceError(f"{name} does not exist")
    if path.stat().st_size == 0:
        raise ResourceError(f"{name} is empty (0 bytes)")
    sniffed = sniff_type(path)
    if sniffed:
        actual = media_type("x" + sniffed)
        fits = actual == rtype or (rtype == "audio" and sniffed in _AUDIO_OK) or (
            rtype == "video" and sniffed in _VIDEO_OK)
        if not fits:
            raise ResourceError(f"{name} holds {_LABELS[sniffed]} data, not {rtype}")
        named = media_type(name)
        if named and named != actual and not (named == "audio" and sniffed in _AUDIO_OK) and not (
                named == "video" and sniffed in _VIDEO_OK):
            raise ResourceError(f"{name} is named like {named} but holds {_LABELS[sniffed]} data; rename it")
    limit = int((limits.max_image_megapixels if limits is not None else max_megapixels) * 1_000_000)
    if rtype == "image":
        _check_image(path, limit)
    elif rtype == "audio":
        _check_audio(path, sniffed, limits)
    else:
        _check_av(path, sniffed, "video", limit, limits)


def _pixels_ok(name: str, width: int, height: int, limit: int) -> None:
    if width <= 0 or height <= 0:
        raise ResourceError(f"{name} declares an empty picture ({width}x{height})")
    if width * height > limit:
        raise ResourceError(
            f"{name} declares {width}x{height} pixels ({width * height / 1e6:.0f} megapixels), more than "
            f"the {limit / 1e6:g} megapixels allowed; refusing it as a possible decompression bomb"
        )


def _check_image(path: Path, limit: int) -> None:
    name = path.name
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(path, formats=IMAGE_FORMATS) as im:  # reads the header only
                _pixels_ok(name, *im.size, limit)
                im.verify()
            with Image.open(path, formats=IMAGE_FORMATS) as im:
                _pixels_ok(name, *im.size, limit)
                im.load()
        except ResourceError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ResourceError(f"{name} declares too many pixels to open safely ({exc})") from None
        except UnidentifiedImageError:
            raise ResourceError(
                f"{name} is not an image Jarvis can read (PNG, JPEG, GIF, WEBP, BMP or TIFF expected)"
            ) from None
        except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, MemoryError) as exc:
            raise ResourceError(f"{name} is a damaged or truncated image ({exc})") from None


def _check_audio(path: Path, sniffed: str | None, limits: MediaLimits | None) -> None:
    name = path.name
    try:
        with sf.SoundFile(str(path)) as f:
            frames, rate, channels = f.frames, f.samplerate, f.channels
            if frames >= _UNKNOWN_LENGTH:
                raise ResourceError(f"{name} does not declare its length; save it again as WAV or FLAC")
            _audio_sane(name, frames, rate, channels)
            _audio_budget(name, frames / rate, rate, channels, limits)  # from the header: nothing decoded yet
            f.read(frames=min(frames, 4096), dtype="float32")
    except ResourceError:
        raise
    except (sf.SoundFileError, RuntimeError, TypeError, ValueError) as exc:
        if sniffed in _AUDIO_OK or sniffed == ".mp3":
            return _check_av(path, sniffed, "audio", 0, limits)  # containers libsndfile does not read
        raise ResourceError(f"{name} is not an audio file Jarvis can read ({exc})") from None


def _audio_sane(name: str, frames: int, rate: int, channels: int) -> None:
    if frames <= 0:
        raise ResourceError(f"{name} holds no audio samples")
    if not 1000 <= rate <= 768_000:
        raise ResourceError(f"{name} has an implausible sample rate ({rate} Hz)")
    if not 1 <= channels <= 64:
        raise ResourceError(f"{name} has an implausible number of channels ({channels})")


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{seconds:.1f} s"


def _audio_budget(name: str, seconds: float | None, rate: int, channels: int, limits: MediaLimits | None) -> None:
    """Refuse audio longer or wider (rate x channels) than the budgets; `seconds` None: not declared."""
    if limits is None:
        return
    if seconds is not None and seconds > limits.max_audio_seconds:
        raise ResourceError(
            f"{name} holds {_duration(seconds)} of audio ({rate} Hz, {channels} channel(s)), longer than the "
            f"{_duration(limits.max_audio_seconds)} allowed (files.max_audio_seconds); send a shorter clip")
    if rate * channels > limits.max_audio_rate_channels:
        raise ResourceError(
            f"{name} has {rate} Hz x {channels} channel(s) = {rate * channels} samples a second, more than the "
            f"{limits.max_audio_rate_channels} allowed (files.max_audio_rate_channels); convert it to a lower "
            "sample rate or fewer channels")


def _video_budget(name: str, stream: av.VideoStream, seconds: float | None, limits: MediaLimits | None) -> None:
    """Refuse video longer than the budget or holding more pixels in all (frames x size) than it allows."""
    if limits is None:
        return
    if seconds is not None and seconds > limits.max_video_seconds:
        raise ResourceError(f"{name} lasts {_duration(seconds)}, longer than the {_duration(limits.max_video_seconds)} "
                            "allowed (files.max_video_seconds); send a shorter video")
    rate = stream.average_rate or stream.guessed_rate
    frames = stream.frames or (round(seconds * float(rate)) if seconds is not None and rate else 0)
    width, height = stream.codec_context.width, stream.codec_context.height
    total = frames * width * height / 1e6
    if total > limits.max_video_total_megapixels:
        raise ResourceError(
            f"{name} holds {frames} frames of {width}x{height} ({total:.0f} megapixels in all), more than the "
            f"{limits.max_video_total_megapixels:g} allowed (files.max_video_total_megapixels); send a shorter "
            "or smaller video")


def _declared_seconds(container: av.container.InputContainer, stream: av.stream.Stream) -> float | None:
    """The stream's duration from the header (the container's when the stream has none), or None."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return container.duration / 1e6 if container.duration else None


def _check_av(path: Path, sniffed: str | None, kind: str, limit: int, limits: MediaLimits | None) -> None:
    """Open with PyAV (demuxer forced from the magic bytes), check the header against the budgets,
    then decode a first frame of `kind`."""
    import av

    name = path.name
    fmt = _AV_FORMATS.get(sniffed or "")
    if fmt is None:
        expected = "MP4, MOV, WEBM, MKV or AVI" if kind == "video" else "WAV, FLAC, MP3, OGG or M4A"
        raise ResourceError(f"{name} is not a {kind} file Jarvis can read ({expected} expected)")
    try:
        with av.open(str(path), format=fmt) as container:
            streams = container.streams.video if kind == "video" else container.streams.audio
            if not streams:
                raise ResourceError(f"{name} has no {kind} stream")
            stream = streams[0]
            seconds = _declared_seconds(container, stream)
            if isinstance(stream, av.VideoStream):
                _pixels_ok(name, stream.codec_context.width, stream.codec_context.height, limit)
                _video_budget(name, stream, seconds, limits)
            elif isinstance(stream, av.AudioStream):
                codec = stream.codec_context
                _audio_budget(name, seconds, codec.sample_rate, codec.channels, limits)
            for count, packet in enumerate(container.demux(stream)):
                frames = packet.decode()
                if frames:
                    frame = frames[0]
                    if isinstance(frame, av.AudioFrame):
                        _audio_sane(name, frame.samples, frame.sample_rate, len(frame.layout.channels))
                    return
                if count >= _MAX_PACKETS:
                    break
            raise ResourceError(f"{name}: no {kind} frame could be decoded (damaged or truncated?)")
    except ResourceError:
        raise
    except (av.FFmpegError, OSError, ValueError, IndexError) as exc:
        raise ResourceError(f"{name} is not a playable {kind} file ({exc})") from None
