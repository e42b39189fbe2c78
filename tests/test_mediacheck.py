"""check_media and sniff_type on generated good and bad files (images, audio, video, bombs)."""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from jarvis.errors import ResourceError
from jarvis.files.content_checks import check_media, sniff_type


def _image(path: Path, fmt: str | None = None, size=(32, 24)) -> Path:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path, fmt)
    return path


def _audio(path: Path, fmt: str, frames: int = 1600, rate: int = 16000, subtype: str | None = None) -> Path:
    data = (np.sin(np.arange(frames) / 8) * 0.3).astype(np.float32)
    sf.write(path, data, rate, format=fmt, subtype=subtype)
    return path


def _video(path: Path, codec: str = "libx264", fmt: str | None = None, frames: int = 3) -> Path:
    import av

    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=8)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for i in range(frames):
            img = np.full((32, 32, 3), 40 * i, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _bomb_png(path: Path, width: int, height: int) -> Path:
    """A tiny, well-formed PNG whose header declares width x height pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024, 9)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat)
                     + _png_chunk(b"IEND", b""))
    return path


# -- sniffing -----------------------------------------------------------------
@pytest.mark.parametrize("name, fmt, expected", [
    ("a.png", "PNG", ".png"), ("a.jpg", "JPEG", ".jpg"), ("a.gif", "GIF", ".gif"),
    ("a.webp", "WEBP", ".webp"), ("a.bmp", "BMP", ".bmp"), ("a.tif", "TIFF", ".tiff"),
])
def test_sniff_images(tmp_path, name, fmt, expected):
    assert sniff_type(_image(tmp_path / name, fmt)) == expected


@pytest.mark.parametrize("name, fmt, expected", [
    ("a.wav", "WAV", ".wav"), ("a.flac", "FLAC", ".flac"), ("a.ogg", "OGG", ".ogg"), ("a.mp3", "MP3", ".mp3"),
])
def test_sniff_audio(tmp_path, name, fmt, expected):
    assert sniff_type(_audio(tmp_path / name, fmt)) == expected


@pytest.mark.parametrize("name, codec, fmt, expected", [
    ("a.mp4", "libx264", "mp4", ".mp4"), ("a.mov", "libx264", "mov", ".mov"),
    ("a.webm", "libvpx", "webm", ".webm"), ("a.mkv", "libx264", "matroska", ".mkv"),
])
def test_sniff_video(tmp_path, name, codec, fmt, expected):
    assert sniff_type(_video(tmp_path / name, codec, fmt)) == expected


def test_sniff_unknown(tmp_path):
    (tmp_path / "t.txt").write_text("hello there, not media")
    (tmp_path / "e.bin").write_bytes(b"")
    assert sniff_type(tmp_path / "t.txt") is None and sniff_type(tmp_path / "e.bin") is None


# -- good files pass ----------------------------------------------------------
@pytest.mark.parametrize("name, fmt", [("ok.png", "PNG"), ("ok.jpg", "JPEG"), ("ok.gif", "GIF"),
                                       ("ok.webp", "WEBP"), ("ok.bmp", "BMP"), ("ok.tiff", "TIFF")])
def test_good_images(tmp_path, name, fmt):
    check_media(_image(tmp_path / name, fmt), "image")


@pytest.mark.parametrize("name, fmt", [("ok.wav", "WAV"), ("ok.flac", "FLAC"), ("ok.ogg", "OGG"), ("ok.mp3", "MP3")])
def test_good_audio(tmp_path, name, fmt):
    check_media(_audio(tmp_path / name, fmt), "audio")


def test_good_audio_in_mp4_container_via_pyav(tmp_path):
    import av

    path = tmp_path / "voice.m4a"
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=16000)
        samples = (np.sin(np.arange(16000) / 8) * 0.3).astype(np.float32).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = 16000
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    check_media(path, "audio")
    with pytest.raises(ResourceError, match="voice.m4a has no video stream"):
        check_media(path, "video")


@pytest.mark.parametrize("name, codec, fmt", [("ok.mp4", "libx264", "mp4"), ("ok.webm", "libvpx", "webm"),
                                              ("ok.mkv", "mpeg4", "matroska")])
def test_good_video(tmp_path, name, codec, fmt):
    check_media(_video(tmp_path / name, codec, fmt), "video")


def test_text_type_is_not_checked(tmp_path):
    (tmp_path / "notes.txt").write_text("anything")
    check_media(tmp_path / "notes.txt", "text")


# -- bad files are refused, naming the file --------------------------------------
def test_decompression_bomb_png(tmp_path):
    bomb = _bomb_png(tmp_path / "bomb.png", 30000, 30000)
    assert bomb.stat().st_size < 200
    with pytest.raises(ResourceError, match="bomb.png declares"):
        check_media(bomb, "image")


def test_local_pixel_limit_below_pil_global(tmp_path):
    big = _bomb_png(tmp_path / "big.png", 8000, 6000)  # 48 MP: under PIL's global warning level
    with pytest.raises(ResourceError, match="big.png declares 8000x6000 pixels \\(48 megapixels\\)"):
        check_media(big, "image")
    small = _image(tmp_path / "small.png", "PNG", size=(40, 30))
    with pytest.raises(ResourceError, match="more than the 0.001 megapixels"):
        check_media(small, "image", max_megapixels=0.001)


def test_empty_file(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ResourceError, match="empty.png is empty"):
        check_media(tmp_path / "empty.png", "image")


def test_missing_file(tmp_path):
    with pytest.raises(ResourceError, match="gone.png does not exist"):
        check_media(tmp_path / "gone.png", "image")


def test_truncated_png(tmp_path):
    good = _image(tmp_path / "full.png", "PNG", size=(64, 64)).read_bytes()
    (tmp_path / "cut.png").write_bytes(good[: len(good) // 2])
    with pytest.raises(ResourceError, match="cut.png is a damaged or truncated image"):
        check_media(tmp_path / "cut.png", "image")


def test_truncated_jpeg(tmp_path):
    good = _image(tmp_path / "full.jpg", "JPEG", size=(64, 64)).read_bytes()
    (tmp_path / "cut.jpg").write_bytes(good[: len(good) // 2])
    with pytest.raises(ResourceError, match="cut.jpg is a damaged or truncated image"):
        check_media(tmp_path / "cut.jpg", "image")


def test_text_named_png(tmp_path):
    (tmp_path / "notes.png").write_text("just some text pretending to be a picture")
    with pytest.raises(ResourceError, match="notes.png is not an image Jarvis can read"):
        check_media(tmp_path / "notes.png", "image")


def test_png_named_wav(tmp_path):
    path = _image(tmp_path / "song.wav", "PNG")
    with pytest.raises(ResourceError, match="song.wav holds PNG image data, not audio"):
        check_media(path, "audio")
    with pytest.raises(ResourceError, match="song.wav is named like audio but holds PNG image data"):
        check_media(path, "image")


def test_wav_given_as_image(tmp_path):
    with pytest.raises(ResourceError, match="a.wav holds WAV audio data, not image"):
        check_media(_audio(tmp_path / "a.wav", "WAV"), "image")


def test_eps_is_not_opened(tmp_path):
    (tmp_path / "doc.png").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    with pytest.raises(ResourceError, match="doc.png is not an image"):
        check_media(tmp_path / "doc.png", "image")


def test_audio_without_samples(tmp_path):
    path = tmp_path / "silent.wav"
    sf.write(path, np.zeros(0, dtype=np.float32), 16000, format="WAV")
    with pytest.raises(ResourceError, match="silent.wav holds no audio samples"):
        check_media(path, "audio")


def test_audio_with_absurd_sample_rate(tmp_path):
    path = _audio(tmp_path / "odd.wav", "WAV", rate=16000)
    data = bytearray(path.read_bytes())
    data[24:28] = struct.pack("<I", 50)  # rewrite the fmt chunk's sample rate to 50 Hz
    path.write_bytes(bytes(data))
    with pytest.raises(ResourceError, match="odd.wav has an implausible sample rate \\(50 Hz\\)"):
        check_media(path, "audio")


def test_truncated_wav_header(tmp_path):
    good = _audio(tmp_path / "full.wav", "WAV").read_bytes()
    (tmp_path / "cut.wav").write_bytes(good[:20])
    with pytest.raises(ResourceError, match="cut.wav is not an audio file Jarvis can read"):
        check_media(tmp_path / "cut.wav", "audio")


def test_text_named_mp4(tmp_path):
    (tmp_path / "clip.mp4").write_text("not a video")
    with pytest.raises(ResourceError, match="clip.mp4 is not a video file Jarvis can read"):
        check_media(tmp_path / "clip.mp4", "video")


def test_truncated_mp4(tmp_path):
    good = _video(tmp_path / "full.mp4", "libx264", "mp4", frames=4).read_bytes()
    (tmp_path / "cut.mp4").write_bytes(good[:48])
    with pytest.raises(ResourceError, match="cut.mp4"):
        check_media(tmp_path / "cut.mp4", "video")


def test_video_pixel_limit(tmp_path):
    path = _video(tmp_path / "v.mp4", "libx264", "mp4")
    with pytest.raises(ResourceError, match="v.mp4 declares 32x32 pixels"):
        check_media(path, "video", max_megapixels=0.0001)


def test_bomb_refused_even_with_pil_global_limit_disabled(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # someone else switched PIL's guard off
    with pytest.raises(ResourceError, match="bomb.png declares 30000x30000 pixels"):
        check_media(_bomb_png(tmp_path / "bomb.png", 30000, 30000), "image")
