"""`catalog refresh --spaces`: find Gradio Spaces that serve a task type and add them to the catalog.

For each task type: the Hub's Space search (HfApi.list_spaces) for MCP servers (the "mcp-server" tag
Gradio apps launched with mcp_server=True carry) matching the task's words, most liked first; each
running Gradio Space is then asked for its API (gradio_client's view_api) and kept when a named
endpoint takes the task's inputs in the registry's order (its other parameters have defaults) and
returns the task's output. The entry: {"id": "spaces/OWNER/NAME", "task", "space", "api_name",
"providers": [] (no Inference Provider runs a Space), "providers_checked": the date}. Entries the
file has that no search found are kept; a Space already listed for a task is looked at again.
"""
from __future__ import annotations

import datetime
import logging
from collections.abc import Callable, Iterable
from typing import Any

import httpx
from huggingface_hub import HfApi
from huggingface_hub.hf_api import ExpandSpaceProperty_T

from jarvis.catalog.entries import ModelInfo
from jarvis.runners.registry import TASK_TYPES
from jarvis.shorten import shorten

log = logging.getLogger(__name__)

MCP_TAG = "mcp-server"
# the words a Space's name uses for a task type, when not the task's own name
SEARCH = {"text-to-speech": "tts", "image-to-text": "caption", "visual-question-answering": "vqa",
          "document-question-answering": "document", "automatic-speech-recognition": "whisper",
          "depth-estimation": "depth", "image-segmentation": "segment", "object-detection": "detection",
          "text-to-video": "video", "image-editing": "edit", "audio-to-audio": "audio"}
# searched by default: what no Inference Provider serves (issue 11: no text-to-speech, captioning or VQA)
DEFAULT_TASKS = [t.name for t in TASK_TYPES.values() if t.needs_model and not t.models_of
                 and (not t.remote or t.vlm or t.name == "text-to-speech")]
EXPAND: list[ExpandSpaceProperty_T] = ["likes", "sdk", "tags", "runtime", "cardData", "disabled"]
# gradio components that carry each resource type, as view_api names them
COMPONENTS = {"text": {"Textbox", "TextArea", "Text", "Markdown", "Label", "JSON", "HighlightedText"},
              "image": {"Image", "ImageEditor", "AnnotatedImage"}, "audio": {"Audio"}, "video": {"Video"}}
ApiOf = Callable[[str], dict[str, Any]]   # app URL -> view_api(return_format="dict")


def view_api(url: str, timeout: float = 30.0) -> dict[str, Any]:
    """A Gradio app's API description, read with gradio_client (no token: a public Space's API is public)."""
    from gradio_client import Client
    client = Client(url, token=False, verbose=False, httpx_kwargs={"timeout": httpx.Timeout(timeout)})
    try:
        api: dict[str, Any] = client.view_api(return_format="dict", print_info=False)
        return api
    finally:
        client.close()


def matching_endpoint(api: dict[str, Any], task: str) -> str | None:
    """The first named endpoint that takes the task's inputs in the registry's order and returns its output."""
    spec = TASK_TYPES[task]
    for name, endpoint in (api.get("named_endpoints") or {}).items():
        params = endpoint.get("parameters") or []
        required = [p for p in params if not p.get("parameter_has_default")]
        if len(required) != len(spec.inputs) or params[:len(required)] != required:
            continue          # the task's inputs must come first, everything else optional
        if not all(p.get("component") in COMPONENTS[rtype] for p, rtype in zip(required, spec.inputs)):
            continue
        if any(r.get("component") in COMPONENTS[spec.outputs[0]] for r in endpoint.get("returns") or []):
            return str(name)
    return None


def search_task(api: HfApi, task: str, per_task: int, api_of: ApiOf = view_api,
                progress: Callable[[str], None] = lambda line: None) -> list[ModelInfo]:
    """Up to `per_task` running MCP-capable Gradio Spaces whose API serves `task`, most liked first."""
    words = SEARCH.get(task, task)
    today = datetime.date.today().isoformat()
    found: list[ModelInfo] = []
    for info in api.list_spaces(filter=MCP_TAG, search=words, sort="likes", limit=max(per_task * 4, 10),
                                expand=EXPAND):
        if len(found) >= per_task:
            break
        stage = info.runtime.stage if info.runtime is not None else None
        if info.sdk != "gradio" or info.disabled or stage not in (None, "RUNNING", "SLEEPING"):
            continue
        try:
            host = api.space_info(info.id).host
            endpoint = matching_endpoint(api_of(str(host)), task) if host else None
        except Exception as exc:      # a Space that is down or odd must not sink the search
            progress(f"{task}: {info.id}: could not read its API ({shorten(exc, 120) or type(exc).__name__})")
            continue
        if endpoint is None:
            progress(f"{task}: {info.id}: no endpoint takes {', '.join(TASK_TYPES[task].inputs)} and returns "
                     f"{TASK_TYPES[task].outputs[0]}")
            continue
        card = info.card_data
        about = str(getattr(card, "short_description", "") or getattr(card, "title", "") or "") if card else ""
        hardware = info.runtime.hardware if info.runtime is not None else None
        tags = ["gradio-space", MCP_TAG] + (["zerogpu"] if str(hardware or "").startswith("zero") else [])
        found.append(ModelInfo(id=f"spaces/{info.id}", task=task, likes=info.likes, tags=tags,
                               description=shorten(f"Gradio Space {info.id}: {about}".rstrip(": "), 300),
                               providers_known=True, providers_checked=today, space=info.id, api_name=endpoint))
        progress(f"{task}: {info.id} {endpoint}")
    return found


def merge(entries: list[ModelInfo], fresh: Iterable[ModelInfo]) -> list[ModelInfo]:
    """The catalog with the Spaces found: one entry per (task, Space), the new one in place of the old."""
    new = {(m.task, m.id): m for m in fresh}
    out = [new.pop((m.task, m.id), m) if m.space else m for m in entries]
    return out + list(new.values())
