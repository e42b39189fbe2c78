"""Runners by task type, one module per modality. Modules import lazily (torch stays unloaded
until the first local task). Each module exposes RUNNERS: dict[task name, Runner]."""
from __future__ import annotations

import importlib

from jarvis.runners.base import Device, RunContext, Runner, TaskError, TaskInputs, TaskOutputs  # noqa: F401

_MODULE_OF = {
    **dict.fromkeys(["token-classification", "text-classification", "summarization", "translation",
                     "question-answering", "conversational", "text-generation", "text2text-generation",
                     "sentence-similarity", "tabular-classification"], "text"),
    **dict.fromkeys(["image-classification", "object-detection", "image-segmentation", "depth-estimation",
                     "image-to-text", "visual-question-answering", "document-question-answering",
                     "canny-control", "depth-control"], "vision"),
    **dict.fromkeys(["automatic-speech-recognition", "text-to-speech", "audio-classification",
                     "audio-to-audio"], "audio"),
    **dict.fromkeys(["text-to-image", "image-to-image", "image-editing", "canny-text-to-image",
                     "depth-text-to-image", "text-to-video"], "generation"),
}


def get_runner(task: str) -> Runner:
    """The local runner of a task type; TaskError when none ships."""
    module_name = _MODULE_OF.get(task)
    if module_name is None:
        raise TaskError(f"no local runner for task '{task}'")
    module = importlib.import_module(f"{__name__}.{module_name}")
    runner = getattr(module, "RUNNERS", {}).get(task)
    if runner is None:
        raise TaskError(f"no local runner for task '{task}'")
    return runner


def has_local_runner(task: str) -> bool:
    try:
        get_runner(task)
        return True
    except (TaskError, ImportError):
        return False
