"""Audio files in and out for the audio runners: any readable file to mono float32 at a model's
rate, and model output to 16-bit PCM WAV. soundfile (libsndfile) reads WAV/FLAC/OGG/MP3; PyAV, when
installed, is the fallback for containers libsndfile cannot open (m4a, opus, webm)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jarvis.errors import TaskError

DEFAULT_MAX_SECONDS = 3600.0  # longer inputs are cut (memory: an hour of 16 kHz mono is 230 MB)


@dataclass
class Clip:
    """Mono float32 samples at `rate`; `truncated` when only the first max_seconds were kept."""
    samples: np.ndarray
    rate: int
    truncated: bool = False

    @property
    def seconds(self) -> float:
        return len(self.samples) / float(self.rate) if self.rate else 0.0


def _to_mono(data: np.ndarray) -> np.ndarray:
    if data.ndim == 2:
        data = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    return np.ascontiguousarray(data, dtype=np.float32)


def _read_soundfile(path: Path, max_seconds: float) -> tuple[np.ndarray, int, bool]:
    import soundfile as sf
    with sf.SoundFile(str(path)) as handle:
        rate = int(handle.samplerate)
        limit = int(max_seconds * rate)
        data = handle.read(frames=limit + 1, dtype="float32", always_2d=True)
    return _to_mono(data[:limit]), rate, len(data) > limit


def _read_pyav(path: Path, max_seconds: float) -> tuple[np.ndarray, int, bool]:
    import av  # optional fallback; ImportError is handled by the caller
    chunks: list[np.ndarray] = []
    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise ValueError("the file has no audio stream")
        stream = container.streams.audio[0]
        rate = int(stream.rate or stream.codec_context.sample_rate or 0)
        if rate <= 0:
            raise ValueError("the audio stream has no sample rate")
        resampler = av.AudioResampler(format="fltp", layout="mono", rate=rate)
        limit, got = int(max_seconds * rate), 0
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                block = out.to_ndarray().reshape(-1).astype(np.float32)
                chunks.append(block)
                got += len(block)
            if got > limit:
                break
    data = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    return np.ascontiguousarray(data[:limit]), rate, got > limit


def read_audio(path: str | Path, target_rate: int | None = None,
               max_seconds: float = DEFAULT_MAX_SECONDS) -> Clip:
    """Read an audio file as mono float32, resampled (soxr) to target_rate when given.

    Raises TaskError when the file is missing, empty, unreadable, truncated or holds no samples.
    """
    path = Path(path)
    name = path.name
    if not path.is_file():
        raise TaskError(f"audio file {name!r} not found; attach it again")
    if path.stat().st_size == 0:
        raise TaskError(f"audio file {name!r} is empty (0 bytes); upload a WAV, FLAC, OGG or MP3 file with sound in it")
    try:
        samples, rate, truncated = _read_soundfile(path, max_seconds)
    except Exception as sf_exc:
        try:
            samples, rate, truncated = _read_pyav(path, max_seconds)
        except Exception:
            reason = str(sf_exc).splitlines()[0][:200] if str(sf_exc) else type(sf_exc).__name__
            raise TaskError(
                f"could not read audio file {name!r} ({reason}): it is corrupt, truncated or in an "
                "unsupported format; convert it to WAV or FLAC and try again") from sf_exc
    if samples.size == 0:
        raise TaskError(f"audio file {name!r} contains no samples; record or upload a longer clip")
    if not np.all(np.isfinite(samples)):
        samples = np.nan_to_num(samples, nan=0.0, posinf=0.0, neginf=0.0)
    if target_rate and int(target_rate) != rate:
        samples = resample(samples, rate, int(target_rate))
        rate = int(target_rate)
    return Clip(samples, rate, truncated)


def resample(samples: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Mono float32 resampled with soxr (high quality)."""
    if rate_in == rate_out or samples.size == 0:
        return np.asarray(samples, dtype=np.float32)
    import soxr
    out = soxr.resample(np.asarray(samples, dtype=np.float32), rate_in, rate_out, quality="HQ")
    return np.ascontiguousarray(out, dtype=np.float32)


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
