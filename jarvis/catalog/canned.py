"""One canned input per task type, for `catalog verify`: a short text (or two), a small picture with
shapes and printed words, a two-second audio clip, a table from the model's own example.

Built from the task registry's declared inputs, so a new task type gets a canned input by naming
its texts here; a task without texts here gets a generic sentence.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from jarvis.runners.base import TaskInputs
from jarvis.runners.media.audio_files import write_wav
from jarvis.runners.registry import TASK_TYPES

TEXTS: dict[str, tuple[str, ...]] = {
    "token-classification": ("My name is Clara and I live in Berlin.",),
    "text-classification": ("I love this film, it is wonderful.",),
    "summarization": ("The city council met on Monday to discuss the new park. After a long debate, the members "
                      "agreed to plant two hundred trees and to open the park to the public next spring.",),
    "translation": ("Translate to French: The weather is nice today.",),
    "question-answering": ("Where does Clara live?", "My name is Clara and I live in Berlin."),
    "conversational": ("Hello! What can you do?",),
    "text-generation": ("Once upon a time",),
    "text2text-generation": ("Answer the question: what is the capital of France?",),
    "sentence-similarity": ("A cat sits on the mat.", "A kitten rests on a rug."),
    "visual-question-answering": ("What is in the picture?",),
    "document-question-answering": ("What is the total?",),
    "image-editing": ("make it look like winter",),
    "text-to-speech": ("Hello, this is a test.",),
}
GENERIC_TEXT = "a red apple on a wooden table"
SAMPLE_RATE = 16000


def canned_inputs(task: str, model_id: str, folder: Path) -> TaskInputs:
    """The canned input of `task` (media files written into `folder`, once); the table of a tabular
    model is built from the example its config.json gives."""
    spec = TASK_TYPES[task]
    inputs = TaskInputs()
    texts = iter(TEXTS.get(task, ()))
    for rtype in spec.inputs:
        if rtype == "text":
            inputs.text.append(_table(model_id) if task == "tabular-classification" else next(texts, GENERIC_TEXT))
        elif rtype == "image":
            inputs.image.append(_picture(folder / "canned.png"))
        elif rtype == "audio":
            inputs.audio.append(_clip(folder / "canned.wav"))
        else:
            raise ValueError(f"no canned {rtype} input for {task}")
    return inputs


def _picture(path: Path) -> Path:
    """A 320x240 picture: shapes to see and words to read (document QA reads them)."""
    if not path.exists():
        image = Image.new("RGB", (320, 240), "white")
        draw = ImageDraw.Draw(image)
        draw.ellipse((20, 30, 120, 130), fill=(200, 30, 30))
        draw.rectangle((160, 40, 290, 120), fill=(30, 60, 200))
        draw.text((30, 170), "INVOICE 17   TOTAL 42.00", fill="black")
        image.save(path, format="PNG")
    return path


def _clip(path: Path) -> Path:
    """Two seconds of a gliding tone with a little noise, 16 kHz mono WAV."""
    if not path.exists():
        t = np.arange(2 * SAMPLE_RATE) / SAMPLE_RATE
        tone = 0.3 * np.sin(2 * np.pi * (220 + 110 * t) * t)
        noise = 0.01 * np.random.default_rng(0).standard_normal(t.shape)
        write_wav(path, (tone + noise).astype(np.float32), SAMPLE_RATE)
    return path


def _table(model_id: str) -> str:
    """CSV rows from the example input in the model's config.json (scikit-learn repos carry one)."""
    from huggingface_hub import hf_hub_download
    try:
        config = json.loads(Path(hf_hub_download(model_id, "config.json")).read_text(encoding="utf-8"))
        example = config["sklearn"]["example_input"]
        columns = [str(c) for c in example]
        rows = zip(*(example[c] for c in example), strict=True)
    except Exception:  # no example to build a table from: a generic one, which the model may refuse
        return "a,b\n1,2\n"
    lines = [",".join(columns)] + [",".join(str(v) for v in row) for row in rows]
    return "\n".join(lines) + "\n"
