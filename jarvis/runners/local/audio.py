"""Local runners of the audio task types: speech recognition, text-to-speech, audio classification
and audio-to-audio (voice conversion). Every input is read with audio_files (any rate or channel count
becomes mono at the model's rate, in blocks); every audio output is a 16-bit PCM WAV in the session
directory. Each runner checks the run's cancel flag between blocks and pieces, so a task that timed
out stops within one piece.

Speech recognition and voice conversion call the model classes (30 s windows, forced transcribe);
audio classification uses the transformers pipeline, which still exists in transformers 5.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from jarvis.errors import TaskError
from jarvis.runners.base import Device, RunContext, Runner, TaskInputs, TaskOutputs
from jarvis.runners.local.loading import cancel_criteria, first_line, torch_dtype
from jarvis.runners.media.audio_files import chunks, read_audio, write_wav

WINDOW_SECONDS = 30.0          # Whisper's fixed window; CTC and seq2seq models get the same pieces
VC_WINDOW_SECONDS = 20.0       # SpeechT5 encodes at most ~80 s; shorter pieces keep memory flat
VOCODER_ID = "microsoft/speecht5_hifigan"
CTC_TYPES = {"wav2vec2", "wav2vec2-conformer", "hubert", "wavlm", "data2vec-audio", "sew", "sew-d", "unispeech",
             "unispeech-sat", "mctct", "wav2vec2-bert", "parakeet_ctc"}


def _config(model_id: str) -> Any:
    """The repo's transformers config."""
    from transformers import AutoConfig
    return AutoConfig.from_pretrained(model_id)


def _on_device(model: Any, device: Device) -> Any:
    """A loaded model moved to the device, in eval mode."""
    return model.to(device.name).eval()


def _sampling_rate(extractor: Any, default: int = 16000) -> int:
    return int(getattr(extractor, "sampling_rate", None) or default)


# --------------------------------------------------------------------------- speech recognition
@dataclass
class _ASR:
    model: Any
    processor: Any
    kind: str          # "whisper" | "seq2seq" | "ctc"
    rate: int
    model_id: str


