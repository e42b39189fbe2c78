"""Remote and hybrid execution against a loopback inference service (no network).

The executor talks to tests/fakes/inference_server.py through remote.base_url (the gateway
setting) or remote.endpoints, with the real InferenceClient building requests and parsing answers.
"""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from jarvis.config import RemoteConfig
from jarvis.errors import (
    BadResponseError,
    ExecutionError,
    MissingTokenError,
    RemoteAuthError,
    RemoteError,
    RemoteOfflineError,
)
from jarvis.execution.availability import Availability, Route
from jarvis.execution.dispatch import Dispatcher
from jarvis.execution.remote import RemoteExecutor
from jarvis.runners.base import Device, RunContext, TaskInputs
from tests.fakes.inference_server import VLM_ANSWER, InferenceServer, flac_bytes, png_bytes
from tests.helpers import check_detail

pytestmark = pytest.mark.timeout(60)

TOKEN = "hf_test_token_never_logged_123"
VLM = "Qwen/Qwen2.5-VL-7B-Instruct"


@pytest.fixture(scope="module")
def server():
    with InferenceServer(token=TOKEN) as srv:
        yield srv


@pytest.fixture
def srv(server):
    server.clear()
    yield server
    server.clear()


@pytest.fixture
def ctx(tmp_path) -> RunContext:
    counter = iter(range(10_000))
    return RunContext(Device(), lambda stem, suffix: tmp_path / f"{stem}-{next(counter)}{suffix}")


@pytest.fixture
def media(tmp_path) -> dict[str, Path]:
    img, aud = tmp_path / "in.png", tmp_path / "in.flac"
    img.write_bytes(png_bytes((40, 30)))
    aud.write_bytes(flac_bytes())
    return {"image": img, "audio": aud}


def executor(srv, token: str = TOKEN, **cfg) -> RemoteExecutor:
    cfg.setdefault("timeout", 3.0)
    cfg.setdefault("max_retries", 2)
    return RemoteExecutor(RemoteConfig(base_url=srv.url, **cfg), token, backoff=0.01)


def _inputs(kind: str, media) -> TaskInputs:
    return {
        "text": TaskInputs(text=["My name is Sarah and I live in London"]),
        "two": TaskInputs(text=["What is the capital?", "Paris is the capital of France."]),
        "image": TaskInputs(image=[media["image"]]),
        "image+text": TaskInputs(image=[media["image"]], text=["what colour is it?"]),
        "audio": TaskInputs(audio=[media["audio"]]),
    }[kind]


CASES = [  # task, model, inputs, output kinds
    ("text-classification", "distilbert/distilbert-base-uncased-finetuned-sst-2-english", "text", "text"),
    ("token-classification", "dslim/bert-base-NER", "text", "text"),
    ("summarization", "facebook/bart-large-cnn", "text", "text"),
    ("translation", "Helsinki-NLP/opus-mt-en-fr", "text", "text"),
    ("question-answering", "distilbert/distilbert-base-cased-distilled-squad", "two", "text"),
    ("sentence-similarity", "sentence-transformers/all-MiniLM-L6-v2", "two", "text"),
    ("conversational", "Qwen/Qwen2.5-0.5B-Instruct", "text", "text"),
    ("text-generation", "openai-community/gpt2", "text", "text"),
    ("text2text-generation", "google/flan-t5-base", "text", "text"),
    ("image-classification", "google/vit-base-patch16-224", "image", "text"),
    ("object-detection", "facebook/detr-resnet-50", "image", "image+text"),
    ("image-segmentation", "nvidia/segformer-b0-finetuned-ade-512-512", "image", "image+text"),
    ("image-to-text", "Salesforce/blip-image-captioning-base", "image", "text"),
    ("visual-question-answering", "dandelin/vilt-b32-finetuned-vqa", "image+text", "text"),
    ("document-question-answering", "impira/layoutlm-document-qa", "image+text", "text"),
    ("text-to-image", "stable-diffusion-v1-5/stable-diffusion-v1-5", "text", "image"),
    ("image-to-image", "timbrooks/instruct-pix2pix", "image", "image"),
    ("image-editing", "timbrooks/instruct-pix2pix", "image+text", "image"),
    ("text-to-speech", "facebook/mms-tts-eng", "text", "audio"),
    ("automatic-speech-recognition", "openai/whisper-tiny", "audio", "text"),
    ("audio-classification", "MIT/ast-finetuned-audioset-10-10-0.4593", "audio", "text"),
    ("audio-to-audio", "speechbrain/sepformer-wham", "audio", "audio"),
    ("text-to-video", "ali-vilab/text-to-video-ms-1.7b", "text", "video"),
]


