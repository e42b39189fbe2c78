"""The task vocabulary: every task type the planner may name, with its inputs and outputs.

One table serves the planner prompt, the plan validator, the catalog and the runners.
Inputs and outputs are resource types: "text", "image", "audio", "video".
A task may take two inputs of one type (question answering: question then context); the
plan carries them in order as a list under that type: {"text": [QUESTION, CONTEXT]}.
"""
from __future__ import annotations

from dataclasses import dataclass, field

RESOURCE_TYPES = ("text", "image", "audio", "video")


@dataclass(frozen=True)
class TaskType:
    name: str
    inputs: tuple[str, ...]           # resource types, in order (repeats allowed)
    outputs: tuple[str, ...]          # resource types it produces
    description: str
    input_names: tuple[str, ...] = ()  # what each input means, for the prompt and errors
    local: bool = True                # a locally runnable model family exists
    remote: bool = True               # Inference Providers (or a VLM) can serve it
    aliases: tuple[str, ...] = field(default=())

    def count(self, rtype: str) -> int:
        return sum(1 for t in self.inputs if t == rtype)


def _t(name, inputs, outputs, description, input_names=(), local=True, remote=True, aliases=()):
    return TaskType(name, tuple(inputs), tuple(outputs), description, tuple(input_names), local, remote, tuple(aliases))


TASK_TYPES: dict[str, TaskType] = {t.name: t for t in [
    # text
    _t("token-classification", ["text"], ["text"], "label each word: named entities, parts of speech", aliases=("ner",)),
    _t("text-classification", ["text"], ["text"], "label a whole text: sentiment, topic", aliases=("sentiment-analysis",)),
    _t("summarization", ["text"], ["text"], "shorten a text keeping its meaning"),
    _t("translation", ["text"], ["text"], "translate a text into another language"),
    _t("question-answering", ["text", "text"], ["text"], "answer a question from a context text",
       input_names=("question", "context")),
    _t("conversational", ["text"], ["text"], "reply to a message as a chat assistant"),
    _t("text-generation", ["text"], ["text"], "continue or write text from a prompt"),
    _t("text2text-generation", ["text"], ["text"], "rewrite text into text (paraphrase, correct, answer)"),
    _t("sentence-similarity", ["text", "text"], ["text"], "score how similar two sentences are",
       input_names=("first sentence", "second sentence")),
    _t("tabular-classification", ["text"], ["text"], "classify the rows of a table (CSV text or file)", remote=False),
    # vision
    _t("image-classification", ["image"], ["text"], "label what an image shows"),
    _t("object-detection", ["image"], ["image", "text"], "find objects: boxes drawn on the image, and a list"),
    _t("image-segmentation", ["image"], ["image", "text"], "split an image into labelled regions (colour overlay)"),
    _t("depth-estimation", ["image"], ["image"], "estimate depth: a depth map image", remote=False),
    _t("image-to-text", ["image"], ["text"], "describe (caption) an image", aliases=("image-captioning",)),
    _t("visual-question-answering", ["image", "text"], ["text"], "answer a question about an image",
       input_names=("image", "question")),
    _t("document-question-answering", ["image", "text"], ["text"], "answer a question about a document image",
       input_names=("document image", "question")),
    _t("text-to-image", ["text"], ["image"], "generate an image from a description"),
    _t("image-to-image", ["image"], ["image"], "transform an image into a new image"),
    _t("image-editing", ["image", "text"], ["image"], "edit an image following an instruction",
       input_names=("image", "instruction")),
    _t("canny-control", ["image"], ["image"], "extract the edges of an image (canny) as a control image", remote=False),
    _t("depth-control", ["image"], ["image"], "extract a depth map of an image as a control image", remote=False),
    _t("canny-text-to-image", ["text", "image"], ["image"], "draw a new image from a description following an edge map",
       input_names=("description", "edge image"), remote=False),
    _t("depth-text-to-image", ["text", "image"], ["image"], "draw a new image from a description following a depth map",
       input_names=("description", "depth image"), remote=False),
    # audio and video
    _t("automatic-speech-recognition", ["audio"], ["text"], "transcribe speech to text", aliases=("speech-recognition", "asr")),
    _t("text-to-speech", ["text"], ["audio"], "speak a text aloud", aliases=("tts",)),
    _t("audio-classification", ["audio"], ["text"], "label a sound or speech clip"),
    _t("audio-to-audio", ["audio"], ["audio"], "transform audio: enhance, separate, denoise"),
    _t("text-to-video", ["text"], ["video"], "generate a short video from a description"),
]}

# HuggingGPT names ControlNet conditions we do not ship; known, so the message is precise.
UNSUPPORTED_TASKS = {
    f"{kind}-{suffix}": f"'{kind}' ControlNet conditioning is not supported; use canny-control/depth-control"
    for kind in ("openpose", "hed", "mlsd", "normal", "scribble", "seg")
    for suffix in ("control", "text-to-image")
}

_ALIASES = {a: t.name for t in TASK_TYPES.values() for a in t.aliases}


def canonical_task(name: str) -> str | None:
    """Map what an LLM wrote ("Image-to-Text", "image_to_text", "sentiment-analysis") to a known name."""
    key = str(name).strip().lower().replace("_", "-").replace(" ", "-")
    if key in TASK_TYPES:
        return key
    return _ALIASES.get(key)


def get(name: str) -> TaskType:
    return TASK_TYPES[name]
