"""How far a model's first download has come, while its loader fetches it from the Hub.

Loaders (transformers' and diffusers' `from_pretrained`) download into the Hugging Face cache on
their own, with no progress callback. So `DownloadMeter` watches the cache instead: the bytes in
the repo's blobs folder (partial files included) against what the repo's weights and files weigh
(one model-info call to the Hub, made only once bytes arrive), and reports a line every few seconds
(bytes, speed, time left) to the caller's `report`, the same function its "loading..." and
"loaded..." lines go to. Every line it reports is progress: each outdates the one before.

Its time left waits for the weights: until more bytes have arrived than the repo's other files weigh
(configs, tokenizer: small files that come first, often with a pause before the weights), a speed
measured on them says nothing of the weights', so the line shows bytes and speed but no time left.

Only a load that will download is watched (`metered`): a model whose weights are in the cache, or a
local folder, gets no meter and no polling thread. Both the task models' loads
(jarvis.execution.local) and the embedded LLM's use it.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from jarvis.catalog.facts import WEIGHT_FORMATS, weight_files

log = logging.getLogger(__name__)

EVERY = 2.0      # seconds between two progress lines
TICK = 0.25      # seconds between two looks at the cache


def _blobs(model_id: str) -> Path | None:
    """The cache folder a Hub model's files land in; None for a local folder."""
    if os.path.isdir(model_id) or model_id.count("/") != 1:
        return None
    from huggingface_hub import constants
    return Path(constants.HF_HUB_CACHE) / ("models--" + model_id.replace("/", "--")) / "blobs"


def _bytes_in(folder: Path) -> int:
    try:
        return sum(entry.stat().st_size for entry in os.scandir(folder) if entry.is_file())
    except OSError:
        return 0


@dataclass(frozen=True)
class RepoSize:
    """What a loader downloads of a Hub repo, in bytes: all of it, and the part that is not weights."""
    total: int
    other: int        # configs, tokenizer and every other file that is not a weight


def repo_size(model_id: str) -> RepoSize | None:
    """What a loader downloads of a Hub repo: its weights in the format the loader reads, and every
    file that is not a weight (configs, tokenizer); None when the Hub does not say."""
    from huggingface_hub import HfApi
    try:
        info = HfApi().model_info(model_id, files_metadata=True)
    except Exception as exc:    # no network, a gated repo: the lines then show bytes without a total
        log.debug("no file sizes for %s: %s", model_id, exc)
        return None
    sizes = {s.rfilename: s.size for s in info.siblings or [] if s.size is not None}
    if not sizes:
        return None
    _, weights = weight_files(sizes)
    suffixes = tuple(suffix for _, group in WEIGHT_FORMATS for suffix in group)
    other = sum(size for name, size in sizes.items() if name not in weights and not name.endswith(suffixes))
    return RepoSize(other + sum(sizes[name] for name in weights), other)


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit in ("B", "KB") else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def _duration(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    if seconds < 60:
        return f"{seconds} s"
    return f"{seconds // 60} min {seconds % 60:02d} s"


def transfer_line(label: str, done: int, total: int | None, rate: float, *, timed: bool = True) -> str:
    """'LABEL: 3.1 MB of 12.0 MB (25%), 2.0 MB/s, about 4 s left', or 'LABEL: 3.1 MB so far, 2.0 MB/s'
    without a total; the time left only when `timed` and the speed is known."""
    speed = f"{_size(rate)}/s" if rate > 0 else "waiting" if done else "starting"
    if not total:
        return f"{label}: {_size(done)} so far, {speed}"
    done = min(done, total)
    left = f", about {_duration((total - done) / rate)} left" if timed and rate > 0 and done < total else ""
    return f"{label}: {_size(done)} of {_size(total)} ({100 * done // total}%), {speed}{left}"


def progress_line(model_id: str, done: int, size: RepoSize | None, rate: float) -> str:
    """'downloading ORG/NAME: 312.0 MB of 988.0 MB (32%), 4.1 MB/s, about 2 min 45 s left'; the time
    left only once the weights arrive (more bytes done than the repo's other files weigh)."""
    return transfer_line(f"downloading {model_id}", done, size.total if size else None, rate,
                         timed=size is not None and size.other < done)


def metered(model_id: str, cached: int | None, report: Callable[[str], None]) -> AbstractContextManager[object]:
    """What to hold a load in: a DownloadMeter when the load will download (`cached`, what
    jarvis.execution.readiness.cached_bytes found of its weights, is None or 0), else nothing."""
    return nullcontext() if cached else DownloadMeter(model_id, report)


class DownloadMeter:
    """A context manager around a load: while it lasts, reports the download's progress every
    `every` seconds through `report`, once bytes arrive in the cache."""

    def __init__(self, model_id: str, report: Callable[[str], None], every: float = EVERY,
                 size: Callable[[str], RepoSize | None] = repo_size):
        self.model_id = model_id
        self.report = report
        self.every = every
        self._size = size
        self._folder = _blobs(model_id)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lines: list[str] = []       # what it reported, for the caller's record

    def __enter__(self) -> DownloadMeter:
        if self._folder is not None:
            self._thread = threading.Thread(target=self._watch, name="jarvis-download-meter", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _watch(self) -> None:
        assert self._folder is not None
        start = _bytes_in(self._folder)
        size: RepoSize | None = None
        asked = False
        began = last = time.monotonic()
        window: list[tuple[float, int]] = []     # (time, bytes) over the last few seconds: the speed
        while not self._stop.wait(TICK):
            now, done = time.monotonic(), _bytes_in(self._folder) - start
            if done <= 0:
                began = now
                continue
            if not asked:
                asked = True
                size = self._size(self.model_id)
            window = [(t, b) for t, b in window if now - t <= 2 * self.every] + [(now, done)]
            if now - last < self.every and len(self.lines):
                continue
            if now - began < self.every and not self.lines:
                continue
            last = now
            (t0, b0), (t1, b1) = window[0], window[-1]
            rate = (b1 - b0) / (t1 - t0) if t1 > t0 else 0.0
            line = progress_line(self.model_id, done, size, rate)
            self.lines.append(line)
            try:
                self.report(line)
            except Exception:   # a reporter that fails must not stop the load it reports on
                log.exception("download progress report failed")
