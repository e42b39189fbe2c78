"""`catalog refresh` against a loopback Hub: the real HfApi (list_models, model_info with expansions,
paths-info, file downloads) talks to a server answering the Hub's routes with the Hub's payload shapes.
The CLI runs in a child process: this test session is offline, the child talks to the loopback."""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import socket
import subprocess
import sys
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from jarvis.catalog.entries import Catalog
from jarvis.errors import CatalogError
from tests.fakes.loopback import HandlerThread

ROOT = Path(__file__).resolve().parent.parent
BERT, FLAIR, XLMR = "dslim/bert-base-NER", "flair/ner-english", "FacebookAI/xlm-roberta-large-finetuned-conll03-english"
FLUX, SD = "black-forest-labs/FLUX.1-dev", "stable-diffusion-v1-5/stable-diffusion-v1-5"
CANNY = "lllyasviel/sd-controlnet-canny"
MB = 1_000_000


def _item(model_id, downloads, likes, library, tags, pipeline_tag, config=None):
    """One /api/models listing item: the expanded fields only, as the Hub sends them."""
    return {"_id": hashlib.md5(model_id.encode()).hexdigest()[:24], "id": model_id, "downloads": downloads,
            "likes": likes, "library_name": library, "tags": tags, "pipeline_tag": pipeline_tag,
            "config": config or {}}


LISTING = {
    "token-classification": [
        _item(BERT, 3000, 600, "transformers", ["transformers", "pytorch", "safetensors", "bert",
                                                "token-classification", "en", "license:mit"],
              "token-classification", {"architectures": ["BertForTokenClassification"], "model_type": "bert"}),
        _item(FLAIR, 2000, 40, "flair", ["flair", "pytorch", "token-classification"], "token-classification"),
        _item(XLMR, 1000, 150, "transformers", ["transformers", "xlm-roberta", "token-classification"],
              "token-classification", {"model_type": "xlm-roberta"}),
        _item("Davlan/distilbert-base-multilingual-cased-ner-hrl", 500, 80, "transformers",
              ["transformers", "distilbert", "token-classification"], "token-classification",
              {"model_type": "distilbert"}),
    ],
    "text-to-image": [
        _item(FLUX, 9000, 9000, "diffusers", ["diffusers", "safetensors", "text-to-image", "diffusers:FluxPipeline"],
              "text-to-image", {"diffusers": {"_class_name": "FluxPipeline"}}),
        _item(SD, 8000, 700, "diffusers", ["diffusers", "safetensors", "stable-diffusion", "text-to-image",
                                           "diffusers:StableDiffusionPipeline"],
              "text-to-image", {"diffusers": {"_class_name": "StableDiffusionPipeline"}}),
    ],
}

