"""Remote execution on Hugging Face Inference Providers through huggingface_hub.InferenceClient.

Where a call goes: a dedicated endpoint configured for the model or the task type, else the
self-hosted gateway `remote.base_url` ({base}/models/{model_id}, hf-inference wire format), else
the Hub's router with `remote.provider`. 429 and 503 (model loading) are retried with backoff;
every other failure becomes a RemoteError subclass (jarvis.errors) that tells the dispatcher what to do next.
"""
from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlparse

from huggingface_hub import constants
from huggingface_hub.errors import HfHubHTTPError, InferenceTimeoutError, OfflineModeIsEnabled, TextGenerationError

from jarvis.config import RemoteConfig
from jarvis.errors import (
    BadResponseError,
    MissingTokenError,
    ModelLoadingError,
    NotServedError,
    RateLimitedError,
    RemoteAuthError,
    RemoteBadRequestError,
    RemoteError,
    RemoteOfflineError,
    RemoteTimeoutError,
    RemoteUnsupportedError,
    ServiceUnavailableError,
    TaskError,
    TransientRemoteError,
)
from jarvis.execution.availability import Availability
from jarvis.hub_internals import HubHttpClient, HubTimeout, HubTransportError, RoutedInferenceClient
from jarvis.runners.base import RunContext, TaskInputs, TaskOutputs
from jarvis.runners.registry import TASK_TYPES
from jarvis.runners.remote.adapters import RemoteCall

log = logging.getLogger(__name__)

HUB_HOSTS = ("huggingface.co", "hf.co")
MAX_WAIT = 30.0          # longest pause honoured from Retry-After / estimated_time


def _is_hub_url(url: str) -> bool:
    host = (urlparse(url).hostname or "").lower()
    return any(host == h or host.endswith("." + h) for h in HUB_HOSTS)


def _offline_guard(request: Any) -> None:
    if constants.is_offline_mode() and _is_hub_url(str(request.url)):
        raise OfflineModeIsEnabled(f"Cannot reach {request.url.host}: offline mode is enabled (HF_HUB_OFFLINE).")


