"""Eligibility from architecture, never from names: facts read from a repo's files (the Hub's or the
local cache's), the verdict per task type, models published under unrelated names, and the facts the
shipped catalog records (checked against the replicas the tests build under the same ids)."""
from __future__ import annotations

import json
import shutil

import pytest
from PIL import Image

from jarvis.catalog.eligibility import runs_locally, verdict
from jarvis.catalog.entries import Catalog
from jarvis.catalog.facts import ModelFacts, cached_facts, facts_from_files, weight_files
from jarvis.pipeline.controller import Controller
from jarvis.session import Session
from tests.fakes.llm_server import ScriptedLLM
from tests.helpers import config_for, plan_json, run_to_end
from tests.tiny import snapshot_dir

# ---------------------------------------------------------------- facts from a repo's files


def test_weight_files_are_the_ones_a_loader_reads():
    assert weight_files(["model.safetensors", "pytorch_model.bin", "tf_model.h5", "training_args.bin"]) == \
        ("safetensors", ["model.safetensors"])
    assert weight_files(["pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin",
                         "training_args.bin", "optimizer.pt"]) == \
        ("bin", ["pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin"])
    sd = ["model_index.json", "v1-5-pruned.safetensors", "unet/diffusion_pytorch_model.safetensors",
          "unet/diffusion_pytorch_model.fp16.safetensors", "vae/diffusion_pytorch_model.safetensors"]
    assert weight_files(sd) == ("safetensors", ["unet/diffusion_pytorch_model.safetensors",
                                                "vae/diffusion_pytorch_model.safetensors"])
    assert weight_files(["tf_model.h5"]) == ("h5", ["tf_model.h5"])
    assert weight_files(["README.md"]) == (None, [])


def test_facts_from_configs_of_each_library():
    bert = facts_from_files({"model_type": "bert", "architectures": ["BertModel"]}, None,
                            ["config.json", "modules.json", "model.safetensors", "vocab.txt"], {"model.safetensors": 9})
    assert (bert.library_name, bert.model_type, bert.architectures) == ("sentence-transformers", "bert", ("BertModel",))
    assert (bert.weight_format, bert.weight_bytes, bert.files) == ("safetensors", 9, ("config.json", "modules.json",
                                                                                       "vocab.txt"))
    pipe = facts_from_files(None, {"_class_name": "StableDiffusionXLPipeline"}, ["model_index.json"])
    assert (pipe.library_name, pipe.pipeline_class, pipe.weight_bytes) == ("diffusers", "StableDiffusionXLPipeline", None)
    controlnet = facts_from_files({"_class_name": "ControlNetModel", "cross_attention_dim": 2048}, None, [])
    assert (controlnet.pipeline_class, controlnet.cross_attention_dim) == ("ControlNetModel", 2048)
    pickle = facts_from_files({"sklearn": {"model": {"file": "skops-3fs68p31.pkl"}}}, None, ["skops-3fs68p31.pkl"])
    declared = facts_from_files({"sklearn": {"model": {"file": "m.skops"}, "model_format": "pickle"}}, None, [])
    assert (pickle.library_name, pickle.weight_format, declared.weight_format) == ("sklearn", "pickle", "pickle")
    assert facts_from_files({"not": "a config"}, None, []) == ModelFacts()
    with pytest.raises(ValueError, match="architectures"):
        ModelFacts.from_json({"architectures": "BertModel"})
    assert ModelFacts.from_json(bert.to_json()) == bert


@pytest.mark.parametrize("task, facts, expected", [
    ("text-to-speech", ModelFacts(library_name="transformers", model_type="vits"), True),
    ("text-to-speech", ModelFacts(model_type="speecht5", architectures=("SpeechT5ForTextToSpeech",)), False),
    ("text-to-speech", ModelFacts(library_name="transformers"), None),       # which architecture? try it
    ("audio-to-audio", ModelFacts(model_type="speecht5", architectures=("SpeechT5ForSpeechToSpeech",)), True),
    ("audio-to-audio", ModelFacts(model_type="speecht5", architectures=("SpeechT5ForTextToSpeech",)), False),
    ("audio-to-audio", ModelFacts(library_name="speechbrain"), False),
    ("image-to-text", ModelFacts(model_type="vision-encoder-decoder"), True),
    ("visual-question-answering", ModelFacts(model_type="vilt"), True),
    ("document-question-answering", ModelFacts(model_type="layoutlm"), False),
    ("text-classification", ModelFacts(library_name="transformers", weight_format="h5"), False),  # TensorFlow only
    ("text-classification", ModelFacts(), None),
    ("tabular-classification", ModelFacts(library_name="sklearn", weight_format="skops"), True),
    ("tabular-classification", ModelFacts(library_name="sklearn", weight_format="joblib"), False),
    ("tabular-classification", ModelFacts(library_name="sklearn"), None),
    ("text-to-image", ModelFacts(library_name="diffusers", pipeline_class="StableDiffusionXLPipeline"), True),
    ("text-to-image", ModelFacts(library_name="diffusers", pipeline_class="FluxPipeline"), False),
    ("depth-text-to-image", ModelFacts(pipeline_class="ControlNetModel", cross_attention_dim=768), True),
    ("depth-text-to-image", ModelFacts(pipeline_class="ControlNetModel"), None),
    ("canny-control", ModelFacts(library_name="transformers"), False),     # built in: no model at all
])
def test_verdict_from_facts(task, facts, expected):
    assert verdict(task, facts) is expected
    assert runs_locally(task, facts) is (expected is not False)
    assert not runs_locally(task, facts, declared=False)