# model_info answers: the listing's fields plus card data, gating, the file list and the provider mapping
# (a dict keyed by provider, as /api/models/{id} sends it); SIZES are the weight files' sizes.
SIZES = {
    BERT: {"model.safetensors": 433 * MB, "pytorch_model.bin": 433 * MB, "tf_model.h5": 433 * MB},
    XLMR: {"model.safetensors": 2235 * MB},
    FLUX: {"flux1-dev.safetensors": 23802 * MB, "ae.safetensors": 335 * MB,
           "transformer/diffusion_pytorch_model-00001-of-00003.safetensors": 9983 * MB,
           "transformer/diffusion_pytorch_model-00002-of-00003.safetensors": 9949 * MB,
           "transformer/diffusion_pytorch_model-00003-of-00003.safetensors": 3870 * MB,
           "text_encoder/model.safetensors": 246 * MB, "vae/diffusion_pytorch_model.safetensors": 168 * MB},
    SD: {"v1-5-pruned-emaonly.safetensors": 4265 * MB, "unet/diffusion_pytorch_model.safetensors": 3438 * MB,
         "unet/diffusion_pytorch_model.fp16.safetensors": 1719 * MB, "text_encoder/model.safetensors": 492 * MB,
         "vae/diffusion_pytorch_model.safetensors": 335 * MB, "safety_checker/model.safetensors": 1216 * MB},
    CANNY: {"diffusion_pytorch_model.safetensors": 1445 * MB, "diffusion_pytorch_model.bin": 1445 * MB},
}
OTHER_FILES = {
    BERT: [".gitattributes", "README.md", "config.json", "tokenizer_config.json", "vocab.txt",
           "special_tokens_map.json", "added_tokens.json", "flax_model.msgpack", "onnx/model.onnx"],
    FLAIR: [".gitattributes", "README.md", "loss.tsv", "pytorch_model.bin", "training.log"],
    XLMR: ["README.md", "config.json", "sentencepiece.bpe.model", "tokenizer.json"],
    FLUX: ["README.md", "model_index.json", "scheduler/scheduler_config.json", "tokenizer/vocab.json"],
    SD: ["README.md", "model_index.json", "feature_extractor/preprocessor_config.json", "tokenizer/vocab.json"],
    CANNY: ["README.md", "config.json"],
}
DETAIL = {
    BERT: {"cardData": {"license": "mit", "language": "en"}, "gated": False,
           "inferenceProviderMapping": {"hf-inference": {"status": "live", "providerId": BERT,
                                                         "task": "token-classification"}}},
    FLAIR: {"cardData": {}, "gated": False, "inferenceProviderMapping": {}},
    XLMR: {"cardData": {"license": "other"}, "gated": False, "inferenceProviderMapping": {}},
    FLUX: {"cardData": {"license": "other"}, "gated": "auto",
           "inferenceProviderMapping": {"fal-ai": {"status": "live", "providerId": "fal-ai/flux/dev",
                                                   "task": "text-to-image"},
                                        "together": {"status": "staging", "providerId": "x", "task": "text-to-image"}}},
    SD: {"cardData": {"license": "creativeml-openrail-m"}, "gated": False, "inferenceProviderMapping": {}},
    CANNY: {"cardData": {"license": "openrail"}, "gated": False, "inferenceProviderMapping": {},
            "library_name": "diffusers", "tags": ["diffusers", "safetensors", "controlnet"], "config": {}},
}
FILES = {  # (repo, file) -> body, for /{repo}/resolve/{rev}/{file}
    (BERT, "README.md"): "---\nlicense: mit\n---\n# bert-base-NER\n\n## Model description\n\n**bert-base-NER** is a "
                         "fine-tuned [BERT](https://x.y) model for Named Entity Recognition.\n",
    (SD, "README.md"): "# SD\n\nStable Diffusion is a latent text-to-image diffusion model.\n",
    (CANNY, "config.json"): json.dumps({"_class_name": "ControlNetModel", "_diffusers_version": "0.14.0.dev0",
                                        "cross_attention_dim": 768, "in_channels": 4}),
}


def model_info_payload(model_id: str, expand: list[str]) -> dict | None:
    listed = next((i for items in LISTING.values() for i in items if i["id"] == model_id), None)
    if model_id not in DETAIL:
        return None
    siblings = [{"rfilename": n} for n in sorted(OTHER_FILES.get(model_id, []) + list(SIZES.get(model_id, {})))]
    full = {**(listed or {"_id": "0" * 24, "id": model_id, "downloads": 7, "likes": 1, "pipeline_tag": None}),
            **DETAIL[model_id], "siblings": siblings}
    return {k: v for k, v in full.items() if k in ("_id", "id") or k in expand}