class RemoteExecutor:
    """Runs a task on a model served remotely. It carries one session's token: the controller
    creates one per run and closes it at the run's end."""
    name = "remote"

    def __init__(self, config: RemoteConfig, token: str, availability: Availability | None = None,
                 backoff: float = 0.5):
        self.config = config
        self._token = (token or "").strip()
        self.availability = availability
        self.backoff = backoff
        self._http: HubHttpClient | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RemoteExecutor(provider={self.config.provider!r}, base_url={self.config.base_url!r})"

    # -- where a call goes ---------------------------------------------------------------
    def target(self, task: str, model_id: str) -> tuple[str, str | None]:
        """(model id or URL, provider) for a call; a URL means a configured endpoint or the gateway."""
        endpoints = self.config.endpoints or {}
        url = endpoints.get(model_id) or endpoints.get(task)
        if url:
            return str(url), None
        if self.config.base_url:
            return f"{self.config.base_url.rstrip('/')}/models/{model_id}", None
        return model_id, (self.config.provider or "auto")

    def is_configured(self, task: str, model_id: str) -> bool:
        """True when calls for this model go to a configured URL (no Hub look-up needed)."""
        return self.target(task, model_id)[1] is None

    def client(self, target: str, provider: str | None) -> Any:
        """A client for one call: model=URL for endpoints/gateway, provider routing otherwise."""
        with self._lock:
            if self._http is None:
                self._http = HubHttpClient(follow_redirects=True, timeout=None,
                                           event_hooks={"request": [_offline_guard]})
            http = self._http
        is_url = target.startswith(("http://", "https://"))
        if not self._token and not is_url:
            raise MissingTokenError("remote execution needs a Hugging Face token: set HF_TOKEN (a token with the "
                                    "'Make calls to Inference Providers' permission) or sign in, or use local mode")
        # without a session token, send none: never fall back to a token saved on this machine
        headers = {} if self._token else {"authorization": None}
        return RoutedInferenceClient(model=target if is_url else None, provider=None if is_url else provider,
                                     token=self._token or None, timeout=self.config.timeout, headers=headers,
                                     http=http)

    # -- the Executor contract -------------------------------------------------------------
    def can_run(self, task: str) -> bool:
        spec = TASK_TYPES.get(task)
        return spec is not None and spec.remote

    def ready(self, task: str, model_id: str) -> bool:
        """Nothing is fetched here first: a served model answers the first call."""
        return True

    def batches(self, task: str) -> bool:
        return False   # Inference Providers take one input per request

    def run_batch(self, task: str, model_id: str, batch: list[TaskInputs], ctx: RunContext) -> list[TaskOutputs]:
        """One call per input, in order."""
        return [self.run(task, model_id, inputs, ctx) for inputs in batch]

    def run(self, task: str, model_id: str, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        """Run one task on model_id remotely; 429/503 retried with backoff. Each failed call that did
        not end the run (a retry, a switch to the vision-language model) is told to ctx.on_retry."""
        spec = TASK_TYPES.get(task)
        if spec is None or spec.adapter is None:
            raise RemoteUnsupportedError(f"'{task}' cannot run remotely: Inference Providers have no service for it; "
                                         "use local or hybrid mode")
        adapter, vlm_task = spec.adapter, spec.vlm
        if vlm_task and self._known_unserved(task, model_id):
            return self._run_vlm(task, model_id, inputs, ctx, reason="no provider serves it")
        target, provider = self.target(task, model_id)
        where = "the configured endpoint" if provider is None else f"Inference Providers ({provider})"
        ctx.progress(f"calling {model_id} on {where}")
        try:
            return self._with_retries(task, model_id, ctx, lambda: adapter(
                RemoteCall(self.client(target, provider), model_id, is_url=provider is None), inputs, ctx))
        except RemoteError as exc:
            if vlm_task and isinstance(exc, (NotServedError, RemoteUnsupportedError)) and self.config.vlm_model:
                ctx.on_retry(f"{exc}; asking the vision-language model {self.config.vlm_model} instead", 0.0,
                             model_id)
                return self._run_vlm(task, model_id, inputs, ctx, reason=str(exc))
            raise

    def close(self) -> None:
        """Close the HTTP connections (a later call would open new ones)."""
        with self._lock:
            http, self._http = self._http, None
        if http is not None:
            http.close()

    def _run_vlm(self, task: str, model_id: str, inputs: TaskInputs, ctx: RunContext, reason: str) -> TaskOutputs:
        vlm, adapter = self.config.vlm_model, TASK_TYPES[task].vlm_adapter
        if not vlm or adapter is None:
            raise NotServedError(f"{model_id} is not served remotely for {task} and remote.vlm_model is empty")
        endpoints = self.config.endpoints or {}
        if endpoints.get(vlm):
            target, provider = str(endpoints[vlm]), None
        elif self.config.base_url:
            target, provider = f"{self.config.base_url.rstrip('/')}/models/{vlm}", None
        else:
            target, provider = vlm, (self.config.provider or "auto")
        ctx.progress(f"{model_id} is not served for {task}; asking the vision-language model {vlm}")
        outputs = self._with_retries(task, vlm, ctx, lambda: adapter(
            RemoteCall(self.client(target, provider), vlm, is_url=provider is None), inputs, ctx))
        outputs.detail = {**(outputs.detail or {}), "served_by": vlm, "requested_model": model_id,
                          "note": f"served by VLM {vlm} through chat completion ({model_id}: {reason[:200]})"}
        return outputs

    def _known_unserved(self, task: str, model_id: str) -> bool:
        if self.availability is None or self.is_configured(task, model_id):
            return False
        return self.availability.serves(model_id, task, timeout=min(5.0, self.config.timeout)) is False

    def _with_retries(self, task: str, model_id: str, ctx: RunContext, fn: Callable[[], TaskOutputs]) -> TaskOutputs:
        retries = max(0, int(self.config.max_retries))
        deadline = time.monotonic() + self.config.timeout * (retries + 1) + MAX_WAIT
        for attempt in range(retries + 1):
            started = time.monotonic()
            try:
                return fn()
            except RemoteError as exc:
                err = exc
            except Exception as exc:
                err = self.classify(exc, task, model_id)
                err.__cause__ = exc
            if not isinstance(err, TransientRemoteError) or attempt >= retries:
                raise err
            wait = self._wait(attempt, err.wait_hint)
            if time.monotonic() + wait >= deadline:
                raise err
            log.info("%s: %s; retrying in %.1fs", model_id, type(err).__name__, wait)
            ctx.progress(f"{model_id}: {err} - retrying in {wait:.1f}s")
            ctx.on_retry(f"{err} (retried after {wait:.1f}s)", time.monotonic() - started, model_id)
            time.sleep(wait)
        raise ServiceUnavailableError(f"{model_id} failed after {retries} retries")  # pragma: no cover

    def _wait(self, attempt: int, hint: float | None) -> float:
        cap = min(MAX_WAIT, float(self.config.timeout))
        if hint is not None and hint >= 0:
            return min(hint, cap)
        return min(self.backoff * (2.0 ** attempt) * (1 + 0.1 * random.random()), cap)

    # -- errors --------------------------------------------------------------------------
    def _scrub(self, text: str) -> str:
        text = str(text)
        if self._token:
            text = text.replace(self._token, "***")
        return text

    def classify(self, exc: BaseException, task: str, model_id: str) -> RemoteError:
        """Turn any failure of a call into a RemoteError with a message a user can act on."""
        timeout = self.config.timeout
        if isinstance(exc, TextGenerationError) and isinstance(exc.__cause__, HfHubHTTPError):
            exc = exc.__cause__  # TGI's typed error: the HTTP status says more
        if isinstance(exc, (InferenceTimeoutError, HubTimeout, TimeoutError)):
            return RemoteTimeoutError(f"{model_id} did not answer within {timeout:g}s (remote.timeout); "
                                      "try again later or pick another model")
        if isinstance(exc, OfflineModeIsEnabled):
            return RemoteOfflineError("HF_HUB_OFFLINE is set, so Inference Providers cannot be reached; unset it, "
                                      "or set remote.base_url (JARVIS_REMOTE_BASE_URL) to a self-hosted gateway")
        if isinstance(exc, HfHubHTTPError) and getattr(exc, "response", None) is not None:
            return self._http_error(exc, task, model_id)
        if isinstance(exc, HubTransportError):
            return ServiceUnavailableError(f"could not reach the inference service for {model_id} "
                                           f"({type(exc).__name__}); check the network or remote.base_url")
        if isinstance(exc, ValueError) and "not supported" in str(exc).lower() and "provider" in str(exc).lower():
            return NotServedError(f"{model_id} is not served for {task} by provider {self.config.provider}: "
                                  f"{self._scrub(str(exc))[:200]}")
        if isinstance(exc, ValueError) and "no provider mapping" in str(exc).lower():
            return NotServedError(f"no Inference Provider serves {model_id}; pick another model or run it locally")
        if isinstance(exc, StopIteration):  # the library's "auto" pick over an empty provider mapping
            return NotServedError(f"no Inference Provider serves {model_id}; pick another model or run it locally")
        if isinstance(exc, TaskError):
            return BadResponseError(self._scrub(str(exc)))
        reason = self._scrub(str(exc)).splitlines()[0][:200] if str(exc) else type(exc).__name__
        return BadResponseError(f"{model_id} returned a response Jarvis could not read ({type(exc).__name__}: "
                                f"{reason}); try another model")

    def _http_error(self, exc: Any, task: str, model_id: str) -> RemoteError:
        response = exc.response
        status = response.status_code
        server = self._scrub(getattr(exc, "server_message", None) or "").strip().splitlines()
        said = f": {server[0][:200]}" if server else ""
        if status in (401, 403):
            return RemoteAuthError(
                f"the Hugging Face token was refused (HTTP {status}) calling {model_id}: check that HF_TOKEN is "
                "valid, allowed to 'Make calls to Inference Providers', and has access to this model")
        if status == 402:
            return RemoteAuthError(f"Inference Providers refused {model_id} (HTTP 402, credits exhausted): add credits "
                                   "or a PRO subscription, or run locally")
        if status == 404:
            return NotServedError(f"{model_id} is not served for {task} (HTTP 404){said}; pick another model "
                                  "or run it locally")
        if status == 429:
            return RateLimitedError(f"rate limited calling {model_id} (HTTP 429); wait a moment or check your "
                                    "Inference Providers quota", _retry_after(response))
        if status == 503:
            hint = _estimated_time(response)
            if hint is None:
                hint = _retry_after(response)
            loading = "loading" in " ".join(server).lower()
            return ModelLoadingError(f"{model_id} is {'still loading' if loading else 'unavailable'} (HTTP 503){said}; "
                                     "try again in a minute or pick another model", hint)
        if status in (400, 413, 422):
            return RemoteBadRequestError(f"{model_id} rejected the input (HTTP {status}){said}")
        return ServiceUnavailableError(f"the inference service failed for {model_id} (HTTP {status}){said}")


def _retry_after(response: Any) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def _estimated_time(response: Any) -> float | None:
    try:
        data = json.loads(response.content or b"{}")
    except (ValueError, UnicodeDecodeError):
        return None
    value = data.get("estimated_time") if isinstance(data, dict) else None
    return float(value) if isinstance(value, (int, float)) and value >= 0 else None