def test_library_named_in_tags_counts_as_a_fact():
    assert verdict("token-classification", ModelFacts(), ["flair", "token-classification"]) is False
    assert verdict("token-classification", ModelFacts(), ["transformers", "onnx", "bert"]) is True


# ---------------------------------------------------------------- unrelated names, cached configs

RENAMED = {"acme/storyteller-voice": "facebook/mms-tts-eng", "acme/picture-quiz": "dandelin/vilt-b32-finetuned-vqa",
           "acme/photo-describer": "nlpconnect/vit-gpt2-image-captioning", "acme/narrator": "dslim/bert-base-NER"}


@pytest.fixture(scope="module")
def renamed(tiny_models, hub_cache):
    """Replicas saved again under ids that say nothing of their architecture."""
    for new, real in RENAMED.items():
        shutil.copytree(snapshot_dir(hub_cache, real), snapshot_dir(hub_cache, new), dirs_exist_ok=True)
    return RENAMED


def test_models_under_unrelated_names_are_judged_by_their_own_config(renamed, tmp_path):
    rows = [{"id": "acme/storyteller-voice", "task": "text-to-speech", "pipeline_tag": "text-to-speech",
             "downloads": 5, "likes": 0, "meta": {"tags": ["text-to-speech"]}, "description": "A voice."},
            {"id": "acme/narrator", "task": "text-to-speech", "pipeline_tag": "text-to-speech", "downloads": 9,
             "likes": 0, "meta": {"tags": ["text-to-speech"]}, "description": "Reads aloud."},
            {"id": "acme/picture-quiz", "task": "visual-question-answering", "pipeline_tag": "visual-question-answering",
             "downloads": 5, "likes": 0, "meta": {}, "description": "Answers."},
            {"id": "acme/photo-describer", "task": "image-to-text", "pipeline_tag": "image-to-text", "downloads": 5,
             "likes": 0, "meta": {"tags": ["image-captioning"]}, "description": "Captions."}]
    path = tmp_path / "p0.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    catalog = Catalog.load(path)
    voice = catalog.get("acme/storyteller-voice")
    assert voice.facts == ModelFacts(pipeline_tag="text-to-speech")  # the HuggingGPT line says no architecture
    assert cached_facts("acme/storyteller-voice").model_type == "vits"
    assert verdict("text-to-speech", voice.current_facts()) is True
    # the cached config of a BERT tagger rules it out of text-to-speech, whatever its entry says
    assert verdict("text-to-speech", catalog.get("acme/narrator").current_facts()) is False
    assert [m.id for m in catalog.candidates("text-to-speech", mode="local")] == ["acme/storyteller-voice"]
    assert [m.id for m in catalog.candidates("visual-question-answering", mode="local")] == ["acme/picture-quiz"]
    assert [m.id for m in catalog.candidates("image-to-text", mode="local")] == ["acme/photo-describer"]


def test_models_under_unrelated_names_run(renamed, tmp_path):
    rows = [{"id": new, "task": task, "downloads": 1} for new, task in
            [("acme/storyteller-voice", "text-to-speech"), ("acme/picture-quiz", "visual-question-answering"),
             ("acme/photo-describer", "image-to-text")]]
    catalog = tmp_path / "catalog.jsonl"
    catalog.write_text("".join(json.dumps(r) + "\n" for r in rows))
    picture = tmp_path / "photo.png"
    Image.new("RGB", (64, 48), (200, 40, 40)).save(picture)
    plan = plan_json(("text-to-speech", {"text": "hello there"}),
                     ("visual-question-answering", {"image": "photo.png", "text": "what colour is it?"}),
                     ("image-to-text", {"image": "photo.png"}))
    with ScriptedLLM(plan=plan, answer="Done.") as llm:
        cfg = config_for(llm.url, catalog={"path": str(catalog)}, inference={"mode": "local"},
                         local={"device": "cpu"})
        controller = Controller(cfg)
        try:
            _, result, failed = run_to_end(controller, Session.create(cfg, root=tmp_path / "s"), "do it", [picture])
        finally:
            controller.close()
    assert failed is None
    tasks = {t.task: t for t in result.tasks}
    assert all(t.status == "done" for t in tasks.values()), [(t.task, t.error) for t in tasks.values()]
    assert tasks["text-to-speech"].model == "acme/storyteller-voice" and tasks["text-to-speech"].outputs["audio"]
    assert tasks["visual-question-answering"].detail["answers"]
    assert "caption" in tasks["image-to-text"].detail


