"""Gradio Spaces as executors: a catalog entry naming a Space runs there, through gradio_client.

- The entry: {"id", "task", "space": Space id (owner/name) or the URL of any Gradio app, "api_name":
  the endpoint, "params"?: the endpoint's other arguments by name}. The endpoint takes the task
  type's inputs in the registry's order (files sent with handle_file) and returns a file or text;
  of several outputs, the first of the task's output type is taken.
- The user's HF token goes only to Spaces on Hugging Face (jarvis.credentials.space_token), where it
  carries the user's ZeroGPU quota. Any other app gets no token at all: not even the one saved on
  this machine or in HF_TOKEN, which gradio_client sends to whatever it connects to when told none.
- As for Inference Providers: one call's time is bounded by remote.timeout; 429, 503 and a Space
  still starting are retried (remote.max_retries, with backoff, each retry told to ctx.on_retry);
  every other failure is a RemoteError subclass the dispatcher records before the next candidate.
- One executor per run (it holds the session's token); one gradio_client Client per Space in it,
  since connecting costs the app's config and API description; `close()` ends them.
"""
from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from huggingface_hub.errors import OfflineModeIsEnabled

from jarvis.catalog.entries import ModelInfo
from jarvis.config import RemoteConfig
from jarvis.credentials import space_token
from jarvis.errors import (
    BadResponseError,
    ModelLoadingError,
    NotServedError,
    RateLimitedError,
    RemoteAuthError,
    RemoteError,
    RemoteOfflineError,
    RemoteTimeoutError,
    ServiceUnavailableError,
    TaskError,
    TransientRemoteError,
)
from jarvis.files.content_checks import sniff_bytes
from jarvis.files.media_types import media_type
from jarvis.runners.base import RunContext, TaskInputs, TaskOutputs
from jarvis.runners.registry import TASK_TYPES

log = logging.getLogger(__name__)

POLL = 0.05        # seconds between looks at a call in flight (cancel, deadline, queue position)
MAX_WAIT = 30.0    # longest pause between retries
# where a Space's text answer goes in the task's detail, as the local and remote runners put it
TEXT_DETAIL = {"image-to-text": "caption", "summarization": "summary", "translation": "translation",
               "conversational": "reply", "text-generation": "continuation", "text2text-generation": "generated_text"}
ANSWERS = {"visual-question-answering", "document-question-answering"}


@dataclass(frozen=True)
class SpaceRoute:
    """Where one catalog entry runs: the Space (id or app URL), its endpoint, the endpoint's other arguments."""
    space: str
    api_name: str
    params: Mapping[str, Any] = field(default_factory=dict)


def space_routes(models: Iterable[ModelInfo]) -> dict[tuple[str, str], SpaceRoute]:
    """(task type, id) -> route, for the catalog entries a Space runs."""
    return {(m.task, m.id): SpaceRoute(m.space, m.api_name or "/predict", dict(m.params))
            for m in models if m.space}


