"""Every use of huggingface_hub's internals, in one module, each with the reason it is needed.

huggingface_hub may rename or drop any of these in a minor release; tests/test_hub_internals.py
checks each one (and the signature of the method we override) and fails naming the symbol.

- `httpx2`: the HTTP library huggingface_hub 2 ships with (not a dependency of ours: it comes with
  huggingface_hub). `get_session()` and `InferenceClient` raise its exceptions for network
  failures, so catching them needs its classes; the remote executor's own client is one too.
- `huggingface_hub.inference._common.MimeBytes`: bytes that carry their MIME type. InferenceClient
  sends raw image/audio inputs with that type as Content-Type; plain bytes would be guessed.
- `huggingface_hub.inference._common.RequestParameters` and `InferenceClient._inner_post`: one
  request as InferenceClient's task methods build it, and the method that posts it. We override
  `_inner_post` (RoutedInferenceClient, below) and call it for the one task InferenceClient has no
  hf-inference helper for (text-to-video on an endpoint URL).
- `huggingface_hub.inference._common.TASKS_EXPECTING_IMAGES`: the tasks whose answer is an image,
  for which `_inner_post` asks for image/png; the override keeps that behaviour.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal, overload

import httpx2
from huggingface_hub import InferenceClient
from huggingface_hub.errors import InferenceTimeoutError
from huggingface_hub.inference._common import TASKS_EXPECTING_IMAGES, MimeBytes, RequestParameters
from huggingface_hub.utils import hf_raise_for_status

__all__ = ["HubHTTPError", "HubHttpClient", "HubTimeout", "HubTransportError", "MimeBytes", "RequestParameters",
           "RoutedInferenceClient", "post_raw"]

# The exception classes of the HTTP library huggingface_hub uses, and its client class.
HubHttpClient = httpx2.Client
HubTimeout = httpx2.TimeoutException
HubTransportError = httpx2.TransportError
HubHTTPError = httpx2.HTTPError


class RoutedInferenceClient(InferenceClient):
    """InferenceClient whose non-streaming requests go through the given HTTP client.

    Why: huggingface_hub's shared session refuses every request under HF_HUB_OFFLINE=1, even to a
    self-hosted gateway or a private endpoint; the remote executor's client keeps that guard for
    Hub hosts only. The task methods (request building, response parsing) stay the library's own.
    """

    def __init__(self, *args: Any, http: httpx2.Client, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._http = http

    @overload
    def _inner_post(self, request_parameters: RequestParameters, *, stream: Literal[False] = ...) -> bytes: ...

    @overload
    def _inner_post(self, request_parameters: RequestParameters, *, stream: Literal[True] = ...) -> Iterable[str]: ...

    @overload
    def _inner_post(self, request_parameters: RequestParameters, *, stream: bool = ...) -> bytes | Iterable[str]: ...

    def _inner_post(self, request_parameters: RequestParameters, *, stream: bool = False) -> bytes | Iterable[str]:
        if stream:
            return super()._inner_post(request_parameters, stream=True)
        headers = request_parameters.headers
        if request_parameters.task in TASKS_EXPECTING_IMAGES and "Accept" not in headers:
            headers["Accept"] = "image/png"
        try:
            response = self._http.post(request_parameters.url, json=request_parameters.json,
                                       content=request_parameters.data, headers=headers, timeout=self.timeout)
        except httpx2.TimeoutException as exc:
            raise InferenceTimeoutError(f"Inference call timed out: {request_parameters.url}") from exc
        hf_raise_for_status(response)
        return response.content


def post_raw(client: InferenceClient, params: RequestParameters) -> bytes:
    """POST one hand-built request through the client (its session, errors and timeout); the body."""
    return client._inner_post(params)