# ---------------------------------------------------------------- the shipped catalog's facts

def test_shipped_entries_carry_facts():
    shipped = Catalog.load()
    known = [m for m in shipped if m.facts.architecture_known]
    assert all(m.facts.library_name for m in shipped if not m.space) and len(known) >= 97   # a Space has no model facts
    # the models the runners cannot load are out of local mode by their facts, not by a flag
    for model_id in ("impira/layoutlm-document-qa", "speechbrain/metricgan-plus-voicebank", "julien-c/wine-quality"):
        entry = shipped.get(model_id)
        assert entry.local is None and not entry.runs_locally(use_cache=False), model_id


def test_recorded_facts_agree_with_the_replicas(tiny_models):
    """A replica stands for a catalog model only if its config says what the entry records."""
    shipped = Catalog.load()
    checked = 0
    for repo_id in tiny_models:
        entry = shipped.get(repo_id)
        if entry is None or not entry.facts.architecture_known:
            continue
        replica, recorded = cached_facts(repo_id), entry.facts
        for name in ("model_type", "pipeline_class", "cross_attention_dim"):
            if getattr(recorded, name) is not None:
                assert getattr(replica, name) == getattr(recorded, name), (repo_id, name)
        if recorded.architectures:
            assert replica.architectures == recorded.architectures, repo_id
        checked += 1
    assert checked >= 30


# The Hub's task tag of a model shipped for one of our task types: the same name, or the tag the Hub gives
# the models that serve it (a chat model is tagged text-generation, a vision-language model image-text-to-text).
_HUB_TAGS = {"conversational": {"text-generation"}, "translation": {"text2text-generation"},
             "image-to-text": {"image-text-to-text"}, "visual-question-answering": {"image-text-to-text"},
             "document-question-answering": {"image-text-to-text"}, "image-to-image": {"text-to-image"},
             "image-editing": {"image-to-image"}, "canny-text-to-image": {"image-to-image"},
             "depth-text-to-image": {"image-to-image"}}

# Models whose Hub pages, as read, show no license.
_NO_LICENSE_SHOWN = {"dbmdz/bert-large-cased-finetuned-conll03-english", "ProsusAI/finbert",
                     "cardiffnlp/twitter-roberta-base-sentiment-latest", "j-hartmann/emotion-english-distilroberta-base",
                     "BenjaminB/test-skops-card-creator-02", "google/pegasus-xsum"}


def test_shipped_hub_facts_coverage():
    """The Hub facts read from the models' pages (catalog README, "Hub facts ... sources") stay recorded,
    and agree with each other and with the entry's task."""
    models = [m for m in Catalog.load() if not m.space]
    counts = {name: sum(getattr(m.facts, name) not in (None, ()) for m in models)
              for name in ("pipeline_tag", "gated", "weight_format", "weight_bytes", "files")}
    assert counts["pipeline_tag"] >= 90 and counts["weight_format"] >= 91 and counts["gated"] >= 77, counts
    assert counts["weight_bytes"] >= 24 and counts["files"] >= 34, counts
    assert all(m.facts.library_name for m in models)
    by_id: dict[str, ModelFacts] = {}
    for m in models:
        f = m.facts
        if f.pipeline_tag:
            assert f.pipeline_tag in {m.task} | _HUB_TAGS.get(m.task, set()), (m.id, m.task, f.pipeline_tag)
            assert m.license or m.id in _NO_LICENSE_SHOWN, m.id
        if f.weight_bytes is not None:
            assert f.weight_format and f.weight_bytes > 10_000_000, m.id     # a size is the size of named weights
        if f.library_name == "transformers" and f.pipeline_tag:
            assert f.model_type and f.architectures, m.id
        if m.providers_known:
            assert m.providers_checked and len(m.providers_checked) == 10, m.id   # YYYY-MM-DD of the look-up
        assert by_id.setdefault(m.id, f) == f, m.id       # a model shipped for two tasks: the same facts