def check_outputs(out, kinds: str) -> None:
    import soundfile as sf
    from PIL import Image
    json.dumps(out.detail)  # JSON-serialisable
    if "text" in kinds:
        assert out.text and out.text.strip()
    if "image" in kinds:
        with Image.open(out.image) as img:
            assert img.format == "PNG" and img.mode == "RGB"
    if "audio" in kinds:
        info = sf.info(str(out.audio))
        assert out.audio.suffix == ".wav" and info.format == "WAV" and info.subtype == "PCM_16"
    if "video" in kinds:
        from jarvis.runners.media.video_files import video_info
        assert out.video.suffix == ".mp4" and out.video.read_bytes()[4:8] == b"ftyp"
        assert video_info(out.video)["frames"] >= 1


@pytest.mark.parametrize("task,model,inputs,kinds", CASES, ids=[c[0] for c in CASES])
def test_every_remote_task_type(srv, ctx, media, task, model, inputs, kinds):
    out = executor(srv).run(task, model, _inputs(inputs, media), ctx)
    check_outputs(out, kinds)
    check_detail(task, out.detail)
    calls = srv.calls(model)
    assert calls and all(c.headers.get("authorization") == f"Bearer {TOKEN}" for c in calls)


def test_structured_results_are_readable(srv, ctx, media):
    ex = executor(srv)
    det = ex.run("object-detection", "facebook/detr-resnet-50", _inputs("image", media), ctx)
    assert "cat (0.97)" in det.text and det.detail["objects"][0]["box"] == [2.0, 3.0, 20.0, 25.0]
    ner = ex.run("token-classification", "dslim/bert-base-NER", _inputs("text", media), ctx)
    assert "Sarah: PER" in ner.text and "London: LOC" in ner.text
    qa = ex.run("question-answering", "distilbert/distilbert-base-cased-distilled-squad", _inputs("two", media), ctx)
    assert qa.text == "Paris"
    # sentence-similarity posts to the model URL with the source sentence and the other one
    ex.run("sentence-similarity", "sentence-transformers/all-MiniLM-L6-v2", _inputs("two", media), ctx)
    body = srv.calls("sentence-transformers/all-MiniLM-L6-v2")[-1].json()
    assert body["inputs"] == {"source_sentence": "What is the capital?", "sentences": ["Paris is the capital of France."]}


@pytest.mark.parametrize("task,model,inputs", [
    ("image-to-text", "nlpconnect/vit-gpt2-image-captioning", "image"),
    ("visual-question-answering", "Salesforce/blip-vqa-base", "image+text"),
    ("document-question-answering", "naver-clova-ix/donut-base-finetuned-docvqa", "image+text"),
])
def test_vlm_fallback_when_no_service_serves_the_classic_task(srv, ctx, media, task, model, inputs):
    out = executor(srv).run(task, model, _inputs(inputs, media), ctx)
    assert out.text == VLM_ANSWER
    check_detail(task, out.detail)
    assert out.detail["served_by"] == VLM and "served by VLM" in out.detail["note"]
    chat = srv.calls(VLM)[-1]
    assert chat.path == f"/models/{VLM}/v1/chat/completions"
    content = chat.json()["messages"][0]["content"]
    assert content[0]["image_url"]["url"].startswith("data:image/png;base64,")
    if task != "image-to-text":
        assert "what colour is it?" in content[1]["text"]
    # through the dispatcher, the record names the model that produced the result
    result = Dispatcher("remote", None, executor(srv)).execute(task, model, [], _inputs(inputs, media), ctx)
    assert result.model == VLM and result.attempts[-1].ok and result.attempts[-1].model == VLM
    assert result.attempts[0].model == model and "HTTP 404" in result.attempts[0].error


def test_vlm_directly_when_the_hub_says_unserved(srv, ctx, media):
    """Provider routing + availability: a captioner no provider serves goes straight to the VLM endpoint."""
    cfg = RemoteConfig(timeout=3, endpoints={VLM: f"{srv.url}/models/{VLM}"})
    lookups = []
    avail = Availability(cfg, TOKEN, fetch=lambda m: lookups.append(m) or [])
    ex = RemoteExecutor(cfg, TOKEN, availability=avail)
    out = ex.run("image-to-text", "nlpconnect/vit-gpt2-image-captioning", _inputs("image", media), ctx)
    assert out.detail["served_by"] == VLM and lookups == ["nlpconnect/vit-gpt2-image-captioning"]
    assert not srv.calls("nlpconnect/vit-gpt2-image-captioning")