class SpaceExecutor:
    """Runs catalog entries on their Gradio Spaces for one run (it carries the session's HF token)."""
    name = "space"

    def __init__(self, routes: Mapping[tuple[str, str], SpaceRoute], config: RemoteConfig, token: str,
                 backoff: float = 0.5):
        self.routes = dict(routes)
        self.config = config
        self._token = (token or "").strip()
        self.backoff = backoff
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._downloads: Path | None = None     # where gradio_client puts the files Spaces return

    def __repr__(self) -> str:
        return f"SpaceExecutor({len(self.routes)} entries)"

    # -- the Executor contract ---------------------------------------------------------------
    def serves(self, task: str, model_id: str) -> bool:
        return (task, model_id) in self.routes

    def can_run(self, task: str) -> bool:
        return any(t == task for t, _ in self.routes)

    def ready(self, task: str, model_id: str) -> bool:
        return True      # nothing to fetch first: the Space answers the call (or queues it)

    def batches(self, task: str) -> bool:
        return False

    def run_batch(self, task: str, model_id: str, batch: list[TaskInputs], ctx: RunContext) -> list[TaskOutputs]:
        return [self.run(task, model_id, inputs, ctx) for inputs in batch]

    def run(self, task: str, model_id: str, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        route = self.routes.get((task, model_id))
        if route is None:
            raise NotServedError(f"{model_id} is not a Gradio Space entry for {task} in the catalog")
        args = _arguments(task, inputs)
        ctx.progress(f"calling the Space {route.space} ({route.api_name})")
        retries = max(0, int(self.config.max_retries))
        for attempt in range(retries + 1):
            started = time.monotonic()
            try:
                return self._outputs(task, route, self._call(route, args, ctx), ctx)
            except TaskError:
                raise                 # cancelled, timed out, or an answer Jarvis cannot use: said already
            except Exception as exc:
                err = self.classify(exc, route)
                err.__cause__ = exc
            if not isinstance(err, TransientRemoteError) or attempt >= retries or ctx.cancel.is_set():
                raise err
            wait_s = min(err.wait_hint if err.wait_hint is not None else self.backoff * 2.0 ** attempt, MAX_WAIT)
            ctx.progress(f"{route.space}: {err} - retrying in {wait_s:.1f}s")
            ctx.on_retry(f"{err} (retried after {wait_s:.1f}s)", time.monotonic() - started, model_id)
            ctx.cancel.wait(wait_s)
        raise ServiceUnavailableError(f"the Space {route.space} failed after {retries} retries")  # pragma: no cover

    def close(self) -> None:
        """End the Spaces' connections (their heartbeat streams) and delete the downloads."""
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
            downloads, self._downloads = self._downloads, None
        for client in clients:
            try:
                client.close()
            except Exception:
                log.debug("closing a Space client failed", exc_info=True)
        if downloads is not None:
            shutil.rmtree(downloads, ignore_errors=True)

    # -- a call ------------------------------------------------------------------------------
    def _client(self, space: str) -> Any:
        """The connected client of a Space (made at its first call in this run; connecting reads the
        app's config over the network, so outside the lock: a slow Space holds up no other)."""
        from gradio_client import Client
        with self._lock:
            client = self._clients.get(space)
            if client is not None:
                return client
            if self._downloads is None:
                self._downloads = Path(tempfile.mkdtemp(prefix="jarvis-spaces-"))
            downloads = self._downloads
        token = space_token(space, self._token)
        # False, not None: gradio_client would send the machine's saved token or HF_TOKEN
        made = Client(space, token=token or False, verbose=False, download_files=str(downloads),
                      httpx_kwargs={"timeout": httpx.Timeout(self.config.timeout)})
        with self._lock:
            client = self._clients.setdefault(space, made)
        if client is not made:      # another task of this run connected first
            made.close()
        return client

    def _call(self, route: SpaceRoute, args: list[Any], ctx: RunContext) -> Any:
        """The endpoint's result, watched until it comes: stopped when the run is, bounded by remote.timeout."""
        job = self._client(route.space).submit(*args, api_name=route.api_name, **route.params)
        deadline = time.monotonic() + self.config.timeout
        told = ""
        while not wait([job.future], timeout=POLL).done:
            if ctx.cancel.is_set():
                job.cancel()
                ctx.raise_if_cancelled()
            if time.monotonic() > deadline:
                job.cancel()
                raise RemoteTimeoutError(f"the Space {route.space} did not answer within {self.config.timeout:g}s "
                                         "(remote.timeout); try again later or pick another model")
            note = _queue_note(job.status())
            if note and note != told:
                ctx.progress(note)
                told = note
        return job.result()

    def _outputs(self, task: str, route: SpaceRoute, result: Any, ctx: RunContext) -> TaskOutputs:
        """The task's output from the endpoint's result (several outputs: the first of the right type)."""
        wanted = TASK_TYPES[task].outputs[0]
        values = list(result) if isinstance(result, tuple) else [result]
        detail: dict[str, Any] = {"space": route.space, "api_name": route.api_name}
        if wanted == "text":
            for value in values:
                if isinstance(value, dict) and "label" in value:     # a gr.Label
                    labels = [{"label": c.get("label"), "score": c.get("confidence")}
                              for c in value.get("confidences") or [] if isinstance(c, dict)]
                    return TaskOutputs(text=str(value["label"]), detail={**detail, "labels": labels})
                if isinstance(value, str) and not Path(value).is_file():
                    return TaskOutputs(text=value, detail={**detail, **_text_detail(task, value)})
        else:
            for value in values:
                path = _file_of(value)
                if path is None:
                    continue
                suffix = path.suffix.lower() if media_type(path.name) == wanted else _sniffed(path, wanted)
                if suffix:
                    target = ctx.new_file(task, suffix)
                    shutil.copyfile(path, target)
                    out = TaskOutputs(detail=detail)
                    setattr(out, wanted, target)
                    return out
        shown = ", ".join(type(v).__name__ for v in values)
        raise BadResponseError(f"the Space {route.space} ({route.api_name}) returned no {wanted} (it returned: "
                               f"{shown}); check the catalog entry against the Space's view_api()")

    # -- errors ------------------------------------------------------------------------------
    def classify(self, exc: BaseException, route: SpaceRoute) -> RemoteError:
        """Any failure of a call as a RemoteError whose message says what to do."""
        from gradio_client.exceptions import AppError, AuthenticationError
        from gradio_client.utils import TooManyRequestsError
        space = route.space
        said = self._scrub(str(exc)).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, AppError):
            if "quota" in said.lower():
                return RemoteAuthError(f"the Space {space} refused the call ({said}); ZeroGPU quota counts per "
                                       "Hugging Face account: sign in or set an HF token, or try again later")
            return ServiceUnavailableError(f"the Space {space} failed: {said}")
        if isinstance(exc, OfflineModeIsEnabled):
            return RemoteOfflineError(f"HF_HUB_OFFLINE is set, so the Space {space} cannot be looked up on the Hub; "
                                      "unset it, or name the Space by its URL (https://OWNER-NAME.hf.space)")
        status = exc.response.status_code if isinstance(exc, httpx.HTTPStatusError) else None
        if isinstance(exc, AuthenticationError) or status in (401, 403):
            return RemoteAuthError(f"the Space {space} refused the call ({said}): it may be private or gated; "
                                   "check the HF token")
        if isinstance(exc, TooManyRequestsError) or status == 429:
            return RateLimitedError(f"the Space {space} is rate limiting calls (HTTP 429); wait a moment")
        if status in (502, 503, 504):
            return ModelLoadingError(f"the Space {space} is starting or busy (HTTP {status}); try again in a minute")
        if status == 404 or "cannot find a function with `api_name`" in said.lower():
            return NotServedError(f"the Space {space} has no endpoint {route.api_name} ({said}); check the catalog "
                                  "entry against the Space's view_api()")
        if isinstance(exc, (httpx.TimeoutException, TimeoutError)):
            return RemoteTimeoutError(f"the Space {space} did not answer in time ({said}); try again later")
        if isinstance(exc, httpx.TransportError) or "could not fetch config" in said.lower():
            return ServiceUnavailableError(f"could not reach the Space {space} ({said}); check that it is running")
        if "invalid state" in said.lower():
            return ServiceUnavailableError(f"the Space {space} is not running ({said})")
        return BadResponseError(f"the Space {space} answered something Jarvis could not use ({type(exc).__name__}: "
                                f"{said})")

    def _scrub(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text


def _arguments(task: str, inputs: TaskInputs) -> list[Any]:
    """The task's inputs in the registry's order, files as gradio_client's file values."""
    from gradio_client import handle_file
    spec = TASK_TYPES[task]
    used: dict[str, int] = {}
    args: list[Any] = []
    for rtype in spec.inputs:
        index = used.get(rtype, 0)
        used[rtype] = index + 1
        values: list[Any] = getattr(inputs, rtype)
        if index >= len(values):
            raise TaskError(f"{task} needs {spec.count(rtype)} {rtype} input(s) and got {len(values)}")
        args.append(values[index] if rtype == "text" else handle_file(str(values[index])))
    return args


def _text_detail(task: str, text: str) -> dict[str, Any]:
    if task in ANSWERS:
        return {"answers": [{"answer": text, "score": None}]}
    key = TEXT_DETAIL.get(task)
    return {key: text} if key else {}


def _file_of(value: Any) -> Path | None:
    """The downloaded file of an output value (a path, or gradio's file dict), when there is one."""
    if isinstance(value, dict):
        value = value.get("path") or value.get("value")
    if isinstance(value, str) and Path(value).is_file():
        return Path(value)
    return None


def _sniffed(path: Path, wanted: str) -> str | None:
    """The suffix the file's leading bytes announce, when it is the wanted type."""
    with path.open("rb") as f:
        suffix = sniff_bytes(f.read(512))
    return suffix if suffix and media_type("x" + suffix) == wanted else None


def _queue_note(status: Any) -> str:
    """A progress line for the Space's queue (a ZeroGPU Space may hold a call for a while)."""
    code = getattr(getattr(status, "code", None), "value", "")
    if code == "IN_QUEUE" and status.rank is not None:
        eta = f", about {status.eta:.0f}s" if status.eta else ""
        return f"waiting in the Space's queue: {status.rank} ahead{eta}"
    return "the Space is working on it" if code in ("PROCESSING", "PROGRESS", "ITERATING") else ""

