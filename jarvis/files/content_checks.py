"""Check that a file really is the image, audio or video it claims to be, before a model sees it.

Uploads and fetched files are untrusted: this refuses empty, truncated, mislabelled and
decompression-bomb files with a message naming the file, instead of crashing deep in a runner.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import soundfile as sf
from PIL import Image, UnidentifiedImageError

from jarvis.errors import ResourceError
from jarvis.files.media_types import media_type

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
_PIL_FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF")
_MAX_PACKETS = 300
_SNIFF_BYTES = 512
_DIB_SIZES = (12, 40, 52, 56, 64, 108, 124)  # BMP info-header sizes


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


def check_media(path: Path, rtype: str, *, max_megapixels: float = 40.0) -> None:
    """Raise ResourceError unless `path` is a readable, sane file of type `rtype` (image|audio|video)."""
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
    limit = int(max_megapixels * 1_000_000)
    if rtype == "image":
        _check_image(path, limit)
    elif rtype == "audio":
        _check_audio(path, sniffed)
    else:
        _check_av(path, sniffed, "video", limit)


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
            with Image.open(path, formats=_PIL_FORMATS) as im:  # reads the header only
                _pixels_ok(name, *im.size, limit)
                im.verify()
            with Image.open(path, formats=_PIL_FORMATS) as im:
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


def _check_audio(path: Path, sniffed: str | None) -> None:
    name = path.name
    try:
        with sf.SoundFile(str(path)) as f:
            frames, rate, channels = f.frames, f.samplerate, f.channels
            f.read(frames=min(frames, 4096) if frames > 0 else 4096, dtype="float32")
    except (sf.SoundFileError, RuntimeError, TypeError, ValueError) as exc:
        if sniffed in _AUDIO_OK or sniffed == ".mp3":
            return _check_av(path, sniffed, "audio", 0)  # containers libsndfile does not read
        raise ResourceError(f"{name} is not an audio file Jarvis can read ({exc})") from None
    _audio_sane(name, frames, rate, channels)


def _audio_sane(name: str, frames: int, rate: int, channels: int) -> None:
    if frames <= 0:
        raise ResourceError(f"{name} holds no audio samples")
    if not 1000 <= rate <= 768_000:
        raise ResourceError(f"{name} has an implausible sample rate ({rate} Hz)")
    if not 1 <= channels <= 64:
        raise ResourceError(f"{name} has an implausible number of channels ({channels})")


def _check_av(path: Path, sniffed: str | None, kind: str, limit: int) -> None:
    """Open with PyAV (demuxer forced from the magic bytes) and decode a first frame of `kind`."""
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
            codec = stream.codec_context
            if isinstance(codec, av.VideoCodecContext):
                _pixels_ok(name, codec.width, codec.height, limit)
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
