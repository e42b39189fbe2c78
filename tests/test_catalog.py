"""The model catalog: shipped file (with its recorded facts), HuggingGPT's p0 file, ranking, modes and
bad input. The Hub refresh is in test_catalog_refresh.py, eligibility from facts in test_catalog_facts.py."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from jarvis.catalog.card_text import summarize_card
from jarvis.catalog.entries import Catalog, ModelInfo, describe, parse_entry
from jarvis.catalog.facts import ModelFacts
from jarvis.errors import CatalogError
from jarvis.runners import registry as tasktypes

ROOT = Path(__file__).resolve().parent.parent

FIRST = {
    "token-classification": "dslim/bert-base-NER",
    "text-classification": "distilbert/distilbert-base-uncased-finetuned-sst-2-english",
    "summarization": "facebook/bart-large-cnn",
    "translation": "facebook/nllb-200-distilled-600M",
    "question-answering": "distilbert/distilbert-base-cased-distilled-squad",
    "conversational": "Qwen/Qwen2.5-0.5B-Instruct",
    "text-generation": "Qwen/Qwen2.5-0.5B-Instruct",
    "text2text-generation": "google/flan-t5-base",
    "sentence-similarity": "intfloat/multilingual-e5-small",
    "tabular-classification": "BenjaminB/test-skops-card-creator-02",
    "image-classification": "google/vit-base-patch16-224",
    "object-detection": "PekingU/rtdetr_r50vd",
    "image-segmentation": "nvidia/segformer-b0-finetuned-ade-512-512",
    "depth-estimation": "depth-anything/Depth-Anything-V2-Small-hf",
    "depth-control": "depth-anything/Depth-Anything-V2-Small-hf",
    "image-to-text": "HuggingFaceTB/SmolVLM-256M-Instruct",
    "visual-question-answering": "HuggingFaceTB/SmolVLM-256M-Instruct",
    "document-question-answering": "HuggingFaceTB/SmolVLM-256M-Instruct",
    "text-to-image": "stable-diffusion-v1-5/stable-diffusion-v1-5",
    "image-to-image": "stable-diffusion-v1-5/stable-diffusion-v1-5",
    "image-editing": "timbrooks/instruct-pix2pix",
    "canny-text-to-image": "lllyasviel/sd-controlnet-canny",
    "depth-text-to-image": "lllyasviel/sd-controlnet-depth",
    "automatic-speech-recognition": "openai/whisper-large-v3-turbo",
    "text-to-speech": "nari-labs/Dia-1.6B-0626",
    "audio-classification": "MIT/ast-finetuned-audioset-10-10-0.4593",
    "audio-to-audio": "microsoft/speecht5_vc",
    "text-to-video": "ali-vilab/text-to-video-ms-1.7b",
}


def write_lines(path: Path, rows) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


# ---------------------------------------------------------------- the shipped catalog

@pytest.fixture(scope="module")
def shipped() -> Catalog:
    return Catalog.load()


def test_shipped_catalog_covers_every_task_locally(shipped):
    assert shipped.skipped == 0 and len(shipped) > 50
    for name in tasktypes.TASK_TYPES:
        local = shipped.candidates(name, k=5, mode="local")
        if name == "canny-control":
            assert local == [] and shipped.candidates(name, mode="hybrid") == []
        else:
            assert local, f"no local candidate for {name}"


# first among remote-capable models, not runnable here (hybrid mode offers it first, local mode skips it)
REMOTE_FIRST = {"text-to-image": "black-forest-labs/FLUX.1-schnell"}


def test_shipped_catalog_ranks_the_tiny_model_ids_first(shipped):
    for task, model_id in FIRST.items():
        for mode in ("local", "hybrid"):
            expected = REMOTE_FIRST.get(task, model_id) if mode == "hybrid" else model_id
            assert shipped.candidates(task, k=3, mode=mode)[0].id == expected, (task, mode)
    for task, model_id in REMOTE_FIRST.items():
        assert shipped.candidates(task, k=3, mode="remote")[0].id == model_id
        assert not shipped.get(model_id).runs_locally(use_cache=False)


def test_shipped_catalog_entries_are_well_formed(shipped):
    raw = [json.loads(line) for line in (ROOT / "jarvis/catalog/data/catalog.jsonl").read_text().splitlines()]
    seen = set()
    per_task: dict[str, int] = {}
    fact_keys = set(ModelFacts().__dataclass_fields__)
    for obj in raw:
        assert set(obj) <= {"id", "task", "downloads", "likes", "tags", "license", "description", "local",
                            "providers", "providers_checked", "space", "api_name", "params"} | fact_keys
        assert obj["task"] in tasktypes.TASK_TYPES and obj["task"] not in ("canny-control", "depth-control")
        assert (obj["task"], obj["id"]) not in seen
        seen.add((obj["task"], obj["id"]))
        assert obj["id"].count("/") == (2 if "space" in obj else 1) and 0 < len(obj["description"]) <= 300
        if "space" in obj:   # a Gradio Space's entry: no model, so no library; not counted among the models
            assert isinstance(obj["tags"], list) and obj["id"] == "spaces/" + obj["space"] and obj["api_name"]
            continue
        assert isinstance(obj["tags"], list) and obj["library_name"]  # every entry names its library
        per_task[obj["task"]] = per_task.get(obj["task"], 0) + 1
    assert all(2 <= n <= 5 for n in per_task.values()), per_task
    assert set(per_task) == set(tasktypes.TASK_TYPES) - {"canny-control", "depth-control"}
    assert shipped.get("hustvl/yolos-tiny").task == "object-detection"
    assert shipped.get("no/such-model") is None
    assert "depth-control" in shipped.tasks() and "canny-control" not in shipped.tasks()


# ---------------------------------------------------------------- HuggingGPT's p0 file

def test_hugginggpt_p0_file_loads(shared_data):
    catalog = Catalog.load(shared_data / "jarvis_p0_models.jsonl")
    assert len(catalog) == 673 and catalog.skipped == 0
    assert len(catalog.tasks()) == 25  # 24 task types plus depth-control borrowing depth-estimation
    for m in catalog:
        assert len(m.description) <= 300 and "\n" not in m.description
        for junk in ("](", "![", "<img", "</", "```", "<!--"):
            assert junk not in m.description, (m.id, m.description)
    top = catalog.candidates("text-classification", k=3, mode="hybrid")
    assert [m.downloads for m in top] == sorted((m.downloads for m in top), reverse=True)
    assert top[0].id == "distilbert-base-uncased-finetuned-sst-2-english"
    finbert = catalog.get("ProsusAI/finbert")
    assert finbert.likes == 186 and finbert.description.startswith("FinBERT is a pre-trained NLP model")
    # libraries the runners cannot load stay out of local mode; models whose architecture the file
    # does not say are tried (names decide nothing: the card's tags and library do)
    flair = catalog.get("flair/ner-english")
    assert flair is not None and not flair.runs_locally(use_cache=False)
    assert not catalog.get("speechbrain/metricgan-plus-voicebank").runs_locally(use_cache=False)
    for tried in ("microsoft/speecht5_vc", "nlpconnect/vit-gpt2-image-captioning", "scikit-learn/tabular-playground",
                  "julien-c/wine-quality"):
        assert catalog.get(tried).runs_locally(use_cache=False), tried
    assert catalog.get("scikit-learn/tabular-playground").facts.library_name == "sklearn"
    prompt = describe(catalog.candidates("summarization", k=5, mode="local"))
    assert len(prompt.splitlines()) == 5 and len(prompt) < 5 * 190


def test_card_summary_is_one_clean_paragraph():
    card = """---
