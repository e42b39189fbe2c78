"""Remote execution against an inference service that, like the real one, serves a model for its own
task only and refuses bodies of the wrong shape (tests/fakes/inference_shapes.py)."""
from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest

from jarvis.config import RemoteConfig
from jarvis.errors import RemoteBadRequestError
from jarvis.execution.dispatch import Dispatcher
from jarvis.execution.remote import RemoteExecutor
from jarvis.runners.base import Device, RunContext, TaskInputs
from tests.fakes.inference_server import InferenceServer, flac_bytes, png_bytes

pytestmark = pytest.mark.timeout(60)
TOKEN = "hf_shapes_token"
NER, VIT, WHISPER = "dslim/bert-base-NER", "google/vit-base-patch16-224", "openai/whisper-tiny"


@pytest.fixture(scope="module")
def srv():
    with InferenceServer(token=TOKEN) as server:
        yield server


@pytest.fixture
def ctx(tmp_path) -> RunContext:
    return RunContext(Device(), lambda stem, suffix: tmp_path / f"{stem}{suffix}")


@pytest.fixture
def picture(tmp_path) -> Path:
    path = tmp_path / "in.png"
    path.write_bytes(png_bytes((40, 30)))
    return path


def remote(srv) -> RemoteExecutor:
    return RemoteExecutor(RemoteConfig(base_url=srv.url, timeout=5.0, max_retries=0), TOKEN, backoff=0.01)


@pytest.mark.parametrize("model, content_type, body, why", [
    (NER, "image/png", png_bytes(), "token-classification takes a JSON body"),
    (NER, "application/json", b'{"inputs": ""}', "non-empty string"),
    (NER, "application/json", b'{"text": "hi"}', "non-empty string"),
    (VIT, "image/png", b"not a picture", "not an image"),
    (VIT, "application/json", b'{"inputs": "aGVsbG8="}', "base64 image"),
    (WHISPER, "audio/flac", png_bytes(), "not audio"),
    ("distilbert/distilbert-base-cased-distilled-squad", "application/json",
     b'{"inputs": {"question": "who?"}}', "'context'"),
    ("sentence-transformers/all-MiniLM-L6-v2", "application/json",
     b'{"inputs": {"source_sentence": "a", "sentences": []}}', "sentences"),
    ("dandelin/vilt-b32-finetuned-vqa", "application/json",
     json.dumps({"question": "what?", "image": base64.b64encode(b"junk").decode()}).encode(), "base64 'image'"),
])
def test_the_service_refuses_a_body_its_task_does_not_take(srv, model, content_type, body, why):
    r = httpx.post(f"{srv.url}/models/{model}", content=body,
                   headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": content_type})
    assert r.status_code == 400 and why in r.json()["error"]


def test_a_model_is_served_for_its_own_task_only(srv):
    r = httpx.post(f"{srv.url}/models/nobody/unknown-model", json={"inputs": "hi"},
                   headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 404 and "not served" in r.json()["error"]
    r = httpx.post(f"{srv.url}/models/{NER}/v1/chat/completions", headers={"Authorization": f"Bearer {TOKEN}"},
                   json={"model": NER, "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 404 and "not served" in r.json()["error"]


def test_a_model_of_another_task_refuses_the_input_and_the_next_candidate_runs(srv, ctx, picture):
    srv.clear()
    with pytest.raises(RemoteBadRequestError, match=f"{NER} rejected the input \\(HTTP 400\\)"):
        remote(srv).run("image-classification", NER, TaskInputs(image=[picture]), ctx)
    result = Dispatcher("remote", None, remote(srv)).execute(
        "image-classification", NER, [VIT], TaskInputs(image=[picture]), ctx)
    assert result.model == VIT and result.outputs.text
    assert [(a.model, a.ok) for a in result.attempts] == [(NER, False), (VIT, True)]
    assert "rejected the input" in result.attempts[0].error


def test_a_file_that_is_not_audio_is_refused_by_the_speech_model(srv, ctx, picture, tmp_path):
    fake = tmp_path / "speech.flac"
    fake.write_bytes(picture.read_bytes())       # a picture named like audio
    with pytest.raises(RemoteBadRequestError, match="not audio the server can read"):
        remote(srv).run("automatic-speech-recognition", WHISPER, TaskInputs(audio=[fake]), ctx)
    real = tmp_path / "real.flac"
    real.write_bytes(flac_bytes())
    assert remote(srv).run("automatic-speech-recognition", WHISPER, TaskInputs(audio=[real]), ctx).text
