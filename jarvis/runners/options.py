"""Typed run options: every knob a runner or remote adapter reads, with its default, in one place.

Config feeds max_new_tokens and diffusion_steps (config.local, through the local executor); the other
knobs keep these defaults unless a caller sets them (tests, benchmarks). A misspelt option is a
TypeError naming it (the dataclass constructor refuses unknown keywords), never silently ignored.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Literal

# Tokens generated when max_new_tokens is unset, by what is generated (config.local.max_new_tokens
# sets it for every local task; remote calls get no config value and use their own).
NEW_TOKENS = {"text": 64, "caption": 32, "short-answer": 16, "remote-text": 256, "vlm-answer": 128}
NewTokensKind = Literal["text", "caption", "short-answer", "remote-text", "vlm-answer"]


@dataclass(frozen=True)
class RunOptions:
    """Per-run knobs of the runners; each field's default is the one Jarvis uses."""
    # text
    max_new_tokens: int | None = None      # tokens to generate; None: NEW_TOKENS for what is generated
    max_input_tokens: int = 4096           # input tokens read at most, so a huge-window model stays fast on CPU
    target_language: str = ""              # translation target ("" = named in the text; T5: French)
    source_language: str = ""              # translation source for T5 prompts ("" = named in the text, or English)
    # vision
    top_k_labels: int = 5                  # labels kept by image and audio classification
    detection_threshold: float = 0.5       # object detection: lowest score kept
    max_objects: int = 100                 # object detection: boxes kept, best first
    canny_max_side: int = 1024             # canny-control: larger images are scaled down first
    canny_low: float = 100.0               # canny-control hysteresis thresholds
    canny_high: float = 200.0
    # audio
    asr_max_seconds: float = 3600.0        # speech recognition reads at most this much audio
    asr_max_new_tokens: int = 256          # speech seq2seq models without a length limit of their own
    language: str = ""                     # Whisper: transcribe in this language ("" = detect)
    classify_max_seconds: float = 60.0     # audio classification reads at most this much
    vc_max_seconds: float = 600.0          # voice conversion reads at most this much
    # generation
    seed: int | None = None                # diffusion: None = random; text-to-speech: None = 0 (same voice)
    diffusion_steps: int = 20
    img2img_strength: float = 0.75         # image-to-image: how far the result may move from the input
    controlnet_base: str = "stable-diffusion-v1-5/stable-diffusion-v1-5"  # the SD 1.x model ControlNets steer
    video_frames: int = 16
    video_fps: int = 8

    def new_tokens(self, kind: NewTokensKind) -> int:
        """Tokens to generate: max_new_tokens when set (at least 1), else the default for `kind`."""
        return max(1, self.max_new_tokens if self.max_new_tokens is not None else NEW_TOKENS[kind])

    def on_top_of(self, base: RunOptions) -> RunOptions:
        """These options laid over `base`: a field set here (away from its default) wins, the rest
        comes from base. The local executor lays a run's options over the ones it was built with."""
        changed = {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) != f.default}
        return replace(base, **changed)