# -- faults -----------------------------------------------------------------------------------

TC_MODEL = "distilbert/distilbert-base-uncased-finetuned-sst-2-english"
TC_NEXT = "cardiffnlp/twitter-roberta-base-sentiment-latest"


def remote_dispatch(srv, **cfg) -> Dispatcher:
    return Dispatcher("remote", None, executor(srv, **cfg))


def test_429_is_retried_honouring_retry_after(srv, ctx, media):
    srv.fault(TC_MODEL, "429", times=1, retry_after=0.3)
    start = time.monotonic()
    result = remote_dispatch(srv).execute("text-classification", TC_MODEL, [TC_NEXT], _inputs("text", media), ctx)
    assert time.monotonic() - start >= 0.3
    assert result.model == TC_MODEL and len(srv.calls(TC_MODEL)) == 2
    assert [a.ok for a in result.attempts] == [False, True]
    assert "HTTP 429" in result.attempts[0].error and "retried" in result.attempts[0].error


def test_503_loading_is_retried_with_estimated_time_capped(srv, ctx, media):
    srv.fault(TC_MODEL, "503", times=2, estimated_time=1000)   # capped at remote.timeout
    start = time.monotonic()
    result = remote_dispatch(srv, timeout=0.4).execute("text-classification", TC_MODEL, [], _inputs("text", media), ctx)
    assert time.monotonic() - start < 3
    assert result.outputs.text.startswith("POSITIVE") and len(result.attempts) == 3
    assert "still loading" in result.attempts[0].error


def test_503_that_persists_falls_back_to_the_next_candidate(srv, ctx, media):
    srv.fault(TC_MODEL, "503", estimated_time=0.01)
    result = remote_dispatch(srv).execute("text-classification", TC_MODEL, [TC_MODEL, TC_NEXT], _inputs("text", media), ctx)
    assert result.model == TC_NEXT
    assert len(srv.calls(TC_MODEL)) == 3  # first call + max_retries
    assert [(a.model, a.ok) for a in result.attempts] == [(TC_MODEL, False)] * 3 + [(TC_NEXT, True)]


@pytest.mark.parametrize("kind,expected", [("404", "not served"), ("broken", "could not read"), ("500", "HTTP 500")])
def test_fault_falls_back_to_next_candidate(srv, ctx, media, kind, expected):
    srv.fault(TC_MODEL, kind)
    result = remote_dispatch(srv).execute("text-classification", TC_MODEL, [TC_NEXT], _inputs("text", media), ctx)
    assert result.model == TC_NEXT and len(srv.calls(TC_MODEL)) == 1  # no pointless retry
    assert expected in result.attempts[0].error


def test_broken_image_payload_is_a_clear_error(srv, ctx, media):
    srv.fault("stable-diffusion-v1-5/stable-diffusion-v1-5", "broken")
    with pytest.raises(RemoteError) as err:
        executor(srv).run("text-to-image", "stable-diffusion-v1-5/stable-diffusion-v1-5", _inputs("text", media), ctx)
    assert isinstance(err.value, BadResponseError) and "could not read" in str(err.value)


def test_slow_model_times_out_then_next_candidate(srv, ctx, media):
    srv.fault(TC_MODEL, "slow", delay=5)
    start = time.monotonic()
    result = remote_dispatch(srv, timeout=0.5).execute("text-classification", TC_MODEL, [TC_NEXT], _inputs("text", media), ctx)
    assert time.monotonic() - start < 2.5
    assert result.model == TC_NEXT and "did not answer within 0.5s" in result.attempts[0].error


@pytest.mark.parametrize("status", ["401", "403"])
def test_refused_token_gives_a_clear_message_and_stops_remote(srv, ctx, media, status):
    srv.fault(TC_MODEL, status)
    srv.fault(TC_NEXT, status)
    with pytest.raises(ExecutionError) as err:
        remote_dispatch(srv).execute("text-classification", TC_MODEL, [TC_NEXT], _inputs("text", media), ctx)
    message = str(err.value)
    assert "Hugging Face token was refused" in message and "HF_TOKEN" in message
    assert TOKEN not in message and TOKEN not in json.dumps([a.to_dict() for a in err.value.attempts])
    assert not srv.calls(TC_NEXT)  # the same token would be refused again


