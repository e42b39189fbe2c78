"""Audio files in and out for the audio runners: any readable file to mono float32 at a model's
rate, and model output to 16-bit PCM WAV. soundfile (libsndfile) reads WAV/FLAC/OGG/MP3; PyAV, when
installed, is the fallback for containers libsndfile cannot open (m4a, opus, webm).

Reading is bounded: the file is decoded in blocks, each block mixed to mono and resampled as a
stream, and reading stops at max_seconds, so memory holds the output and one block, never the
whole file at its own rate and channel count (a tiny FLAC can hold an hour of 96 kHz audio).
A `stop` callback runs between blocks, so a task that timed out stops reading.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jarvis.errors import TaskError
from jarvis.files.content_checks import av_format

DEFAULT_MAX_SECONDS = 3600.0  # longer inputs are cut (memory: an hour of 16 kHz mono is 230 MB)
BLOCK_FRAMES = 1 << 16        # frames decoded at a time (0.7 s at 96 kHz)


@dataclass
class Clip:
    """Mono float32 samples at `rate`; `truncated` when only the first max_seconds were kept."""
    samples: np.ndarray
    rate: int
    truncated: bool = False

    @property
    def seconds(self) -> float:
        return len(self.samples) / float(self.rate) if self.rate else 0.0


class _Collector:
    """Mono blocks at the file's rate in; float32 at the output rate out, resampled as a stream (soxr)
    into one buffer sized from the declared length, keeping at most `limit` input frames."""

    def __init__(self, rate_in: int, rate_out: int, limit: int, declared: int | None):
        import soxr
        self.ratio = rate_out / rate_in
        self.stream = None if rate_in == rate_out else soxr.ResampleStream(rate_in, rate_out, 1, dtype="float32",
                                                                            quality="HQ")
        self.limit, self.taken, self.truncated = limit, 0, False
        expected = min(limit, declared) if declared else min(limit, rate_in * 60)
        self.buffer = np.empty(int(expected * self.ratio) + 64, np.float32)
        self.size = 0

    def add(self, mono: np.ndarray) -> bool:
        """Take one block; False once the limit is reached (the rest of the file need not be read)."""
        room = self.limit - self.taken
        if len(mono) > room:
            mono, self.truncated = mono[:room], True
        self.taken += len(mono)
        if len(mono):
            self._keep(self.stream.resample_chunk(mono) if self.stream is not None else mono)
        return not self.truncated

    def _keep(self, out: np.ndarray) -> None:
        end = self.size + len(out)
        if end > len(self.buffer):  # the header under-declared the length: grow
            grown = np.empty(max(end, 2 * len(self.buffer)), np.float32)
            grown[:self.size] = self.buffer[:self.size]
            self.buffer = grown
        self.buffer[self.size:end] = out
        self.size = end

    def samples(self) -> np.ndarray:
        if self.stream is not None:
            self._keep(self.stream.resample_chunk(np.zeros(0, np.float32), last=True))
        return self.buffer[:self.size]


def _mono(block: np.ndarray) -> np.ndarray:
    if block.ndim == 2:
        block = block.mean(axis=1) if block.shape[1] > 1 else block[:, 0]
    return np.ascontiguousarray(block, dtype=np.float32)


def _soundfile_blocks(path: Path) -> tuple[int, int | None, Iterator[np.ndarray]]:
    """(rate, declared frames, mono blocks) of a file libsndfile reads."""
    import soundfile as sf
    handle = sf.SoundFile(str(path))

    def blocks() -> Iterator[np.ndarray]:
        with handle:
            while True:
                block = handle.read(frames=BLOCK_FRAMES, dtype="float32", always_2d=True)
                if not len(block):
                    return
                yield _mono(block)
    frames = int(handle.frames)
    return int(handle.samplerate), frames if frames < 2 ** 62 else None, blocks()  # ~2**63: not declared


def _pyav_blocks(path: Path) -> tuple[int, int | None, Iterator[np.ndarray]]:
    """(rate, declared frames or None, mono blocks) through PyAV, the demuxer forced from the magic bytes."""
    import av  # optional fallback; ImportError is handled by the caller
    fmt = av_format(path)
    if fmt is None:
        raise ValueError("not a container Jarvis reads")
    container = av.open(str(path), format=fmt)
    if not container.streams.audio:
        container.close()
        raise ValueError("the file has no audio stream")
    stream = container.streams.audio[0]
    rate = int(stream.rate or stream.codec_context.sample_rate or 0)
    if rate <= 0:
        container.close()
        raise ValueError("the audio stream has no sample rate")
    declared = int(stream.duration * stream.time_base * rate) if stream.duration and stream.time_base else None

    def blocks() -> Iterator[np.ndarray]:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        with container:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    yield out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
            for out in resampler.resample(None):
                yield out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
    return rate, declared, blocks()


def _decode(opened: tuple[int, int | None, Iterator[np.ndarray]], target_rate: int | None, max_seconds: float,
            stop: Callable[[], None]) -> tuple[np.ndarray, int, bool]:
    rate, declared, blocks = opened
    collector = _Collector(rate, int(target_rate or rate), int(max_seconds * rate), declared)
    try:
        for block in blocks:
            stop()
            if not np.isfinite(block).all():  # before resampling, which would spread a NaN around it
                block = np.nan_to_num(block, nan=0.0, posinf=0.0, neginf=0.0)
            if not collector.add(block):
                break
    finally:
        close: Any = getattr(blocks, "close", None)
        if close is not None:
            close()  # the generator's `with` closes the file now, not at garbage collection
    return collector.samples(), int(target_rate or rate), collector.truncated


def read_audio(path: str | Path, target_rate: int | None = None, max_seconds: float = DEFAULT_MAX_SECONDS,
               stop: Callable[[], None] = lambda: None) -> Clip:
    """Read an audio file as mono float32, resampled (soxr) to target_rate when given, at most
    max_seconds of it; `stop` is called between blocks and raises to end the reading.

    Raises TaskError when the file is missing, empty, unreadable, truncated or holds no samples.
    """
    path = Path(path)
    name = path.name
    if not path.is_file():
        raise TaskError(f"audio file {name!r} not found; attach it again")
    if path.stat().st_size == 0:
        raise TaskError(f"audio file {name!r} is empty (0 bytes); upload a WAV, FLAC, OGG or MP3 file with sound in it")
    try:
        samples, rate, truncated = _decode(_soundfile_blocks(path), target_rate, max_seconds, stop)
    except TaskError:
        raise
    except Exception as sf_exc:
        try:
            samples, rate, truncated = _decode(_pyav_blocks(path), target_rate, max_seconds, stop)
        except TaskError:
            raise
        except Exception:
            reason = str(sf_exc).splitlines()[0][:200] if str(sf_exc) else type(sf_exc).__name__
            raise TaskError(
                f"could not read audio file {name!r} ({reason}): it is corrupt, truncated or in an "
                "unsupported format; convert it to WAV or FLAC and try again") from sf_exc
    if samples.size == 0:
        raise TaskError(f"audio file {name!r} contains no samples; record or upload a longer clip")
    return Clip(samples, rate, truncated)


def write_wav(path: str | Path, samples, rate: int) -> Path:
    """Write mono (or channels-last) audio as 16-bit PCM WAV; loud output is scaled down, not clipped."""
    import soundfile as sf
    data = np.asarray(samples, dtype=np.float32)
    data = np.squeeze(data)
    if data.ndim > 2 or data.size == 0:
        raise TaskError("the model produced no audio; try a longer or different input")
    data = np.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0)
    peak = float(np.max(np.abs(data))) if data.size else 0.0
    if peak > 1.0:
        data = data / peak
    path = Path(path)
    sf.write(str(path), data, int(rate), subtype="PCM_16", format="WAV")
    return path


def chunks(samples: np.ndarray, rate: int, seconds: float, min_seconds: float = 0.1) -> list[np.ndarray]:
    """Consecutive pieces of at most `seconds`; a tail shorter than min_seconds is dropped (a few
    milliseconds carry nothing a model can use) unless it is the only piece."""
    size = max(1, int(seconds * rate))
    pieces = [samples[i:i + size] for i in range(0, len(samples), size)] or [samples]
    if len(pieces) > 1 and len(pieces[-1]) < int(min_seconds * rate):
        pieces.pop()
    return pieces
