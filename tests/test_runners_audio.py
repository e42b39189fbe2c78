"""The audio runners end to end: LocalExecutor, a session ResourceStore and tiny real models
(offline HF cache), on generated audio files of awkward rates, channel counts and lengths."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from jarvis.errors import TaskError
from jarvis.execution.local import LocalExecutor
from jarvis.files.store import ResourceStore
from jarvis.runners.base import Device, RunContext, TaskInputs
from jarvis.runners.media.audio_files import chunks, read_audio, write_wav
from jarvis.runners.options import RunOptions
from tests.helpers import check_detail

WHISPER = "openai/whisper-tiny"
CTC = "facebook/wav2vec2-base-960h"
TTS = "facebook/mms-tts-eng"
DIA = "nari-labs/Dia-1.6B-0626"
AST = "MIT/ast-finetuned-audioset-10-10-0.4593"
KEYWORDS = "superb/wav2vec2-base-superb-ks"
VC = "microsoft/speecht5_vc"
AUDIO_MODELS = {WHISPER, CTC, TTS, AST, KEYWORDS, VC, "microsoft/speecht5_hifigan", DIA,
                "descript/dac_44khz"}


@pytest.fixture(scope="module")
def audio_models(hub_cache: Path) -> Path:
    """Only the audio tiny models (others' builders are not this file's concern); skip if present."""
    from tests.tiny import build_all
    missing = {m for m in AUDIO_MODELS if not (hub_cache / ("models--" + m.replace("/", "--")) / "refs").is_dir()}
    if missing:
        build_all(hub_cache, only=missing)
    return hub_cache


@pytest.fixture(scope="module")
def executor(audio_models) -> LocalExecutor:
    return LocalExecutor(device="cpu", memory_budget_gb=1.0)


@pytest.fixture
def store(tmp_path: Path) -> ResourceStore:
    return ResourceStore(tmp_path / "session")


def _ctx(store: ResourceStore, **options) -> RunContext:
    return RunContext(device=Device(), new_file=store.new_path, options=RunOptions(**options))


def _tone(path: Path, seconds: float, rate: int = 44100, channels: int = 2, fmt: str | None = None) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * 440 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    data = np.stack([wave, 0.5 * wave], axis=1)[:, :channels] if channels > 1 else wave
    sf.write(str(path), data.astype(np.float32), rate, format=fmt)
    return path


def _upload(store: ResourceStore, src: Path) -> Path:
    return store.add_upload(src).path


def _wav_ok(path: Path, rate: int | None = None) -> int:
    info = sf.info(str(path))
    assert path.suffix == ".wav" and info.subtype == "PCM_16" and info.channels == 1 and info.frames > 0
    if rate:
        assert info.samplerate == rate
    return info.frames


# ------------------------------------------------------------------ audio I/O
def test_read_resamples_stereo_to_mono(tmp_path):
    clip = read_audio(_tone(tmp_path / "a.wav", 2.0), 16000)
    assert clip.rate == 16000 and clip.samples.ndim == 1 and clip.samples.dtype == np.float32
    assert abs(len(clip.samples) - 32000) <= 2 and 0.1 < np.abs(clip.samples).max() <= 1.0
    flac = read_audio(_tone(tmp_path / "a.flac", 1.0, rate=22050, channels=1))
    assert flac.rate == 22050 and len(flac.samples) == 22050
    ogg = read_audio(_tone(tmp_path / "a.ogg", 1.0, rate=48000, channels=2), 16000)
    assert abs(len(ogg.samples) - 16000) < 200


def test_read_mp3_and_cut_long_file(tmp_path):
    mp3 = _tone(tmp_path / "a.mp3", 1.0, rate=44100, channels=1, fmt="MP3")
    assert read_audio(mp3, 16000).samples.size > 10000
    import av  # libsndfile cannot open m4a: PyAV decodes it
    m4a, rate = tmp_path / "c.m4a", 44100
    with av.open(str(m4a), "w") as container:
        stream = container.add_stream("aac", rate=rate, layout="stereo")
        wave = (0.3 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate)).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(np.stack([wave, wave]), format="fltp", layout="stereo")
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    assert abs(len(read_audio(m4a, 16000).samples) - 16000) < 1500
    long = read_audio(_tone(tmp_path / "b.wav", 3.0, rate=8000, channels=1), max_seconds=1.0)
    assert long.truncated and len(long.samples) == 8000


def test_read_errors_are_clear(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(TaskError, match="empty"):
        read_audio(empty, 16000)
    garbage = tmp_path / "noise.mp3"
    garbage.write_bytes(b"this is not audio at all" * 10)
    with pytest.raises(TaskError, match="could not read audio file 'noise.mp3'"):
        read_audio(garbage, 16000)
    data = _tone(tmp_path / "t.flac", 1.0, channels=1).read_bytes()
    cut = tmp_path / "cut.flac"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(TaskError, match="corrupt, truncated"):
        read_audio(cut, 16000)
    header_only = tmp_path / "header.wav"
    sf.write(str(header_only), np.zeros(0, np.float32), 16000)
    with pytest.raises(TaskError, match="no samples"):
        read_audio(header_only, 16000)
    with pytest.raises(TaskError, match="not found"):
        read_audio(tmp_path / "missing.wav")


def test_write_wav_pcm16_and_chunks(tmp_path):
    path = write_wav(tmp_path / "o.wav", np.array([0.0, 3.0, -6.0, np.nan], np.float32), 16000)
    data, rate = sf.read(str(path))
    assert rate == 16000 and sf.info(str(path)).subtype == "PCM_16" and np.abs(data).max() <= 1.0
    pieces = chunks(np.zeros(70 * 100, np.float32), 100, 30.0)
    assert [len(p) for p in pieces] == [3000, 3000, 1000]
    assert len(chunks(np.zeros(3001, np.float32), 100, 30.0)) == 1  # a 10 ms tail is dropped


# ------------------------------------------------------------------ speech recognition
def test_whisper_transcribes_resampled_audio(executor, store, tmp_path):
    audio = _upload(store, _tone(tmp_path / "speech.wav", 2.0))
    out = executor.run("automatic-speech-recognition", WHISPER, TaskInputs(audio=[audio]), _ctx(store))
    assert isinstance(out.text, str) and out.detail["pieces"] == 1


def test_whisper_long_audio_in_30s_pieces(executor, store, tmp_path):
    audio = _upload(store, _tone(tmp_path / "long.flac", 70.0, rate=16000, channels=1))
    messages: list[str] = []
    ctx = _ctx(store)
    ctx.progress = messages.append
    out = executor.run("automatic-speech-recognition", WHISPER, TaskInputs(audio=[audio]), ctx)
    assert isinstance(out.text, str) and out.detail["pieces"] == 3 and out.detail["seconds"] == 70.0
    assert any("3 pieces" in m for m in messages)


def test_ctc_transcribes(executor, store, tmp_path):
    audio = _upload(store, _tone(tmp_path / "ctc.ogg", 1.5, rate=48000))
    out = executor.run("automatic-speech-recognition", CTC, TaskInputs(audio=[audio]), _ctx(store))
    assert isinstance(out.text, str) and set(out.text) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ' ")


def test_asr_empty_file_is_task_error(executor, store, tmp_path):
    empty = tmp_path / "silence.wav"
    empty.write_bytes(b"")
    audio = _upload(store, empty)
    with pytest.raises(TaskError, match="empty"):
        executor.run("automatic-speech-recognition", WHISPER, TaskInputs(audio=[audio]), _ctx(store))


# ------------------------------------------------------------------ text to speech
def test_tts_writes_wav_and_drops_unknown_characters(executor, store):
    text = "Hello, World! It's 12:30 — café ✓ «ok»?"
    out = executor.run("text-to-speech", TTS, TaskInputs(text=[text]), _ctx(store))
    assert out.audio.parent == store.root and _wav_ok(out.audio, 16000) > 0
    again = executor.run("text-to-speech", TTS, TaskInputs(text=[text]), _ctx(store))
    assert np.array_equal(sf.read(str(out.audio))[0], sf.read(str(again.audio))[0])  # seeded noise


def test_tts_long_text_and_unspeakable_text(executor, store):
    long = " ".join(f"Sentence number {i} is here." for i in range(20))
    out = executor.run("text-to-speech", TTS, TaskInputs(text=[long]), _ctx(store))
    assert _wav_ok(out.audio, 16000) > 0
    with pytest.raises(TaskError, match="vocabulary"):
        executor.run("text-to-speech", TTS, TaskInputs(text=["你好，世界 ✓"]), _ctx(store))
    with pytest.raises(TaskError, match="empty text"):
        executor.run("text-to-speech", TTS, TaskInputs(text=["   "]), _ctx(store))


@pytest.mark.slow  # ~100 sampled frames at ~0.1 s each even for the tiny replica (2 shared cores)
def test_dia_speaks_through_its_dac_codec(executor, store):
    """Dia: the processor (byte tokenizer + the DAC codec its audio_tokenizer_config.json names),
    generate(), the codes decoded to 44.1 kHz speech; the same seed gives the same voice."""
    out = executor.run("text-to-speech", DIA, TaskInputs(text=["Hi there."]), _ctx(store))
    assert out.audio.parent == store.root and _wav_ok(out.audio, 44100) > 0
    assert out.detail["sampling_rate"] == 44100 and out.detail["seconds"] > 0
    again = executor.run("text-to-speech", DIA, TaskInputs(text=["Hi there."]), _ctx(store))
    assert np.array_equal(sf.read(str(out.audio))[0], sf.read(str(again.audio))[0])
    with pytest.raises(TaskError, match="no words"):
        executor.run("text-to-speech", DIA, TaskInputs(text=["[S1] [S2]"]), _ctx(store))


def test_dia_text_gets_speaker_tags_and_pieces():
    from jarvis.runners.local.audio import DIA_MAX_CHARS, _dia_pieces
    assert _dia_pieces("Hello  there.") == ["[S1] Hello there."]
    assert _dia_pieces("[S1] Hi. [S2] Hello! (laughs)") == ["[S1] Hi. [S2] Hello! (laughs)"]
    long = _dia_pieces("[S2] " + " ".join(f"Sentence number {i} is here." for i in range(40)))
    assert len(long) > 1 and all(p.startswith("[S2] ") and len(p) <= DIA_MAX_CHARS + 5 for p in long)


# ------------------------------------------------------------------ audio classification
@pytest.mark.parametrize("model_id", [AST, KEYWORDS])
def test_audio_classification(executor, store, tmp_path, model_id):
    audio = _upload(store, _tone(tmp_path / "clip.wav", 3.0))
    out = executor.run("audio-classification", model_id, TaskInputs(audio=[audio]), _ctx(store))
    check_detail("audio-classification", out.detail)
    labels = out.detail["labels"]
    assert out.text and 1 <= len(labels) <= 5 and labels[0]["label"] in out.text
    assert all(0.0 <= item["score"] <= 1.0 for item in labels)


# ------------------------------------------------------------------ audio to audio
def test_voice_conversion(executor, store, tmp_path):
    audio = _upload(store, _tone(tmp_path / "voice.wav", 1.0, rate=22050))
    out = executor.run("audio-to-audio", VC, TaskInputs(audio=[audio]), _ctx(store))
    assert _wav_ok(out.audio, 16000) > 0 and out.detail["sampling_rate"] == 16000


def test_audio_to_audio_rejects_other_models(executor, store, tmp_path):
    audio = _upload(store, _tone(tmp_path / "voice.wav", 0.5))
    with pytest.raises(TaskError, match="not supported for local audio-to-audio"):
        executor.run("audio-to-audio", WHISPER, TaskInputs(audio=[audio]), _ctx(store))