class FakeHub(BaseHTTPRequestHandler):
    """GET /api/models, GET /api/models/{repo}, POST /api/models/{repo}/paths-info/{rev}, and
    HEAD/GET /{repo}/resolve/{rev}/{file}, answered like the Hub."""
    requests: list[tuple[str, str, dict]] = []
    fail_listing = False

    def log_message(self, *args):  # keep pytest output clean
        pass

    def _send(self, status: int, body: bytes, headers: dict | None = None, head: bool = False):
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _json(self, status: int, data, head: bool = False):
        return self._send(status, json.dumps(data).encode(), {"Content-Type": "application/json"}, head)

    def _route(self, method: str):
        url = urlparse(self.path)
        query = parse_qs(url.query)
        head = method == "HEAD"
        parts = url.path.strip("/").split("/")
        if method == "POST" and len(parts) == 6 and parts[4] == "paths-info":
            repo = "/".join(parts[2:4])
            form = parse_qs(self.rfile.read(int(self.headers.get("Content-Length", 0))).decode())
            FakeHub.requests.append(("paths-info", repo, form))
            sizes = SIZES.get(repo, {})
            return self._json(200, [{"type": "file", "oid": hashlib.sha1(p.encode()).hexdigest(), "size": sizes[p],
                                     "path": p, "lfs": {"oid": hashlib.sha256(p.encode()).hexdigest(),
                                                        "size": sizes[p], "pointerSize": 134}}
                                    for p in form.get("paths", []) if p in sizes])
        if url.path == "/api/models":
            FakeHub.requests.append(("list", "", query))
            if FakeHub.fail_listing:
                return self._json(401, {"error": "Invalid credentials in Authorization header"}, head)
            items = LISTING.get(query.get("pipeline_tag", [""])[0], [])
            return self._json(200, items[:int(query.get("limit", ["1000"])[0])], head)
        if len(parts) == 4 and parts[:2] == ["api", "models"]:
            repo = "/".join(parts[2:])
            FakeHub.requests.append(("info", repo, query))
            payload = model_info_payload(repo, query.get("expand", []))
            if payload is None:
                return self._send(404, b'{"error":"Repository not found"}', {"X-Error-Code": "RepoNotFound"}, head)
            return self._json(200, payload, head)
        if len(parts) >= 5 and parts[2] == "resolve":
            repo, filename = "/".join(parts[:2]), "/".join(parts[4:])
            body = FILES.get((repo, filename))
            if body is None:
                return self._send(404, b"Entry not found", {"X-Error-Code": "EntryNotFound"}, head)
            data = body.encode()
            return self._send(200, data, {"X-Repo-Commit": hashlib.sha1(repo.encode()).hexdigest(),
                                          "ETag": f'"{hashlib.sha1(data).hexdigest()}"',
                                          "Content-Type": "text/plain"}, head)
        return self._send(404, b"Not found", {"X-Error-Code": "RepoNotFound"}, head)

    def do_GET(self):
        self._route("GET")

    def do_HEAD(self):
        self._route("HEAD")

    def do_POST(self):
        self._route("POST")


@pytest.fixture(scope="module")
def fake_hub():
    with HandlerThread(FakeHub) as server:
        yield server.url