def test_wrong_token_is_refused_by_the_service(srv, ctx, media):
    with pytest.raises(RemoteError) as err:
        executor(srv, token="hf_wrong").run("text-classification", TC_MODEL, _inputs("text", media), ctx)
    assert isinstance(err.value, RemoteAuthError) and "hf_wrong" not in str(err.value)


def test_every_candidate_failing_lists_each_attempt(srv, ctx, media):
    srv.fault(TC_MODEL, "404")
    srv.fault(TC_NEXT, "broken")
    with pytest.raises(ExecutionError) as err:
        remote_dispatch(srv).execute("text-classification", TC_MODEL, [TC_NEXT], _inputs("text", media), ctx)
    assert TC_MODEL in str(err.value) and TC_NEXT in str(err.value)
    assert [a.model for a in err.value.attempts] == [TC_MODEL, TC_NEXT]
    assert all(set(a.to_dict()) >= {"executor", "model", "ok", "error", "seconds"} for a in err.value.attempts)


def test_task_without_remote_service_says_so(srv, ctx, media):
    with pytest.raises(ExecutionError, match="no remote service"):
        remote_dispatch(srv).execute("canny-control", "builtin", [], _inputs("image", media), ctx)
    with pytest.raises(RemoteError, match="cannot run remotely"):
        executor(srv).run("depth-estimation", "Intel/dpt-large", _inputs("image", media), ctx)


# -- tokens, endpoints, offline -----------------------------------------------------------------

def test_endpoint_per_model_and_per_task_gets_the_call_and_the_token(srv, ctx, media):
    with InferenceServer(token=TOKEN, endpoint_task="summarization") as endpoint:
        ex = executor(srv, endpoints={"my-org/private-summarizer": f"{endpoint.url}/e/summarizer",
                                      "translation": f"{endpoint.url}/e/summarizer"})
        out = ex.run("summarization", "my-org/private-summarizer", _inputs("text", media), ctx)
        assert out.text == "A short summary."
        ex.run("translation", "Helsinki-NLP/opus-mt-en-fr", _inputs("text", media), ctx)
        assert [r.path for r in endpoint.requests] == ["/e/summarizer", "/e/summarizer"]
        assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in endpoint.requests)
        assert not srv.requests  # the gateway saw nothing of these


def test_without_token_no_authorization_is_sent(ctx, media):
    with InferenceServer() as open_gateway:
        ex = executor(open_gateway, token="")
        assert ex.run("summarization", "facebook/bart-large-cnn", _inputs("text", media), ctx).text
        assert "authorization" not in open_gateway.requests[0].headers


def test_no_token_and_no_gateway_is_a_clear_message(ctx, media):
    ex = RemoteExecutor(RemoteConfig(timeout=1), "")
    with pytest.raises(RemoteError, match="needs a Hugging Face token") as err:
        ex.run("text-classification", TC_MODEL, _inputs("text", media), ctx)
    assert isinstance(err.value, MissingTokenError)


@pytest.mark.parametrize("task,model", [("conversational", "Qwen/Qwen2.5-0.5B-Instruct"), ("text-classification", TC_MODEL)])
def test_offline_hub_routing_fails_fast_with_a_hint(ctx, media, task, model):
    ex = RemoteExecutor(RemoteConfig(timeout=1, provider="auto"), TOKEN)
    start = time.monotonic()
    with pytest.raises(RemoteError, match="HF_HUB_OFFLINE") as err:
        ex.run(task, model, _inputs("text", media), ctx)
    assert isinstance(err.value, RemoteOfflineError) and time.monotonic() - start < 5 and TOKEN not in str(err.value)


def test_executor_repr_hides_the_token(srv):
    assert TOKEN not in repr(executor(srv)) and TOKEN not in repr(executor(srv).__dict__.get("config"))


# -- availability -------------------------------------------------------------------------------

class SlowHub:
    """A look-up function that counts calls and takes `delay` seconds."""

    def __init__(self, routes: dict[str, list[Route]], delay: float = 0.2, fail: bool = False):
        self.routes, self.delay, self.fail = routes, delay, fail
        self.calls: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, model_id: str) -> list[Route]:
        with self._lock:
            self.calls.append(model_id)
        time.sleep(self.delay)
        if self.fail:
            raise ConnectionError("hub down")
        return self.routes.get(model_id, [])


