"""Shared test helpers: configs pointing at a scripted LLM, running a request to its Done event."""
from __future__ import annotations

import json
import time
from typing import Any

from jarvis.config import load_config
from jarvis.events import Done, Failed


def config_for(llm_url: str, key: str = "sk-test", **sections):
    cfg = load_config(env={"OPENAI_BASE_URL": llm_url, "OPENAI_API_KEY": key})
    sections.setdefault("llm", {}).setdefault("max_retries", 0)
    return cfg.with_overrides(**sections)


def plan_json(*tasks) -> str:
    """plan_json(("summarization", {"text": "..."}), ("translation", {"text": "<GENERATED>-0"}, [0]))"""
    items = []
    for i, t in enumerate(tasks):
        name, args = t[0], t[1]
        dep = t[2] if len(t) > 2 else [-1]
        items.append({"task": name, "id": i, "dep": dep, "args": args})
    return json.dumps(items)


def run_to_end(controller, session, request, files=()):
    """(events, result or None, failure message or None)."""
    events = list(controller.run(session, request, files))
    done = next((e for e in events if isinstance(e, Done)), None)
    failed = next((e for e in events if isinstance(e, Failed)), None)
    return events, (done.result if done else None), (failed.message if failed else None)


# Where each task type's detail holds its result, locally and remotely alike (TaskOutputs.detail)
DETAIL_RESULT = {
    "text-classification": "labels", "image-classification": "labels", "audio-classification": "labels",
    "token-classification": "entities", "object-detection": "objects", "image-segmentation": "segments",
    "visual-question-answering": "answers", "document-question-answering": "answers",
    "question-answering": "answer", "sentence-similarity": "similarity", "summarization": "summary",
    "translation": "translation", "conversational": "reply", "text-generation": "continuation",
    "text2text-generation": "generated_text", "image-to-text": "caption",
}


def check_detail(task: str, detail) -> None:
    """A task's detail has the one shape both sides share: a JSON object with the task's result key."""
    json.dumps(detail)
    assert detail is None or isinstance(detail, dict), detail
    if task in DETAIL_RESULT:
        assert isinstance(detail, dict) and DETAIL_RESULT[task] in detail, (task, detail)


def drive_run(run: Any, limit: float = 5.0) -> list:
    """Step a DagRun (the streaming path) until it finishes; a run that never settles fails the test."""
    events: list = []
    deadline = time.perf_counter() + limit
    while not run.finished:
        assert time.perf_counter() < deadline, "the run did not finish"
        events.extend(run.step())
        run.wait(0.05)
    return events
