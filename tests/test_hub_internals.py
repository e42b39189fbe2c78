"""The huggingface_hub internals Jarvis relies on (all in jarvis/hub_internals.py) still exist and
behave as we use them. A failure names the symbol that an upgrade renamed, removed or changed."""
from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import io
import json
import re
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "jarvis"


def _symbol(dotted: str) -> object:
    """Import `module.attr[.attr...]`, failing with the symbol's name when any part is gone."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            if not hasattr(obj, name):
                pytest.fail(f"huggingface_hub changed: {dotted} is gone (no {name!r}); update jarvis/hub_internals.py")
            obj = getattr(obj, name)
        return obj
    pytest.fail(f"huggingface_hub changed: {dotted} cannot be imported; update jarvis/hub_internals.py")


PRIVATE = [
    "huggingface_hub.inference._common.MimeBytes",
    "huggingface_hub.inference._common.RequestParameters",
    "huggingface_hub.inference._common.TASKS_EXPECTING_IMAGES",
    "huggingface_hub.InferenceClient._inner_post",
    "httpx2.Client",
    "httpx2.TimeoutException",
    "httpx2.TransportError",
    "httpx2.HTTPError",
]


@pytest.mark.parametrize("dotted", PRIVATE)
def test_private_symbol_exists(dotted):
    _symbol(dotted)


def test_mime_bytes_carries_its_type():
    mime_bytes = _symbol("huggingface_hub.inference._common.MimeBytes")
    value = mime_bytes(b"\x89PNG", "image/png")  # type: ignore[operator]
    assert isinstance(value, bytes) and bytes(value) == b"\x89PNG", "MimeBytes is no longer bytes"
    assert value.mime_type == "image/png", "MimeBytes.mime_type changed"


def test_request_parameters_fields():
    params = _symbol("huggingface_hub.inference._common.RequestParameters")
    fields = {f.name for f in dataclasses.fields(params)}  # type: ignore[arg-type]
    missing = {"url", "task", "model", "json", "data", "headers"} - fields
    assert not missing, f"huggingface_hub changed: RequestParameters lost {sorted(missing)}"


def test_tasks_expecting_images():
    tasks = _symbol("huggingface_hub.inference._common.TASKS_EXPECTING_IMAGES")
    assert "text-to-image" in tasks, "TASKS_EXPECTING_IMAGES no longer lists text-to-image"  # type: ignore[operator]


def test_inner_post_signature_matches_our_override():
    from huggingface_hub import InferenceClient

    from jarvis.hub_internals import RoutedInferenceClient

    def shape(fn: object) -> list[tuple[str, object, object]]:
        return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]  # type: ignore[arg-type]

    assert shape(InferenceClient._inner_post) == shape(RoutedInferenceClient._inner_post), (
        "huggingface_hub changed the signature of InferenceClient._inner_post: "
        f"{inspect.signature(InferenceClient._inner_post)}; update RoutedInferenceClient")


def _client(handler):
    import httpx2

    from jarvis.hub_internals import RoutedInferenceClient

    http = httpx2.Client(transport=httpx2.MockTransport(handler))
    return RoutedInferenceClient(model="http://gateway.test/models/org/m", token="hf_x", http=http)


def test_task_methods_post_through_the_override():
    """InferenceClient's task methods must still send their request through _inner_post, or the
    remote executor's own client (and its offline guard) would be bypassed."""
    import httpx2

    seen = []
    png = io.BytesIO()
    Image.new("RGB", (2, 2), "red").save(png, format="PNG")

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        if "image" in request.headers.get("accept", ""):
            return httpx2.Response(200, content=png.getvalue(), headers={"content-type": "image/png"})
        return httpx2.Response(200, json=[[{"label": "POSITIVE", "score": 0.9}]])

    client = _client(handler)
    labels = client.text_classification("I love it")
    assert seen, "InferenceClient.text_classification no longer goes through _inner_post"
    assert str(seen[0].url) == "http://gateway.test/models/org/m" and labels[0].label == "POSITIVE"
    assert json.loads(seen[0].content)["inputs"] == "I love it"
    seen.clear()
    image = client.text_to_image("a cat")
    assert seen and seen[0].headers["accept"] == "image/png", "text-to-image no longer asks for image/png"
    assert image.size == (2, 2)


def test_post_raw_sends_a_hand_built_request():
    import httpx2

    from jarvis.hub_internals import RequestParameters, post_raw

    def handler(request: httpx2.Request) -> httpx2.Response:
        assert request.headers["accept"] == "video/mp4"
        return httpx2.Response(200, content=b"video bytes")

    client = _client(handler)
    params = RequestParameters(url=str(client.model), task="text-to-video", model=client.model,
                               json={"inputs": "a dog"}, data=None, headers={"accept": "video/mp4"})
    assert post_raw(client, params) == b"video bytes"


def test_no_private_hub_use_outside_hub_internals():
    """Every private huggingface_hub use (and httpx2) stays in jarvis/hub_internals.py."""
    private = re.compile(r"^(huggingface_hub(\.\w+)*\._\w+|httpx2)(\.|$)")
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "hub_internals.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Attribute) and node.attr == "_inner_post":
                names = ["InferenceClient._inner_post"]
            offenders += [f"{path.relative_to(ROOT)}:{node.lineno}: {n}" for n in names
                          if private.match(n) or n.endswith("._inner_post")]
    assert not offenders, "private huggingface_hub use outside jarvis/hub_internals.py:\n" + "\n".join(offenders)
