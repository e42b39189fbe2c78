"""Decompression bombs and tasks that must stop: tiny files declaring hours of 96 kHz audio, a
hundred thousand video frames or a 144-megapixel picture are refused from their headers, fast and
with little memory (peak RSS measured in a fresh subprocess); reading audio holds only the output;
a task past its time limit, or cancelled, stops at its next block or step instead of running on.
"""
from __future__ import annotations

import json
import struct
import subprocess
import sys
import threading
import time
import zlib
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from jarvis.config import FilesConfig, load_config
from jarvis.errors import ConfigError, ResourceError, TaskError
from jarvis.execution.dispatch import Dispatcher
from jarvis.execution.local import LocalExecutor
from jarvis.files.content_checks import check_media
from jarvis.files.store import ResourceStore
from jarvis.pipeline.plan_reading import parse_plan
from jarvis.pipeline.scheduler import Scheduler
from jarvis.pipeline.selection import Choice
from jarvis.runners.base import Device, RunContext, TaskInputs
from jarvis.runners.media.video_files import read_first_frame, video_info
from jarvis.runners.options import RunOptions
from tests.helpers import plan_json

pytestmark = pytest.mark.timeout(300)

CTC = "facebook/wav2vec2-base-960h"
MEMORY_BOUND_MB = 200


