"""Which Hub models the runners Jarvis ships can load, judged from metadata alone (library, tags, id,
config model_type) so the catalog never downloads a model to decide.

The facts per task type live in the task registry (TaskType.local_models, models_of, needs_model);
this module only reads them, with the rules about libraries that hold across task types.
"""
from __future__ import annotations

from collections.abc import Iterable

from jarvis.runners.registry import TASK_TYPES, LocalModels

# Names and tags of Stable Diffusion families other than 1.x, whose ControlNets SD 1.5 cannot use.
NOT_SD15 = ("sdxl", "-xl", "flux", "sd3", "sd-3", "kandinsky")
# Libraries whose models the transformers runners cannot load.
FOREIGN_LIBRARIES = {"flair", "spacy", "speechbrain", "espnet", "nemo", "pyannote", "keras", "tf-keras", "fastai",
                     "paddlenlp", "paddlepaddle", "asteroid", "fairseq", "sklearn", "timm", "open_clip",
                     "ultralyticsplus", "yolov5", "yolov8", "stable-baselines3", "adapter-transformers"}


def candidate_task(task: str) -> str:
    """The task whose models serve `task` as candidates (depth-control borrows depth-estimation's)."""
    spec = TASK_TYPES.get(task)
    return spec.models_of or task if spec is not None else task


def is_local_family(task: str, *, tags: Iterable[str] = (), model_id: str = "", library: str | None = None,
                    model_type: str | None = None) -> bool:
    """Whether the runners Jarvis ships can load this model for `task`: by library, config model_type or tags."""
    spec = TASK_TYPES.get(candidate_task(task))
    if spec is None or not spec.local or not spec.needs_model:
        return False
    facts = spec.local_models
    tag_set = {str(t) for t in tags}
    lib = (library or "").lower() or None
    name = model_id.lower()
    if facts.library == "diffusers":
        return lib in (None, "diffusers") and _diffusers_fits(facts, tag_set, name)
    if facts.library == "skops":
        return "skops" in tag_set  # the runner loads only skops files (pickles can run code on load)
    if lib is not None and lib not in ("transformers", "sentence-transformers"):
        return False
    if lib is None and tag_set & FOREIGN_LIBRARIES:
        return False
    if not facts.model_types:
        return True
    if model_type is not None:
        return model_type in facts.model_types
    return any(hint in name for hints in facts.model_types.values() for hint in hints)


def _diffusers_fits(facts: LocalModels, tags: set[str], name: str) -> bool:
    """A diffusers model the runner builds: by its pipeline-class tag, else by name/tag hints."""
    hinted = any(h in name or h in tags for h in facts.hints)
    if facts.sd15_controlnet:
        return hinted and not any(x in name or x in tags for x in NOT_SD15)
    tagged = {t.split(":", 1)[1] for t in tags if t.startswith("diffusers:")}
    return bool(tagged & facts.pipeline_classes) if tagged else hinted