license: mit
tags: [ner]
---
<!-- generated -->
# Model Card for demo/ner

![badge](https://img.shields.io/badge/x.svg) [![ci](https://ci/x.svg)](https://ci)

<p align="center"><img src="logo.png"/></p>

**demo/ner** is a *BERT* model for [named entity recognition](https://en.wikipedia.org/wiki/NER)
trained on `CoNLL-2003` &amp; friends. See https://example.org/paper for details.

## How to use

```python
from transformers import pipeline
```

| metric | value |
|---|---|
| f1 | 0.9 |
"""
    text = summarize_card(card)
    assert text == ("demo/ner is a BERT model for named entity recognition trained on CoNLL-2003 & friends. "
                    "See for details.")
    long = summarize_card("Words " * 200)
    assert len(long) <= 300 and long.endswith("...")
    assert summarize_card("# Title\n\n[More Information Needed]\n") == ""


# ---------------------------------------------------------------- ranking and modes

@pytest.fixture()
def small(tmp_path) -> Catalog:
    rows = [
        {"id": "a/unknown-1", "task": "translation", "description": "no figures", "local": True},
        {"id": "a/popular", "task": "translation", "downloads": 900, "likes": 3, "description": "most",
         "local": True, "providers": []},
        {"id": "a/remote-only", "task": "translation", "downloads": 500, "description": "served",
         "local": False, "providers": ["hf-inference"]},
        {"id": "a/unknown-2", "task": "translation", "description": "no figures either", "local": False},
        {"id": "a/less", "task": "translation", "downloads": 10, "description": "less", "local": True},
        {"id": "a/table", "task": "tabular-classification", "downloads": 1, "description": "t", "local": True},
        {"id": "a/depth", "task": "depth-estimation", "downloads": 5, "description": "d", "local": True},
        {"id": "a/ner", "task": "NER", "description": "alias", "local": True},
        {"id": "a/odd", "task": "Mystery-Task", "description": "kept", "local": True},
    ]
    return Catalog.load(write_lines(tmp_path / "c.jsonl", rows))


def test_ranking_by_downloads_unknown_last_in_file_order(small):
    ids = [m.id for m in small.candidates("translation", k=10, mode="hybrid")]
    assert ids == ["a/popular", "a/remote-only", "a/less", "a/unknown-1", "a/unknown-2"]
    assert [m.id for m in small.candidates("translation", k=2, mode="hybrid")] == ["a/popular", "a/remote-only"]
    assert [m.id for m in small.candidates("Translation", k=10, mode="hybrid", exclude=["a/popular"])][0] \
        == "a/remote-only"


def test_mode_filtering(small):
    assert [m.id for m in small.candidates("translation", k=10, mode="local")] == \
        ["a/popular", "a/less", "a/unknown-1"]
    # providers known and empty -> not remote; unknown -> the task type decides; listed -> remote
    assert [m.id for m in small.candidates("translation", k=10, mode="remote")] == \
        ["a/remote-only", "a/less", "a/unknown-1", "a/unknown-2"]
    assert small.candidates("tabular-classification", mode="remote") == []  # no remote service for tables
    assert [m.id for m in small.candidates("tabular-classification", mode="local")] == ["a/table"]
    with pytest.raises(ValueError, match="inference mode"):
        small.candidates("translation", mode="cloud")


def test_task_names_are_canonicalised_and_depth_control_borrows(small):
    assert [m.id for m in small.candidates("token-classification")] == ["a/ner"]
    assert [m.id for m in small.candidates("Mystery-Task", mode="hybrid")] == ["a/odd"]
    assert small.candidates("Mystery-Task") == []  # no local runner for a task nobody knows
    assert [m.id for m in small.candidates("depth_control")] == ["a/depth"]
    assert "depth-control" in small.tasks() and "Mystery-Task" in small.tasks()
    assert small.get("a/ner").task == "token-classification"


def test_describe_is_compact():
    model = ModelInfo(id="org/m", task="summarization", downloads=1_234_567, likes=1200,
                      description="A long description. " * 20)
    line = describe([model, ModelInfo(id="org/bare", task="summarization")])
    first, second = line.splitlines()
    assert first.startswith("- org/m (1.2M downloads, 1.2k likes): A long description.")
    assert len(first) < 160 and first.endswith("...")
    assert second == "- org/bare"


def test_malformed_lines_are_skipped_and_counted(tmp_path, caplog):
    path = write_lines(tmp_path / "bad.jsonl", [
        {"id": "ok/one", "task": "summarization", "description": "fine", "local": True},
        "{not json",
        "[1, 2]",
        {"task": "summarization"},
        {"id": "bad/downloads", "task": "summarization", "downloads": "many"},
        {"id": "bad/providers", "task": "summarization", "providers": "hf-inference"},
        "",
        {"id": "ok/two", "task": "summarization", "description": "fine too"},
    ])
    with caplog.at_level(logging.WARNING, logger="jarvis.catalog.entries"):
        catalog = Catalog.load(path)
    assert [m.id for m in catalog] == ["ok/one", "ok/two"] and catalog.skipped == 5
    assert "skipped 5 malformed line(s)" in caplog.text and "line 2" in caplog.text


def test_unreadable_file_raises_one_line_error(tmp_path):
    for path in (tmp_path / "missing.jsonl", tmp_path):
        with pytest.raises(CatalogError) as info:
            Catalog.load(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)
    binary = tmp_path / "bin.jsonl"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(CatalogError):
        Catalog.load(binary)


def test_p0_format_entry_parsing():
    entry = parse_entry({"id": "x/y", "task": "image-to-text", "pipeline_tag": "image-to-text", "downloads": 7,
                         "likes": 1, "meta": {"license": ["mit", "apache-2.0"], "tags": "captioning"},
                         "description": "\n\n## Intro\n\nA [captioner](http://a.b) model for pictures."})
    assert entry.license == "mit, apache-2.0" and entry.tags == ["captioning"]
    assert entry.description == "A captioner model for pictures." and not entry.providers_known


def test_models_over_the_memory_budget_rank_after_those_that_fit():
    """A local model whose recorded weights exceed the budget goes last, however popular; remote mode ignores it."""
    def entry(model_id: str, downloads: int, size: int | None) -> ModelInfo:
        row = {"id": model_id, "task": "summarization", "downloads": downloads, "library_name": "transformers",
               "model_type": "bart", "architectures": ["BartForConditionalGeneration"]}
        if size is not None:
            row |= {"weight_format": "safetensors", "weight_bytes": size}
        return parse_entry(row)

    catalog = Catalog([entry("big/one", 900, 12 * 1024 ** 3), entry("small/one", 10, 1024 ** 3),
                       entry("unknown/size", 5, None)])
    budget = 8 * 1024 ** 3
    assert [m.id for m in catalog.candidates("summarization", mode="local", budget_bytes=budget)] == \
        ["small/one", "unknown/size", "big/one"]
    assert [m.id for m in catalog.candidates("summarization", mode="hybrid", budget_bytes=budget)][-1] == "big/one"
    assert [m.id for m in catalog.candidates("summarization", mode="local")][0] == "big/one"
    assert [m.id for m in catalog.candidates("summarization", mode="remote", budget_bytes=budget)][0] == "big/one"


def test_the_shipped_file_is_written_as_refresh_writes_it():
    """Each line is its entry's canonical JSON, so a refresh that keeps an entry keeps its line byte for byte
    (hand edits that put keys in another order would make every refresh rewrite the whole file)."""
    path = Path(__file__).resolve().parents[1] / "jarvis" / "catalog" / "data" / "catalog.jsonl"
    for line in path.read_text(encoding="utf-8").splitlines():
        assert json.dumps(parse_entry(json.loads(line)).to_json(), ensure_ascii=False) == line, line[:120]
