"""Which routes serve each task type in an inference mode, from the task registry and the catalog.

Remotely a task type has up to three homes: Inference Providers (its registry entry has an adapter and
the catalog has a model not known to be unserved: no `providers` fact, or a provider in it), the
vision-language model (image-to-text, VQA and document QA asked of `remote.vlm_model` through chat
completion), and a Gradio Space that a catalog entry names. Locally: a runner that ships for it.
The planner is offered the task types some route serves in the mode, so a plan does not ask for what
cannot run; and a task type no route serves gets a message naming the modes and routes that would.
"""
from __future__ import annotations

from jarvis.catalog.entries import Catalog, ModelInfo
from jarvis.runners.registry import TASK_TYPES, TaskType

PROVIDERS, VLM, SPACE, LOCAL = "Inference Providers", "the vision-language model", "a Gradio Space", "locally"


def _entries(catalog: Catalog, spec: TaskType) -> list[ModelInfo]:
    """The catalog entries a task type's candidates come from (depth-control borrows depth estimators)."""
    wanted = spec.models_of or spec.name
    return [m for m in catalog if m.task == wanted]


def remote_routes(catalog: Catalog, task: str, vlm_model: str = "") -> list[str]:
    """The routes that serve `task` remotely, in the order they are tried (empty: none does)."""
    spec = TASK_TYPES[task]
    entries = _entries(catalog, spec)
    routes = []
    if spec.remote and (not spec.needs_model or any(m.remote and not m.space for m in entries)):
        routes.append(PROVIDERS)
    if spec.vlm and vlm_model and entries:
        routes.append(VLM)
    if any(m.space for m in entries):
        routes.append(SPACE)
    return routes


def routes(catalog: Catalog, task: str, mode: str, vlm_model: str = "") -> list[str]:
    """The routes that serve `task` in an inference mode (locally: a runner and a model it runs)."""
    spec = TASK_TYPES[task]
    local = mode != "remote" and spec.local and (not spec.needs_model or bool(catalog.candidates(task, 1, "local")))
    return ([LOCAL] if local else []) + (remote_routes(catalog, task, vlm_model) if mode != "local" else [])


def offered_task_types(catalog: Catalog, mode: str, vlm_model: str = "") -> list[TaskType]:
    """The task types a plan may use in this mode, in registry order: those a local runner ships for
    (local and hybrid mode, as before Spaces), and those a remote route serves (remote and hybrid)."""
    return [t for t in TASK_TYPES.values()
            if (mode != "remote" and t.local) or (mode != "local" and remote_routes(catalog, t.name, vlm_model))]


def candidates(catalog: Catalog, task: str, k: int, mode: str, vlm_model: str = "",
               budget_bytes: int | None = None, light_bytes: int | None = None) -> list[ModelInfo]:
    """The catalog's candidates in this mode (models over the local memory budget last, and before them,
    with `light_bytes`, those heavier than it: Catalog.candidates); in remote mode
    a task the vision-language model answers keeps its models that no provider serves (the VLM answers
    for them, and the record says so)."""
    found = catalog.candidates(task, k=k, mode=mode, budget_bytes=budget_bytes, light_bytes=light_bytes)
    spec = TASK_TYPES.get(task)
    if mode == "remote" and spec is not None and spec.vlm and vlm_model and len(found) < k:
        more = [m for m in _entries(catalog, spec) if not m.remote and m not in found]
        found += more[:k - len(found)]
    return found


def unserved_message(catalog: Catalog, task: str, mode: str, vlm_model: str = "") -> str:
    """Why a task type has no model in this mode, and which modes and routes would serve it."""
    spec = TASK_TYPES.get(task)
    if spec is None:
        return f"'{task}' is not a task type Jarvis knows"
    would = "; ".join(f"{m} mode would run it ({', '.join(r)})" for m in ("local", "hybrid", "remote")
                      if m != mode and (r := routes(catalog, task, m, vlm_model)))
    here = {"local": "no local runner or locally runnable model for it",
            "remote": ("no remote route: Inference Providers serve no catalog model of it"
                       + (", remote.vlm_model is empty" if spec.vlm and not vlm_model else "")
                       + " and no Gradio Space in the catalog runs it"),
            "hybrid": "neither a local model nor a remote route for it"}.get(mode, "")
    hint = would or "add a catalog entry for it (a model, or a Gradio Space with \"space\" and \"api_name\")"
    return f"no model available for {task} in {mode} mode ({here}); {hint}"
