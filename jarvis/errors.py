"""Every error Jarvis raises on purpose, in one tree. Each message says what went wrong and what to do.

Callers branch on these types, never on message text or string codes. Anything outside the tree is
a bug: the controller logs it and ends the run with a generic "internal error" event.

JarvisError                     root; `except JarvisError` catches what Jarvis explains itself
├── ConfigError                 config.py: a bad config file, environment value or override. One
│                               line naming the key. CLI and `serve`: "error: bad config: ..."
│                               (exit 2); web app: a settings warning.
├── LLMError                    llm/: the LLM could not answer (key refused, model unknown, host
│                               unreachable, malformed reply). The run ends with a Failed event.
├── TemplateError               llm/prompts: a prompt template and the values given to it disagree
│                               (a bug in Jarvis, caught by the tests); logged as an internal error.
├── PlanError                   pipeline/plan_reading.py: the LLM's reply holds no usable plan; the
│                               controller answers directly and notes the repair in PlanReady.
├── CatalogError                catalog/: the catalog file is unusable, or a refresh failed. CLI:
│                               "error: ..." (exit 2; `catalog refresh` exits 1).
├── ResourceError               files/: a file or URL named in a request cannot be used (not in
│   │                           the session, refused address, too big, not the media it claims).
│   │                           Shown as the task's error, or a 400 from the HTTP API.
│   └── AddressRefused          outbound.py: a caller-chosen URL leads to an address this server
│                               may not contact (non-public, on a public deployment); never retried.
├── TaskError                   runners/: a task could not run on a model; shown as the task's
│   │                           error in the UI, the CLI and the API's task records.
│   ├── ExecutionError          execution/dispatch.py: every attempt (model, executor) failed;
│   │                           `attempts` holds each one for the task record.
│   ├── ModelSkippedError       execution/model_cache.py: the model failed to load a short while
│   │                           ago, so it is not tried again yet; the dispatcher moves on.
│   └── RemoteError             execution/remote.py: a call to Inference Providers failed.
│       ├── RemoteAccessError   no remote call can succeed in this session; the dispatcher stops
│       │   │                   trying remote models for the task:
│       │   ├── RemoteAuthError     the token was refused (401/403) or credits ran out (402)
│       │   ├── MissingTokenError   no Hugging Face token to call with
│       │   └── RemoteOfflineError  HF_HUB_OFFLINE is set and the call would go to the Hub
│       ├── TransientRemoteError    worth the same call again after `wait_hint` seconds:
│       │   ├── RateLimitedError    HTTP 429
│       │   └── ModelLoadingError   HTTP 503 (the model is loading or briefly unavailable)
│       ├── NotServedError      no provider serves this model for this task (404, no mapping)
│       ├── RemoteUnsupportedError  the task type has no remote service at all
│       ├── RemoteTimeoutError  no answer within remote.timeout
│       ├── RemoteBadRequestError   the service rejected the input (400/413/422)
│       ├── BadResponseError    the service answered something Jarvis cannot read
│       └── ServiceUnavailableError the service failed or cannot be reached (5xx, network)
├── StoreError                  conversations/: the conversation database cannot be opened or
│                               written; the web app says so once and serves without saving.
├── ApiError                    frontends/http/: a request the HTTP API refuses; carries the HTTP
│                               status, a machine-readable `code` and extra response headers.
└── InputError                  frontends/http/files.py: a media part of an API request cannot be
                                used; the API answers 400 "invalid_media".
"""
from __future__ import annotations

from jarvis.pipeline.records import Attempt


class JarvisError(Exception):
    """Root of the errors Jarvis raises on purpose; the message is meant for the user."""


class ConfigError(JarvisError):
    """One line: which key, what is wrong."""


class LLMError(JarvisError):
    """The LLM could not answer; the message says why and what to do."""


class TemplateError(JarvisError):
    """A prompt template has a placeholder without a value, or was given a value it has no place for."""


class PlanError(JarvisError):
    """The LLM's answer holds no usable plan; the message says what was wrong."""


class CatalogError(JarvisError):
    """The catalog file cannot be used (or refreshed); the message says which file and what to do."""


class ResourceError(JarvisError):
    """A resource named in a plan cannot be used; the message says why and what to do."""


class AddressRefused(ResourceError):
    """The outbound policy refused the address a caller-chosen URL leads to; the message names it and why."""


class TaskError(JarvisError):
    """A task could not run; the message tells the user what went wrong and what to do."""


class ExecutionError(TaskError):
    """Every attempt to run a task failed; `attempts` records each one for the task record."""

    def __init__(self, message: str, attempts: list[Attempt]):
        super().__init__(message)
        self.attempts = attempts


class ModelSkippedError(TaskError):
    """The model failed to load a short while ago and is skipped until that is forgotten."""


class RemoteError(TaskError):
    """A remote call failed; the subclass says what kind of failure it was."""


class RemoteAccessError(RemoteError):
    """Remote execution is unusable for this session: every other remote call would fail the same way."""


class RemoteAuthError(RemoteAccessError):
    """The Hugging Face token was refused (401/403) or has no credits left (402)."""


class MissingTokenError(RemoteAccessError):
    """A remote call needs a Hugging Face token and the session has none."""


class RemoteOfflineError(RemoteAccessError):
    """HF_HUB_OFFLINE is set, so the Hub's services cannot be reached."""


class TransientRemoteError(RemoteError):
    """A failure worth retrying after a pause; `wait_hint` is the server's suggested wait in seconds."""

    def __init__(self, message: str, wait_hint: float | None = None):
        super().__init__(message)
        self.wait_hint = wait_hint


class RateLimitedError(TransientRemoteError):
    """HTTP 429: too many requests."""


class ModelLoadingError(TransientRemoteError):
    """HTTP 503: the model is loading or the service is briefly unavailable."""


class NotServedError(RemoteError):
    """No Inference Provider serves this model for this task."""


class RemoteUnsupportedError(RemoteError):
    """The task type has no remote service at all."""


class RemoteTimeoutError(RemoteError):
    """The service did not answer within remote.timeout."""


class RemoteBadRequestError(RemoteError):
    """The service rejected the input (HTTP 400, 413 or 422)."""


class BadResponseError(RemoteError):
    """The service answered something Jarvis cannot read."""


class ServiceUnavailableError(RemoteError):
    """The inference service failed (5xx) or could not be reached."""


class StoreError(JarvisError):
    """The conversation database cannot be opened or written; the message names the file and what to do."""


class ApiError(JarvisError):
    """A request the API refuses: HTTP status, a message telling the caller what to fix, a code."""

    def __init__(self, status: int, message: str, code: str = "invalid_request_error",
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code
        self.headers: dict[str, str] = headers or {}


class InputError(JarvisError):
    """A media part of an API request cannot be used; the message tells the caller what to send instead."""