ROUTES = {"a/served": [Route("hf-inference", "text-classification", "live")],
          "b/other-task": [Route("together", "conversational", "live")],
          "c/staging": [Route("fal-ai", "text-classification", "staging")],
          "d/together": [Route("together", "text-classification", "live")]}


def test_availability_one_lookup_per_model_concurrently():
    hub = SlowHub(ROUTES, delay=0.3)
    avail = Availability(RemoteConfig(), TOKEN, fetch=hub)
    results, start = [], time.monotonic()
    threads = [threading.Thread(target=lambda: results.append(avail.check("text-classification", list(ROUTES))))
               for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert time.monotonic() - start < 1.0          # four look-ups in parallel, not 80 in a row
    assert sorted(hub.calls) == sorted(ROUTES) and avail.lookups == 4
    assert results[0] == {"a/served": True, "b/other-task": False, "c/staging": False, "d/together": True}
    assert all(r == results[0] for r in results)


def test_availability_timeout_expiry_and_failures():
    now = [1000.0]
    hub = SlowHub(ROUTES, delay=0.5)
    avail = Availability(RemoteConfig(availability_ttl=100), TOKEN, fetch=hub, clock=lambda: now[0])
    start = time.monotonic()
    assert avail.serves("a/served", "text-classification", timeout=0.05) is None  # still looking
    assert time.monotonic() - start < 0.3
    time.sleep(0.7)
    assert avail.serves("a/served", "text-classification") is True and hub.calls == ["a/served"]
    now[0] += 99
    assert avail.serves("a/served", "text-classification") is True and len(hub.calls) == 1
    now[0] += 2  # expired: one new look-up
    assert avail.serves("a/served", "text-classification", timeout=2) is True and len(hub.calls) == 2
    down = SlowHub({}, delay=0.0, fail=True)
    avail = Availability(RemoteConfig(availability_ttl=3600), TOKEN, fetch=down, clock=lambda: now[0])
    assert avail.serves("a/served") is None and avail.serves("a/served") is None and len(down.calls) == 1
    now[0] += 61  # failures are remembered for a minute only
    assert avail.serves("a/served") is None and len(down.calls) == 2


def test_availability_provider_filter_and_configured_gateway():
    hub = SlowHub(ROUTES, delay=0.0)
    avail = Availability(RemoteConfig(provider="together"), TOKEN, fetch=hub)
    assert avail.check("text-classification", ["a/served", "d/together"]) == {"a/served": False, "d/together": True}
    assert avail.serves("b/other-task", "text-generation") is True  # chat models serve text generation
    gateway = Availability(RemoteConfig(base_url="http://127.0.0.1:9"), TOKEN, fetch=hub)
    calls = len(hub.calls)
    assert gateway.check("summarization", ["x/y", "z/w"]) == {"x/y": True, "z/w": True} and len(hub.calls) == calls
    by_task = Availability(RemoteConfig(endpoints={"summarization": "http://127.0.0.1:9/e"}), TOKEN, fetch=hub)
    assert by_task.serves("x/y", "summarization") is True and len(hub.calls) == calls


def test_default_hub_lookup_offline_is_unknown_not_an_error():
    avail = Availability(RemoteConfig(timeout=2), TOKEN)
    assert avail.serves("openai/whisper-tiny", "automatic-speech-recognition") is None


def test_dispatcher_skips_models_the_hub_says_are_unserved(srv, ctx, media):
    cfg = RemoteConfig(timeout=3, endpoints={m: f"{srv.url}/models/{m}" for m in (TC_MODEL, TC_NEXT)})
    hub = SlowHub({TC_NEXT: [Route("hf-inference", "text-classification", "live")]}, delay=0.0)
    # endpoints make models available without look-up; use a config without them for the look-up
    avail = Availability(RemoteConfig(), TOKEN, fetch=hub)
    dispatcher = Dispatcher("remote", None, RemoteExecutor(cfg, TOKEN), availability=avail)
    result = dispatcher.execute("text-classification", TC_MODEL, [TC_NEXT], _inputs("text", media), ctx)
    assert result.model == TC_NEXT and not srv.calls(TC_MODEL)
    assert result.attempts[0].error.startswith("skipped: no Inference Provider serves")


# -- the acceptance: a request mixing three task types, remote then hybrid ----------------

MIXED = [("text-classification", TC_MODEL, [TC_NEXT], "text", "text"),
         ("object-detection", "facebook/detr-resnet-50", ["hustvl/yolos-tiny"], "image", "image+text"),
         ("text-to-speech", "facebook/mms-tts-eng", [], "text", "audio")]


def _run_parallel(dispatcher, ctx, media, tasks=MIXED):
    results, errors = {}, []

    def one(task, model, cands, inputs):
        try:
            results[task] = dispatcher.execute(task, model, [model, *cands], _inputs(inputs, media), ctx)
        except Exception as exc:
            errors.append(exc)
    threads = [threading.Thread(target=one, args=(t, m, c, i)) for t, m, c, i, _ in tasks]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    return results


def test_mixed_request_runs_remotely(srv, ctx, media):
    results = _run_parallel(remote_dispatch(srv), ctx, media)
    for task, model, _, _, kinds in MIXED:
        check_outputs(results[task].outputs, kinds)
        assert results[task].executor == "remote" and results[task].model == model


def test_mixed_request_in_hybrid_mode_with_a_failing_remote_model(srv, ctx, media):
    """Models cached here may run locally; the detector pair is remote-only and the first one fails."""
    from jarvis.execution.local import LocalExecutor
    failing, backup = "jarvis-remote/detector-a", "jarvis-remote/detector-b"
    srv.models.update({failing: "object-detection", backup: "object-detection"})
    srv.fault(failing, "503", estimated_time=0.01)
    dispatcher = Dispatcher("hybrid", LocalExecutor(device="cpu", memory_budget_gb=1), executor(srv, max_retries=1))
    mixed = [m if m[0] != "object-detection" else ("object-detection", failing, [backup], "image", "image+text")
             for m in MIXED]
    results = _run_parallel(dispatcher, ctx, media, mixed)
    det = results["object-detection"]
    assert det.model == backup and det.executor == "remote"
    assert [(a.model, a.ok) for a in det.attempts] == [(failing, False), (failing, False), (backup, True)]
    for task, _, _, _, kinds in mixed:
        check_outputs(results[task].outputs, kinds)


def test_hybrid_tries_the_other_side_last(srv, ctx, media):
    """Every remote candidate fails: the chosen model is then tried locally, and each attempt is recorded.
    Neither model is cached here, so hybrid mode starts remotely and the local try fails too."""
    from jarvis.execution.local import LocalExecutor
    chosen, other = "jarvis-remote/classifier-a", "jarvis-remote/classifier-b"
    srv.models.update({chosen: "text-classification", other: "text-classification"})
    srv.fault(chosen, "404")
    srv.fault(other, "404")
    dispatcher = Dispatcher("hybrid", LocalExecutor(device="cpu", memory_budget_gb=1), executor(srv))
    with pytest.raises(ExecutionError) as err:
        dispatcher.execute("text-classification", chosen, [other], _inputs("text", media), ctx)
    assert [(a.executor, a.model, a.ok) for a in err.value.attempts] == [
        ("remote", chosen, False), ("remote", other, False), ("local", chosen, False)]


def test_hybrid_runs_a_cached_model_locally(srv, ctx, media, tiny_models):
    from jarvis.execution.local import LocalExecutor
    from jarvis.execution.readiness import cached_bytes
    from jarvis.runners.registry import TASK_TYPES
    assert TC_MODEL in tiny_models and TASK_TYPES["text-classification"].local
    local = LocalExecutor(device="cpu", memory_budget_gb=1)
    assert cached_bytes(TC_MODEL) and local.ready("text-classification", TC_MODEL)
    assert not local.ready("text-classification", "nobody/not-cached")
    dispatcher = Dispatcher("hybrid", local, executor(srv))
    result = dispatcher.execute("text-classification", TC_MODEL, [TC_NEXT], _inputs("text", media), ctx)
    assert result.executor == "local" and not srv.calls(TC_MODEL)
    # a remote failure on an uncached candidate falls back to the local model
    srv.fault("someone/remote-only", "404")
    result = dispatcher.execute("text-classification", "someone/remote-only", [TC_MODEL], _inputs("text", media), ctx)
    assert result.executor == "local" and result.model == TC_MODEL


def test_cached_bytes_reads_the_hf_cache(hub_cache):
    from jarvis.execution.readiness import cached_bytes
    from tests.tiny import snapshot_dir
    snap = snapshot_dir(hub_cache, "jarvis-tests/cache-probe")
    (snap / "config.json").write_text("{}")
    (snap / "model.safetensors").write_bytes(b"\0" * 1234)
    assert cached_bytes("jarvis-tests/cache-probe") == 1234
    assert cached_bytes("jarvis-tests/never-downloaded") is None
