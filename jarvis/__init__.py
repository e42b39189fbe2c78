"""Jarvis: an LLM plans a request into tasks, picks Hugging Face models, runs them, and answers (HuggingGPT).

The folder tree follows the data flow, so the architecture is visible before any code is read:

    errors.py config.py events.py session.py   shared vocabulary: one error tree, typed config, the
                                               controller's events, one chat (history, files, keys)
    pipeline/    the four stages: controller -> plan_reading (+ lenient_json, plan_checks; the Plan and
                 Task objects in plan.py) -> selection -> scheduler (+ inputs) -> respond; records.py
                 holds TaskRecord / Attempt / RunResult, which travel in the events
    llm/         the LLM client (openai SDK: OpenAI, Azure, any compatible server) and prompts/ as text files
    catalog/     ModelInfo + Catalog (entries), eligibility from architecture facts, card text, refresh
    execution/   the Executor protocol; dispatch (attempt plan per mode, fallbacks); local executor and its
                 process-wide model cache; remote (Inference Providers) and which models they serve
    runners/     registry.py declares every task type once; local/ runners (transformers, diffusers),
                 remote/ adapters (InferenceClient calls), media/ (image, audio, video files)
    files/       a session's store, media types, content checks, the guarded URL fetcher
    frontends/   cli.py, web/ (Gradio app, renderer, sessions, credentials), http/ (HuggingGPT and
                 OpenAI-compatible routes, auth, files)

Where this departs from the design's target layout, and why:
- `credentials.py`, `outbound.py`, `hub_internals.py` and `shorten.py` sit at the top: the credential
  policy is shared by the web app, the HTTP API and config, the outbound policy (which addresses a
  caller-chosen URL may reach) by the LLM client, the media fetcher and the HTTP API; every private
  huggingface_hub use is kept in one module so an upstream change breaks one test, not many call
  sites; `shorten` is used by catalog, files and front ends alike.
- The LLM is one client class, not a backend protocol yet: only the OpenAI-compatible backend exists;
  tests drive it over real HTTP (tests/fakes/llm_server.py) or replace it with tests/fakes/fake_llm.py.
- Ray (execution/ray/: local models on Ray Serve replicas) is one more `execution.executor.Executor`;
  `execution.local_slots.local_executor` picks it or the in-process one from `local.backend`.
- `openai` (about 0.3 s) and `skops` (which imports torch through scikit-learn) are imported where
  used, like torch, transformers, diffusers, av and gradio, so the web app and the CLI start fast.

The public surface below is what a program embedding Jarvis uses; everything else may move.
"""
from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jarvis.catalog.entries import Catalog, ModelInfo
    from jarvis.config import Config, load_config
    from jarvis.errors import JarvisError
    from jarvis.events import (
        AnswerDelta,
        Done,
        Event,
        Failed,
        ModelChosen,
        PlanReady,
        TaskFailed,
        TaskFinished,
        TaskProgress,
        TaskSkipped,
        TaskStarted,
    )
    from jarvis.pipeline.controller import Controller
    from jarvis.pipeline.records import Attempt, RunResult, TaskRecord
    from jarvis.runners.registry import TASK_TYPES
    from jarvis.session import Session

# Each public name and the module defining it, imported on first use: `import jarvis` (and so
# `python -m jarvis --help`) does not load the controller, the catalog and their libraries.
_HOMES = {
    "Catalog": "jarvis.catalog.entries", "ModelInfo": "jarvis.catalog.entries",
    "Config": "jarvis.config", "load_config": "jarvis.config", "JarvisError": "jarvis.errors",
    **dict.fromkeys(("AnswerDelta", "Done", "Event", "Failed", "ModelChosen", "PlanReady", "TaskFailed",
                     "TaskFinished", "TaskProgress", "TaskSkipped", "TaskStarted"), "jarvis.events"),
    "Controller": "jarvis.pipeline.controller", "Attempt": "jarvis.pipeline.records",
    "RunResult": "jarvis.pipeline.records", "TaskRecord": "jarvis.pipeline.records",
    "TASK_TYPES": "jarvis.runners.registry", "Session": "jarvis.session",
}

__version__ = "0.1.0"

__all__ = [
    "TASK_TYPES",
    "AnswerDelta",
    "Attempt",
    "Catalog",
    "Config",
    "Controller",
    "Done",
    "Event",
    "Failed",
    "JarvisError",
    "ModelChosen",
    "ModelInfo",
    "PlanReady",
    "RunResult",
    "Session",
    "TaskFailed",
    "TaskFinished",
    "TaskProgress",
    "TaskRecord",
    "TaskSkipped",
    "TaskStarted",
    "__version__",
    "load_config",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'jarvis' has no attribute {name!r}")
    value = getattr(import_module(home), name)
    globals()[name] = value   # later lookups find it directly
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
