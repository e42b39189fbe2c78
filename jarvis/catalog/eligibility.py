"""Which models the runners Jarvis ships can load, judged from their architecture facts (library,
config model_type and architectures, diffusers pipeline class, weight format), never from their names.

The facts per task type live in the task registry (TaskType.local_models, models_of, needs_model);
this module only compares a model's facts (jarvis.catalog.facts) with them. A model whose facts are
unknown (a HuggingGPT-format entry, a repo without a readable config) is neither accepted nor
refused by `verdict`: local mode tries it when its task has a runner, and falls back if it fails.
"""
from __future__ import annotations

from collections.abc import Iterable

from jarvis.catalog.facts import ModelFacts
from jarvis.runners.registry import TASK_TYPES, LocalModels

TRANSFORMERS_LIBRARIES = frozenset({"transformers", "sentence-transformers"})
SKLEARN_LIBRARIES = frozenset({"sklearn", "scikit-learn", "skops"})
# Libraries whose models the transformers and diffusers runners cannot load.
FOREIGN_LIBRARIES = frozenset({
    "flair", "spacy", "speechbrain", "espnet", "nemo", "pyannote", "keras", "tf-keras", "fastai", "paddlenlp",
    "paddlepaddle", "asteroid", "fairseq", "timm", "open_clip", "ultralyticsplus", "yolov5", "yolov8",
    "stable-baselines3", "adapter-transformers", "gguf", "mlx", "onnx", "peft", "setfit", "span-marker",
})
LIBRARIES = TRANSFORMERS_LIBRARIES | SKLEARN_LIBRARIES | FOREIGN_LIBRARIES | {"diffusers"}
# Weight formats torch-based transformers 5 and diffusers load (TensorFlow, Flax, ONNX, GGUF: no).
TORCH_WEIGHTS = frozenset({"safetensors", "bin"})


def candidate_task(task: str) -> str:
    """The task whose models serve `task` as candidates (depth-control borrows depth-estimation's)."""
    spec = TASK_TYPES.get(task)
    return spec.models_of or task if spec is not None else task


def library_of(facts: ModelFacts, tags: Iterable[str] = ()) -> str | None:
    """The model's library: its recorded library_name, else a library the Hub lists among its tags."""
    if facts.library_name:
        return facts.library_name.lower()
    listed = {t.lower() for t in tags} & LIBRARIES
    for group in (TRANSFORMERS_LIBRARIES, {"diffusers"}, SKLEARN_LIBRARIES, FOREIGN_LIBRARIES):
        if listed & group:  # a transformers model that also ships ONNX weights is a transformers model
            return sorted(listed & group)[0]
    return None


def verdict(task: str, facts: ModelFacts, tags: Iterable[str] = ()) -> bool | None:
    """True: the facts match what the task's local runner loads; False: they rule it out;
    None: not enough facts to tell (the model is worth a try)."""
    spec = TASK_TYPES.get(candidate_task(task))
    if spec is None or not spec.local or not spec.needs_model:
        return False
    need = spec.local_models
    library = library_of(facts, tags)
    if need.library == "skops":  # the runner loads only skops files (pickles can run code on load)
        if facts.weight_format is not None:
            return facts.weight_format == "skops"
        return None if library is None or library in SKLEARN_LIBRARIES else False
    if facts.weight_format is not None and facts.weight_format not in TORCH_WEIGHTS:
        return False
    if need.library == "diffusers":
        return _diffusers_verdict(need, library, facts)
    if library is not None and library not in TRANSFORMERS_LIBRARIES:
        return False
    if facts.model_type is not None and need.model_types and facts.model_type not in need.model_types:
        return False
    if need.architectures and facts.architectures:
        return bool(need.architectures & set(facts.architectures))
    if need.architectures or need.model_types:
        return True if facts.model_type is not None and not need.architectures else None
    return True if library is not None or facts.model_type is not None else None


def _diffusers_verdict(need: LocalModels, library: str | None, facts: ModelFacts) -> bool | None:
    """A diffusers model: the pipeline (or model) class the runner builds, and the text width it needs."""
    if library is not None and library != "diffusers":
        return False
    if facts.pipeline_class is None:
        return None
    if facts.pipeline_class not in need.pipeline_classes:
        return False
    if need.cross_attention_dim is not None:
        if facts.cross_attention_dim is None:
            return None
        return facts.cross_attention_dim == need.cross_attention_dim
    return True


def runs_locally(task: str, facts: ModelFacts, tags: Iterable[str] = (), declared: bool | None = None) -> bool:
    """Whether local mode offers the model for `task`: not declared unrunnable (`declared` False), a
    local runner that needs a model, and facts that do not rule it out (unknown facts: tried)."""
    if declared is False:
        return False
    spec = TASK_TYPES.get(candidate_task(task))
    if spec is None or not spec.local or not spec.needs_model:
        return False
    return verdict(task, facts, tags) is not False