# -- bombs, made for real ----------------------------------------------------------------------
def _silent_flac(path: Path, seconds: int, rate: int, channels: int = 1) -> Path:
    """A FLAC of silence, written 10 s at a time: an hour at 96 kHz is about 1.1 MB on disk."""
    block = np.zeros((rate * 10, channels), np.int16)
    with sf.SoundFile(str(path), "w", rate, channels, subtype="PCM_16", format="FLAC") as out:
        for _ in range(seconds // 10):
            out.write(block)
    return path


def _long_video(path: Path, frames: int, width: int = 1280, height: int = 720) -> Path:
    """An H.264 MP4 of `frames` frames at 30 fps: one key frame, then the same tiny 'nothing moved'
    P-frame packet muxed again and again (100,000 frames of 720p fit in 3 MB)."""
    import av

    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"bf": "0", "g": "1000000", "keyint_min": "1000000", "sc_threshold": "0",
                          "preset": "ultrafast"}
        picture = np.full((height, width, 3), 90, np.uint8)
        packets = []
        for pts in range(2):
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts = pts
            packets += list(stream.encode(frame))
        packets += list(stream.encode())
        out.mux(packets[0])
        still = bytes(packets[-1])
        for pts in range(1, frames):
            packet = av.Packet(still)
            packet.stream, packet.time_base = stream, Fraction(1, 30)
            packet.pts = packet.dts = pts
            packet.duration = 1
            out.mux(packet)
    return path


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _huge_png(path: Path, width: int, height: int) -> Path:
    """A complete, valid black RGB PNG of width x height: 12000 x 12000 is 432 MB decoded, 2 MB on disk."""
    packer = zlib.compressobj(1)
    row = bytes(1 + 3 * width)
    data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", data)
                     + _png_chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def bombs(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bombs")
    return {"audio": _silent_flac(folder / "hour96k.flac", 3600, 96000),
            "video": _long_video(folder / "frames.mp4", 100_000),
            "image": _huge_png(folder / "huge.png", 12000, 12000)}


def _measured(code: str) -> dict:
    """Run `code` in a fresh interpreter: {"outcome", "seconds", "growth_mb"} (peak RSS, the process's
    VmHWM, over the RSS after imports; getrusage's maxrss would start from pytest's own RSS, which
    survives fork and exec). `code` sets `outcome`; an exception becomes 'refused: <message>'."""
    script = f"""
import json, re, time, psutil
from jarvis.config import FilesConfig
from jarvis.files.content_checks import check_media
from jarvis.runners.media.audio_files import read_audio
from jarvis.runners.media.images import load_rgb
import av, soxr  # noqa: F401  (loaded before the baseline, as they are in a running app)
base = psutil.Process().memory_info().rss
start = time.perf_counter()
try:
{chr(10).join('    ' + line for line in code.strip().splitlines())}
except Exception as exc:
    outcome = "refused: " + str(exc)
seconds = time.perf_counter() - start
with open("/proc/self/status") as status:
    peak = int(re.search(r"VmHWM:\\s+(\\d+) kB", status.read()).group(1)) * 1024
print(json.dumps({{"outcome": outcome, "seconds": seconds, "growth_mb": (peak - base) / 2**20}}))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- refused from the header, before decoding ------------------------------------------------------
def test_an_hour_of_96_khz_audio_in_a_tiny_flac_is_refused_fast_with_little_memory(bombs):
    assert bombs["audio"].stat().st_size < 2 * 2**20
    result = _measured(f"check_media({str(bombs['audio'])!r}, 'audio', FilesConfig())\noutcome = 'accepted'")
    assert result["outcome"].startswith("refused: hour96k.flac holds 60 min 0 s of audio (96000 Hz, 1 channel(s))")
    assert "30 min 0 s allowed (files.max_audio_seconds)" in result["outcome"]
    assert result["seconds"] < 1.0 and result["growth_mb"] < MEMORY_BOUND_MB, result


def test_audio_wider_than_the_rate_times_channels_budget_is_refused(tmp_path):
    wide = tmp_path / "wide.wav"
    sf.write(str(wide), np.zeros((19200, 4), np.float32), 192000)   # 0.1 s, 192 kHz x 4 channels
    with pytest.raises(ResourceError, match=r"wide.wav has 192000 Hz x 4 channel\(s\) = 768000 samples a second, "
                                            r"more than the 384000 allowed \(files.max_audio_rate_channels\)"):
        check_media(wide, "audio", FilesConfig())
    check_media(wide, "audio", FilesConfig(max_audio_rate_channels=768000))


def test_a_hundred_thousand_frames_are_counted_without_decoding_and_refused_from_the_header(bombs):
    video = bombs["video"]
    assert video.stat().st_size < 4 * 2**20
    start = time.perf_counter()
    info = video_info(video)   # decoding every frame took 13 s here; the packets are counted instead
    assert info["frames"] == 100_000 and (info["width"], info["height"]) == (1280, 720)
    assert read_first_frame(video).size == (1280, 720)
    assert time.perf_counter() - start < 3.0
    start = time.perf_counter()
    with pytest.raises(ResourceError, match=r"frames.mp4 lasts 55 min 33 s, longer than the 10 min 0 s allowed "
                                            r"\(files.max_video_seconds\)"):
        check_media(video, "video", FilesConfig())
    with pytest.raises(ResourceError, match=r"holds 100000 frames of 1280x720 \(92160 megapixels in all\), more than "
                                            r"the 20000 allowed \(files.max_video_total_megapixels\)"):
        check_media(video, "video", FilesConfig(max_video_seconds=10_000))
    assert time.perf_counter() - start < 2.0


def test_a_picture_declaring_144_megapixels_is_refused_before_decoding(bombs):
    image = bombs["image"]
    # the runners' loader refuses it from the header (it used to decode 1.1 GB, then scale it down)
    result = _measured(f"outcome = str(load_rgb({str(image)!r}).size)")
    assert result["outcome"] == ("refused: huge.png declares 12000x12000 pixels, more than the 89 megapixels "
                                 "Jarvis decodes; send a smaller image")
    assert result["seconds"] < 1.0 and result["growth_mb"] < MEMORY_BOUND_MB, result
    with pytest.raises(ResourceError, match=r"huge.png declares too many pixels .*144000000 pixels"):
        check_media(image, "image", FilesConfig())   # this held before: Pillow's guard, turned into an error


def test_ordinary_files_pass_the_budgets(tmp_path):
    sf.write(str(tmp_path / "voice.flac"), np.zeros(48000 * 5, np.float32), 48000)
    check_media(tmp_path / "voice.flac", "audio", FilesConfig())
    check_media(_long_video(tmp_path / "clip.mp4", 90, 320, 240), "video", FilesConfig())


def test_the_budgets_are_config_keys_and_must_be_positive(tmp_path):
    cfg = load_config(env={})
    assert (cfg.files.max_audio_seconds, cfg.files.max_audio_rate_channels) == (1800, 384000)
    assert (cfg.files.max_video_seconds, cfg.files.max_video_total_megapixels) == (600, 20000)
    path = tmp_path / "c.yaml"
    path.write_text("files:\n  max_audio_seconds: 0\n")
    with pytest.raises(ConfigError, match="files.max_audio_seconds: must be greater than 0"):
        load_config(path, env={})


# -- reading holds the output, not the file --------------------------------------------------------
def test_reading_audio_keeps_only_the_resampled_output_in_memory(bombs):
    # 10 minutes of the 96 kHz bomb at 16 kHz mono is 38 MB; the whole file at its own rate was 1.4 GB
    result = _measured(f"clip = read_audio({str(bombs['audio'])!r}, 16000, max_seconds=600)\n"
                       "outcome = f'{len(clip.samples)} {clip.rate} {clip.truncated}'")
    assert result["outcome"] == "9600000 16000 True"
    assert result["growth_mb"] < 100, result


# -- a task that times out or is cancelled stops -----------------------------------------------------
@pytest.fixture(scope="module")
def executor(hub_cache) -> LocalExecutor:
    from tests.tiny import build_all
    if not (hub_cache / ("models--" + CTC.replace("/", "--")) / "refs").is_dir():
        build_all(hub_cache, only={CTC})
    return LocalExecutor(device="cpu", memory_budget_gb=1.0)


def test_speech_recognition_past_its_time_limit_stops_within_a_block(executor, tmp_path):
    store = ResourceStore(tmp_path / "session")
    warm = tmp_path / "warm.wav"
    sf.write(str(warm), np.zeros(16000, np.float32), 16000)
    ctx = RunContext(device=Device(), new_file=store.new_path)
    executor.run("automatic-speech-recognition", CTC, TaskInputs(audio=[warm]), ctx)  # the model is loaded now
    # 29 minutes at 192 kHz, within the budgets: reading it took 1.3 GB and ~8 s, and went on after the timeout
    long = store.add_upload(_silent_flac(tmp_path / "long.flac", 1740, 192000)).path
    plan = parse_plan(plan_json(("automatic-speech-recognition", {"audio": long.name})))
    choices = {0: Choice(0, CTC, "test", [CTC])}
    scheduler = Scheduler(Dispatcher("local", executor), store, task_timeout=0.5)
    before = set(threading.enumerate())
    list(scheduler.run(plan, choices, time.perf_counter()))
    ended = time.perf_counter()
    assert scheduler.records[0].status == "failed" and "timed out after" in scheduler.records[0].error
    workers = [t for t in threading.enumerate() if t not in before]
    for worker in workers:
        worker.join(timeout=5)
    assert not any(w.is_alive() for w in workers) and time.perf_counter() - ended < 2.0
    check_media(long, "audio", FilesConfig())  # an upload the budgets accept


def test_a_cancelled_read_raises_at_the_next_block(bombs):
    cancel = threading.Event()
    ctx = RunContext(device=Device(), new_file=lambda stem, suffix: Path(stem + suffix), cancel=cancel)
    timer = threading.Timer(0.2, cancel.set)
    timer.start()
    from jarvis.runners.media.audio_files import read_audio
    start = time.perf_counter()
    with pytest.raises(TaskError, match="stopped before it finished: the task timed out"):
        read_audio(bombs["audio"], 16000, stop=ctx.raise_if_cancelled)
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize("task, model", [("text-to-image", "stable-diffusion-v1-5/stable-diffusion-v1-5"),
                                         ("text-to-video", "ali-vilab/text-to-video-ms-1.7b")])
def test_diffusion_stops_after_the_step_during_which_it_was_cancelled(hub_cache, tmp_path, task, model):
    from tests.tiny import build_all
    from tests.tiny import diffusion as tiny
    build_all(hub_cache, only=set(tiny.IDS))
    local = LocalExecutor(device="cpu", memory_budget_gb=1, options=RunOptions(diffusion_steps=500, video_frames=2))
    cancel = threading.Event()
    store = ResourceStore(tmp_path / "session")

    def progress(message: str) -> None:   # "drawing ..." / "making ...": the pipeline starts next
        if message.startswith(("drawing", "making")):
            cancel.set()
    ctx = RunContext(device=Device(), new_file=store.new_path, progress=progress, cancel=cancel)
    start = time.perf_counter()
    with pytest.raises(TaskError, match="stopped before it finished"):
        local.run(task, model, TaskInputs(text=["a red fox"]), ctx)
    assert time.perf_counter() - start < 30 and not list(store.root.glob("*.png")) + list(store.root.glob("*.mp4"))


@pytest.mark.parametrize("task, model", [("text-generation", "openai-community/gpt2"),
                                         ("summarization", "facebook/bart-large-cnn"),
                                         ("conversational", "Qwen/Qwen2.5-0.5B-Instruct")])
def test_text_generation_of_a_cancelled_run_stops_at_the_next_token(hub_cache, tmp_path, task, model):
    from tests.tiny import build_all
    if not (hub_cache / ("models--" + model.replace("/", "--")) / "refs").is_dir():
        build_all(hub_cache, only={model})
    local = LocalExecutor(device="cpu", memory_budget_gb=1, options=RunOptions(max_new_tokens=50))
    store = ResourceStore(tmp_path / "session")
    inputs = TaskInputs(text=["The quick brown fox jumps over the lazy dog."])
    assert local.run(task, model, inputs, RunContext(device=Device(), new_file=store.new_path)).text is not None
    cancelled = RunContext(device=Device(), new_file=store.new_path)
    cancelled.cancel.set()
    with pytest.raises(TaskError, match="stopped before it finished"):
        local.run(task, model, inputs, cancelled)


def test_a_run_stopped_by_the_user_cancels_its_running_task(tmp_path):
    from tests.fakes.fake_executor import FakeExecutor
    stop = threading.Event()
    seen: list[float] = []

    def handler(task, model_id, inputs, ctx):
        stop.set()                                  # the user presses stop while this task runs
        ctx.cancel.wait(5)
        seen.append(time.perf_counter())
        ctx.raise_if_cancelled()
        raise AssertionError("the running task was never told to stop")
    plan = parse_plan(plan_json(("summarization", {"text": "a"}), ("translation", {"text": "<GENERATED>-0"}, [0])))
    scheduler = Scheduler(Dispatcher("local", FakeExecutor(handler)), ResourceStore(tmp_path / "s"), cancel=stop)
    start = time.perf_counter()
    list(scheduler.run(plan, {t.id: Choice(t.id, "org/m", "test", ["org/m"]) for t in plan.tasks}, start))
    assert seen and seen[0] - start < 1.0
    assert scheduler.records[0].status == "failed" and "stopped before it finished" in scheduler.records[0].error
    assert scheduler.records[1].status == "skipped"