def run_refresh(endpoint: str, home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_ENDPOINT": endpoint, "HF_HOME": str(home), "HF_HUB_CACHE": str(home / "hub"),
           "PYTHONPATH": str(ROOT)}
    env.pop("HF_HUB_OFFLINE", None)
    env.pop("TRANSFORMERS_OFFLINE", None)
    return subprocess.run([sys.executable, "-m", "jarvis.catalog.refresh", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_refresh_writes_the_hubs_facts(fake_hub, tmp_path):
    output = tmp_path / "catalog.jsonl"
    output.write_text((ROOT / "jarvis/catalog/data/catalog.jsonl").read_text())
    FakeHub.requests.clear()
    result = run_refresh(fake_hub, tmp_path, "--output", str(output), "--per-task", "2",
                         "--task", "token-classification", "--task", "text-to-image")
    assert result.returncode == 0, result.stderr
    assert "token-classification: 3 models (2 local)" in result.stdout
    assert "text-to-image: 2 models (1 local)" in result.stdout
    listing = next(q for kind, _, q in FakeHub.requests if kind == "list" and "pipeline_tag" in q)
    assert listing["sort"] == ["downloads"] and listing["pipeline_tag"] == ["token-classification"]
    assert {"config", "library_name", "tags"} <= set(listing["expand"])
    info = next(q for kind, repo, q in FakeHub.requests if kind == "info" and repo == BERT)
    assert {"config", "siblings", "inferenceProviderMapping", "gated", "cardData"} <= set(info["expand"])
    # only the weights a loader reads are sized: SD's components, not its root checkpoint or fp16 variant
    sized = {repo: form["paths"] for kind, repo, form in FakeHub.requests if kind == "paths-info"}
    assert sized[BERT] == ["model.safetensors"]
    assert sorted(sized[SD]) == ["safety_checker/model.safetensors", "text_encoder/model.safetensors",
                                 "unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors"]
    assert [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []

    catalog = Catalog.load(output)
    assert catalog.skipped == 0
    ner = catalog.candidates("token-classification", k=5, mode="hybrid")
    # top 2 by downloads, plus the next local model so local mode keeps a choice
    assert [m.id for m in ner] == [BERT, FLAIR, XLMR]
    bert = ner[0]
    assert bert.runs_locally(use_cache=False) and bert.license == "mit"
    assert (bert.downloads, bert.likes) == (3000, 600)
    assert bert.description == "bert-base-NER is a fine-tuned BERT model for Named Entity Recognition."
    f = bert.facts
    assert (f.library_name, f.pipeline_tag, f.model_type, f.architectures) == \
        ("transformers", "token-classification", "bert", ("BertForTokenClassification",))
    assert (f.weight_format, f.weight_bytes, f.gated) == ("safetensors", 433 * MB, False)
    assert f.files == ("added_tokens.json", "config.json", "special_tokens_map.json", "tokenizer_config.json",
                       "vocab.txt")
    today = datetime.datetime.now(datetime.UTC).date().isoformat()
    assert bert.providers == ["hf-inference"] and bert.providers_checked == today
    flair = ner[1]
    assert not flair.runs_locally(use_cache=False) and flair.description == ""  # no README on the Hub
    assert (flair.facts.library_name, flair.facts.weight_format, flair.providers_known) == ("flair", "bin", True)
    assert [m.id for m in catalog.candidates("token-classification", mode="remote")] == [BERT]
    flux, sd = catalog.candidates("text-to-image", k=5, mode="hybrid")
    assert (flux.id, flux.facts.pipeline_class, flux.facts.gated, flux.providers) == (FLUX, "FluxPipeline", "auto",
                                                                                      ["fal-ai"])
    assert not flux.runs_locally(use_cache=False)  # the runner builds Stable Diffusion pipelines
    assert flux.facts.weight_bytes == (9983 + 9949 + 3870 + 246 + 168) * MB
    assert sd.runs_locally(use_cache=False) and sd.providers == [] and sd.providers_known
    assert sd.facts.weight_bytes == (3438 + 492 + 335 + 1216) * MB
    # tasks not refreshed keep their entries
    assert catalog.candidates("translation")[0].id == "facebook/nllb-200-distilled-600M"


def test_refresh_keep_models_fills_facts_and_keeps_the_selection(fake_hub, tmp_path):
    output = tmp_path / "mine.jsonl"
    rows = [{"id": BERT, "task": "token-classification", "description": "my words", "local": False},
            {"id": CANNY, "task": "canny-text-to-image", "description": "edges"},
            {"id": "nobody/gone", "task": "summarization", "description": "deleted from the Hub"}]
    output.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = run_refresh(fake_hub, tmp_path, "--output", str(output), "--keep-models")
    assert result.returncode == 0, result.stderr
    assert "nobody/gone: look-up failed" in result.stdout and "updated the facts of 2 entries" in result.stdout
    bert, canny, gone = Catalog.load(output).models
    assert (bert.description, bert.local, bert.facts.model_type, bert.downloads) == ("my words", False, "bert", 3000)
    assert not bert.runs_locally(use_cache=False)  # the file's own `local: false` still holds
    # the ControlNet's text width comes from its config.json (the Hub's config says nothing of it)
    assert (canny.facts.pipeline_class, canny.facts.cross_attention_dim) == ("ControlNetModel", 768)
    assert canny.facts.weight_format == "safetensors" and canny.runs_locally(use_cache=False)
    assert gone.description == "deleted from the Hub" and gone.facts.library_name is None


def test_refresh_reports_hub_errors_in_one_line(fake_hub, tmp_path):
    FakeHub.fail_listing = True
    try:
        result = run_refresh(fake_hub, tmp_path, "--output", str(tmp_path / "c.jsonl"), "--task", "summarization")
    finally:
        FakeHub.fail_listing = False
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: cannot list 'summarization'")
    assert not (tmp_path / "c.jsonl").exists()


def test_refresh_without_network_fails_fast_in_one_line(tmp_path):
    with socket.socket() as probe:  # a loopback port that nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    result = run_refresh(closed, tmp_path, "--output", str(tmp_path / "c.jsonl"))
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("error: cannot reach the Hugging Face Hub") and result.stderr.count("\n") == 1


def test_refresh_refuses_in_offline_mode(tmp_path, capsys):
    from jarvis.catalog.refresh import main, refresh, refresh_facts

    with pytest.raises(CatalogError, match="HF_HUB_OFFLINE"):
        refresh(tmp_path / "c.jsonl")
    with pytest.raises(CatalogError, match="HF_HUB_OFFLINE"):
        refresh_facts(tmp_path / "c.jsonl")
    assert main(["--output", str(tmp_path / "c.jsonl"), "--task", "no-such-task"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