class SpeechRecognitionRunner(Runner):
    """Whisper (generate, task forced to transcribe), other speech seq2seq models, and CTC models
    (wav2vec2 family, greedy decoding). Audio longer than 30 s is cut into 30 s pieces and joined."""
    task = "automatic-speech-recognition"

    def load(self, model_id: str, device: Device) -> _ASR:
        from transformers import AutoModelForCTC, AutoModelForSpeechSeq2Seq, AutoProcessor
        config = _config(model_id)
        archs = list(getattr(config, "architectures", None) or [])
        auto: Any
        if config.model_type == "whisper" or any("ConditionalGeneration" in a or "SpeechSeq2Seq" in a
                                                 for a in archs):
            kind, auto = ("whisper" if config.model_type == "whisper" else "seq2seq"), AutoModelForSpeechSeq2Seq
        elif config.model_type in CTC_TYPES or any(a.endswith("ForCTC") for a in archs):
            kind, auto = "ctc", AutoModelForCTC
        else:
            raise TaskError(f"{model_id} ({config.model_type}) is not a speech recognizer this app can run "
                            "locally; pick a Whisper or wav2vec2-style CTC model")
        try:
            model = _on_device(auto.from_pretrained(model_id, dtype=torch_dtype(device)), device)
        except ValueError as exc:  # an architecture the Auto class does not map to speech recognition
            raise TaskError(f"{model_id} cannot be loaded as a speech recognizer: "
                            f"{first_line(exc, 200)}") from exc
        processor = AutoProcessor.from_pretrained(model_id)
        extractor = getattr(processor, "feature_extractor", processor)
        return _ASR(model, processor, kind, _sampling_rate(extractor), model_id)

    def run(self, loaded: _ASR, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        import torch
        clip = read_audio(inputs.first("audio"), loaded.rate, max_seconds=ctx.options.asr_max_seconds,
                          stop=ctx.raise_if_cancelled)
        pieces = chunks(clip.samples, clip.rate, WINDOW_SECONDS)
        if len(pieces) > 1:
            ctx.progress(f"transcribing {clip.seconds:.0f} s of audio in {len(pieces)} pieces of 30 s")
        step = 1 if loaded.kind == "ctc" else 4  # seq2seq models generate for 4 pieces at once
        texts: list[str] = []
        with torch.inference_mode():
            for start in range(0, len(pieces), step):
                ctx.raise_if_cancelled()
                if loaded.kind == "ctc":
                    texts.append(self._ctc(loaded, pieces[start]))
                else:
                    texts.extend(self._generate(loaded, pieces[start:start + step], ctx))
        text = re.sub(r"\s+", " ", " ".join(t.strip() for t in texts)).strip()
        detail = {"seconds": round(clip.seconds, 2), "pieces": len(pieces), "truncated": clip.truncated}
        return TaskOutputs(text=text, detail=detail)

    @staticmethod
    def _ctc(loaded: _ASR, piece: np.ndarray) -> str:
        import torch
        features = loaded.processor(piece, sampling_rate=loaded.rate, return_tensors="pt")
        values = features["input_values"].to(loaded.model.device, loaded.model.dtype)
        mask = features.get("attention_mask")
        logits = loaded.model(values, attention_mask=None if mask is None else mask.to(loaded.model.device)).logits
        ids = torch.argmax(logits, dim=-1)
        return loaded.processor.batch_decode(ids, skip_special_tokens=True)[0]

    @staticmethod
    def _generate(loaded: _ASR, pieces: list[np.ndarray], ctx: RunContext) -> list[str]:
        model = loaded.model
        extractor = getattr(loaded.processor, "feature_extractor", loaded.processor)
        features = extractor(list(pieces), sampling_rate=loaded.rate, return_tensors="pt")
        name = "input_features" if "input_features" in features else "input_values"
        kwargs: dict[str, Any] = {name: features[name].to(model.device, model.dtype),
                                  "stopping_criteria": cancel_criteria(ctx)}
        if loaded.kind != "whisper" and features.get("attention_mask") is not None:
            kwargs["attention_mask"] = features["attention_mask"].to(model.device)
        gen = model.generation_config
        limit = int(getattr(model.config, "max_target_positions", 0) or 0)
        if not (loaded.kind == "whisper" and limit and 0 < int(getattr(gen, "max_length", 0) or 0) <= limit):
            kwargs["max_new_tokens"] = max(8, limit - 8) if limit else ctx.options.asr_max_new_tokens
        if loaded.kind == "whisper" and (getattr(gen, "is_multilingual", False) or hasattr(gen, "task_to_id")):
            kwargs["task"] = "transcribe"  # never translate: the user asked for what was said
            if ctx.options.language:
                kwargs["language"] = ctx.options.language
        try:
            ids = model.generate(**kwargs)
        except ValueError as exc:
            raise TaskError(f"{loaded.model_id} could not transcribe: {exc}") from exc
        sequences = getattr(ids, "sequences", ids)
        return loaded.processor.batch_decode(sequences, skip_special_tokens=True)


# --------------------------------------------------------------------------- text to speech
DIA_FRAMES_PER_SECOND = 44100 / 512   # DAC 44 kHz: one frame of 9 codebooks per 512 samples
DIA_MAX_CHARS = 250                   # per generate(); Dia speaks 5-20 s best and stops at 3072 frames (~35 s)
SPEAKER_TAG = re.compile(r"(\[S[12]\])")


@dataclass
class _TTS:
    model: Any
    tokenizer: Any          # VITS: the tokenizer; Dia: the processor (tokenizer, DAC codec, delay pattern)
    pipe: Any
    model_id: str
    kind: str = "vits"      # "vits" | "dia" | "pipeline"


class TextToSpeechRunner(Runner):
    """VITS / MMS-TTS through VitsModel (characters outside the vocabulary dropped, long texts spoken
    sentence by sentence); Dia through DiaForConditionalGeneration: its processor tokenizes the
    "[S1] ..."-tagged text, generate() samples DAC codebooks, the processor decodes them through the
    DAC codec (44.1 kHz). Other models go through the text-to-audio pipeline."""
    task = "text-to-speech"
    max_chars = 400  # per forward pass; VITS attention grows with the square of the input

    def load(self, model_id: str, device: Device) -> _TTS:
        config = _config(model_id)
        if config.model_type == "vits":
            from transformers import AutoTokenizer, VitsModel
            model = _on_device(VitsModel.from_pretrained(model_id), device)  # float32: flows are fragile in fp16
            return _TTS(model, AutoTokenizer.from_pretrained(model_id), None, model_id)
        if config.model_type == "dia":
            from transformers import AutoProcessor, DiaForConditionalGeneration
            model = _on_device(DiaForConditionalGeneration.from_pretrained(model_id, dtype=torch_dtype(device)),
                               device)
            processor = AutoProcessor.from_pretrained(model_id)   # loads the DAC codec its config names
            processor.audio_tokenizer.to(device.name).eval()
            return _TTS(model, processor, None, model_id, kind="dia")
        from transformers import pipeline
        pipe = pipeline("text-to-audio", model=model_id, device=device.name, dtype=torch_dtype(device))
        return _TTS(None, None, pipe, model_id, kind="pipeline")

    def run(self, loaded: _TTS, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        text = str(inputs.first("text")).strip()
        if not text:
            raise TaskError("text-to-speech got an empty text; give it something to say")
        if loaded.kind == "pipeline":
            out = loaded.pipe(text)
            audio, rate = np.asarray(out["audio"], dtype=np.float32), int(out["sampling_rate"])
            audio = audio.T if audio.ndim == 2 and audio.shape[0] < audio.shape[1] else audio
        elif loaded.kind == "dia":
            audio, rate = self._dia(loaded, text, ctx)
        else:
            audio, rate = self._vits(loaded, text, ctx)
        path = write_wav(ctx.new_file("speech", ".wav"), audio, rate)
        seconds = round(float(np.asarray(audio).shape[0]) / rate, 2)
        return TaskOutputs(audio=path, detail={"sampling_rate": rate, "seconds": seconds})

    def _vits(self, loaded: _TTS, text: str, ctx: RunContext) -> tuple[np.ndarray, int]:
        import torch
        tokenizer, model = loaded.tokenizer, loaded.model
        spoken = _vits_filter(tokenizer, text, loaded.model_id)
        rate = int(model.config.sampling_rate)
        gap = np.zeros(int(0.15 * rate), dtype=np.float32)
        parts: list[np.ndarray] = []
        with torch.inference_mode(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(ctx.options.seed or 0)  # VITS samples noise: same text, same voice
            for piece in _split_text(spoken, self.max_chars):
                ctx.raise_if_cancelled()
                encoded = tokenizer(piece, return_tensors="pt").to(model.device)
                if encoded["input_ids"].shape[-1] == 0:
                    continue
                wave = model(**encoded).waveform[0].float().cpu().numpy()
                parts.extend([wave, gap])
        if not parts:
            raise TaskError(f"{loaded.model_id} has nothing to say for {text[:60]!r}; "
                            "write the text in the model's language")
        return np.concatenate(parts[:-1]), rate

    def _dia(self, loaded: _TTS, text: str, ctx: RunContext) -> tuple[np.ndarray, int]:
        """Piece by piece (each starting with its speaker tag), the same seed for every piece so the
        voice stays; the frames each piece may take follow its length (about 14 characters a second)."""
        import torch
        processor, model = loaded.tokenizer, loaded.model
        rate = _sampling_rate(processor.feature_extractor, 44100)   # Dia's own preprocessor_config.json
        limit = int(getattr(model.generation_config, "max_length", 0) or 3072)
        gap = np.zeros(int(0.2 * rate), dtype=np.float32)
        parts: list[np.ndarray] = []
        pieces = _dia_pieces(text)
        if not pieces:
            raise TaskError(f"{text[:60]!r} has speaker tags but no words; give {loaded.model_id} something to say")
        if len(pieces) > 1:
            ctx.progress(f"speaking {len(text)} characters in {len(pieces)} pieces")
        with torch.inference_mode(), torch.random.fork_rng(devices=[]):
            for piece in pieces:
                ctx.raise_if_cancelled()
                torch.manual_seed(ctx.options.seed or 0)  # Dia samples its voice: same seed, same voice
                inputs = processor(text=[piece], padding=True, truncation=True,
                                   return_tensors="pt").to(model.device)
                frames = min(limit, int(DIA_FRAMES_PER_SECOND * (1.0 + len(piece) / 10.0)))
                try:
                    codes = model.generate(**inputs, max_new_tokens=frames, stopping_criteria=cancel_criteria(ctx))
                except ValueError as exc:
                    raise TaskError(f"{loaded.model_id} could not speak this text: {first_line(exc, 200)}") from exc
                wave = processor.batch_decode(codes)[0]
                wave = wave.float().cpu().numpy().reshape(-1)
                if wave.size:
                    parts.extend([wave, gap])
        if not parts:
            raise TaskError(f"{loaded.model_id} produced no audio for {text[:60]!r}; try a longer sentence")
        return np.concatenate(parts[:-1]), rate


def _dia_pieces(text: str) -> list[str]:
    """The text cut into pieces Dia speaks well, each starting with a speaker tag: the one in force
    there, or "[S1]" when the text has none (Dia reads untagged text poorly)."""
    text = re.sub(r"\s+", " ", text).strip()
    if not SPEAKER_TAG.match(text):
        text = f"[S1] {text}"
    split = SPEAKER_TAG.split(text)                 # ["", "[S1]", " said ", "[S2]", " said "...]
    pieces: list[str] = []
    for tag, said in zip(split[1::2], split[2::2]):
        for part in _split_text(said.strip(), DIA_MAX_CHARS):
            turn = f"{tag} {part}"
            if pieces and len(pieces[-1]) + 1 + len(turn) <= DIA_MAX_CHARS:
                pieces[-1] = f"{pieces[-1]} {turn}"
            else:
                pieces.append(turn)
    return pieces


def _vits_filter(tokenizer: Any, text: str, model_id: str) -> str:
    """The text reduced to characters the VITS vocabulary knows; TaskError when nothing is left."""
    if getattr(tokenizer, "phonemize", False):
        try:
            import phonemizer  # noqa: F401
        except ImportError as exc:
            raise TaskError(f"{model_id} reads phonemes: install the 'phonemizer' package and espeak-ng, "
                            "or use facebook/mms-tts-eng") from exc
        return text
    if getattr(tokenizer, "is_uroman", False) and re.search(r"[^\x00-\x7f]", text):
        try:
            import uroman
            text = uroman.Uroman().romanize_string(text)
        except ImportError:
            pass  # the filter below drops what the model cannot read; the error names uroman
    vocab = set(tokenizer.get_vocab())
    lower = getattr(tokenizer, "normalize", True)
    kept = []
    for char in text:
        if char in vocab:
            kept.append(char)
        elif lower and char.lower() in vocab:
            kept.append(char.lower())
        elif char.isspace() and " " in vocab:
            kept.append(" ")
    spoken = re.sub(r"\s+", " ", "".join(kept)).strip()
    if not re.search(r"\w", spoken):
        hint = " (install 'uroman' to romanize other scripts)" if getattr(tokenizer, "is_uroman", False) else ""
        raise TaskError(f"none of the characters of {text[:60]!r} are in the vocabulary of {model_id}; "
                        f"write the text in the language and script that model speaks{hint}")
    return spoken


def _split_text(text: str, max_chars: int) -> list[str]:
    """Sentences packed into pieces of at most max_chars (a sentence longer than that is cut at spaces)."""
    sentences = [s for s in re.split(r"(?<=[.!?;:])\s+", text) if s.strip()]
    pieces: list[str] = []
    for sentence in sentences:
        while len(sentence) > max_chars:
            cut = sentence.rfind(" ", 0, max_chars)
            cut = cut if cut > 0 else max_chars
            pieces.append(sentence[:cut])
            sentence = sentence[cut:].strip()
        if pieces and len(pieces[-1]) + 1 + len(sentence) <= max_chars:
            pieces[-1] = f"{pieces[-1]} {sentence}"
        elif sentence:
            pieces.append(sentence)
    return pieces


# --------------------------------------------------------------------------- audio classification
class AudioClassificationRunner(Runner):
    """The audio-classification pipeline (AST, wav2vec2 and kin), fed mono audio at its rate."""
    task = "audio-classification"

    def load(self, model_id: str, device: Device) -> Any:
        from transformers import pipeline
        try:
            return pipeline("audio-classification", model=model_id, device=device.name, dtype=torch_dtype(device))
        except (ValueError, KeyError) as exc:
            raise TaskError(f"{model_id} is not an audio classifier this app can run locally: "
                            f"{first_line(exc, 200)}") from exc

    def run(self, loaded: Any, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        rate = _sampling_rate(loaded.feature_extractor)
        clip = read_audio(inputs.first("audio"), rate, max_seconds=ctx.options.classify_max_seconds,
                          stop=ctx.raise_if_cancelled)
        results = loaded(clip.samples, top_k=ctx.options.top_k_labels)
        labels = [{"label": str(r["label"]), "score": round(float(r["score"]), 4)} for r in results]
        text = "\n".join(f"{r['label']}: {r['score']:.3f}" for r in labels)
        return TaskOutputs(text=text, detail={"labels": labels, "seconds": round(clip.seconds, 2),
                                              "truncated": clip.truncated})


# --------------------------------------------------------------------------- audio to audio
@dataclass
class _VC:
    model: Any
    extractor: Any
    vocoder: Any
    speaker: Any
    rate: int


class AudioToAudioRunner(Runner):
    """SpeechT5 voice conversion: the speech is re-spoken in a fixed voice through the HiFi-GAN
    vocoder. The speaker embedding is a seeded unit vector, so the output voice never changes."""
    task = "audio-to-audio"

    def load(self, model_id: str, device: Device) -> _VC:
        import torch
        from transformers import AutoFeatureExtractor, SpeechT5ForSpeechToSpeech, SpeechT5HifiGan
        config = _config(model_id)
        archs = list(getattr(config, "architectures", None) or [])
        if config.model_type != "speecht5" or not any("SpeechToSpeech" in a for a in archs):
            raise TaskError(f"{model_id} ({config.model_type}) is not supported for local audio-to-audio; "
                            "use microsoft/speecht5_vc, or run this task remotely")
        dtype = torch_dtype(device)
        model = _on_device(SpeechT5ForSpeechToSpeech.from_pretrained(model_id, dtype=dtype), device)
        vocoder = _on_device(SpeechT5HifiGan.from_pretrained(VOCODER_ID, dtype=dtype), device)
        extractor = AutoFeatureExtractor.from_pretrained(model_id)
        generator = torch.Generator().manual_seed(7)
        speaker = torch.randn(1, int(config.speaker_embedding_dim), generator=generator)
        speaker = (speaker / speaker.norm()).to(device.name, dtype)
        return _VC(model, extractor, vocoder, speaker, _sampling_rate(extractor))

    def run(self, loaded: _VC, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        import torch
        clip = read_audio(inputs.first("audio"), loaded.rate, max_seconds=ctx.options.vc_max_seconds,
                          stop=ctx.raise_if_cancelled)
        parts: list[np.ndarray] = []
        pieces = chunks(clip.samples, clip.rate, VC_WINDOW_SECONDS)
        with torch.inference_mode():
            for piece in pieces:
                ctx.raise_if_cancelled()
                values = loaded.extractor(audio=piece, sampling_rate=loaded.rate, return_tensors="pt")["input_values"]
                values = values.to(loaded.model.device, loaded.model.dtype)
                speech = loaded.model.generate_speech(values, loaded.speaker, vocoder=loaded.vocoder,
                                                      maxlenratio=4.0)
                parts.append(speech.float().cpu().numpy().reshape(-1))
        audio = np.concatenate(parts) if parts else np.zeros(0, np.float32)
        rate = int(getattr(loaded.vocoder.config, "sampling_rate", 16000))
        path = write_wav(ctx.new_file("converted", ".wav"), audio, rate)
        return TaskOutputs(audio=path, detail={"sampling_rate": rate, "seconds": round(len(audio) / rate, 2),
                                               "input_seconds": round(clip.seconds, 2), "pieces": len(pieces)})
