"""Translation by language pair: the pair read from the request (source detected when not named), the
candidates that cannot do it filtered out before selection, a clear message when none can, and NLLB-200
run with the target language forced, on a replica with NLLB's real tokenizer kind and language codes."""
from __future__ import annotations

import json

import pytest

from jarvis.catalog.entries import Catalog
from jarvis.catalog.languages import best_code, covers, detect, language, read_request
from jarvis.errors import TaskError
from jarvis.execution.local import LocalExecutor
from jarvis.files.store import ResourceStore
from jarvis.pipeline.plan import Ref, Task
from jarvis.pipeline.selection import for_language_pair
from jarvis.runners.base import Device, RunContext, TaskInputs
from jarvis.runners.options import RunOptions

NLLB = "facebook/nllb-200-distilled-600M"
REPLICAS = {NLLB, "Helsinki-NLP/opus-mt-en-zh", "Helsinki-NLP/opus-mt-en-fr"}


def test_language_names_and_every_code_form():
    french = language("French")
    assert french is not None and all(language(c) is french for c in ("fr", "fra", "fra_Latn", ">>fra<<", "__fr__"))
    assert language("Klingon") is None and language("") is None
    chinese = language("zh")
    assert best_code([">>cmn_Hant<<", ">>cmn_Hans<<", ">>yue_Hant<<"], chinese) == ">>cmn_Hans<<"
    assert best_code(["zho_Hant", "zho_Hans"], chinese) == "zho_Hans"
    assert best_code(["pes_Arab", "arb_Arab"], language("farsi")) == "pes_Arab"
    assert best_code(["__de__", "__fr__"], french) == "__fr__" and best_code(["deu_Latn"], french) is None
    assert covers(["en"], french) is False and covers(["mul"], french) is None and covers([], french) is None


@pytest.mark.parametrize("text,expected", [
    ("The weather is nice and the children are playing in the garden.", "english"),
    ("Le chat est sur la table et il dort dans la maison.", "french"),
    ("Der Hund schläft und das Haus ist nicht groß.", "german"),
    ("El perro duerme en la casa y no está muy cansado.", "spanish"),
    ("我爱巴黎，这座城市很美。", "chinese"), ("東京は日本の首都です。", "japanese"),
    ("Привет, как дела?", "russian"), ("مرحبا كيف حالك", "arabic"), ("안녕하세요 반갑습니다", "korean"),
])
def test_source_language_is_detected_from_the_text(text, expected):
    assert detect(text).name == expected


def test_detection_says_unknown_rather_than_guessing():
    assert detect("12345 !!!") is None and detect("Paris") is None


def test_the_request_names_the_pair_or_the_source_is_detected():
    asked = read_request("Translate from German to English: Der Hund schläft.")
    assert (asked.source.name, asked.target.name, asked.body, asked.source_detected) == (
        "german", "english", "Der Hund schläft.", False)
    guessed = read_request("Translate to French: the dog is sleeping in the house.")
    assert guessed.target.name == "french" and guessed.source.name == "english" and guessed.source_detected
    assert read_request("the house", target="de").target.name == "german"


# ---------------------------------------------------------------- candidates filtered by the pair

def _task(text) -> Task:
    return Task(id=0, task="translation", dep=[-1], args={"text": [text]})


def test_shipped_catalog_offers_only_models_that_cover_the_pair():
    catalog = Catalog.load()
    pool = catalog.candidates("translation", k=len(catalog), mode="local")
    assert pool[0].id == NLLB   # a many-to-many model ranks first
    to_german = [m.id for m in for_language_pair(_task("Translate to German: the house is big."), pool)]
    assert NLLB in to_german and "Helsinki-NLP/opus-mt-en-de" in to_german
    assert "Helsinki-NLP/opus-mt-en-fr" not in to_german and "Helsinki-NLP/opus-mt-en-zh" not in to_german
    from_german = [m.id for m in for_language_pair(_task("Translate to French: Der Hund schläft im Haus."), pool)]
    assert NLLB in from_german and "Helsinki-NLP/opus-mt-en-fr" not in from_german   # source detected: German
    # the text comes from another task: the target still filters, the source is unknown until it runs
    later = [m.id for m in for_language_pair(_task("Translate to French: <GENERATED>-0"), pool)]
    assert "Helsinki-NLP/opus-mt-en-fr" in later and "Helsinki-NLP/opus-mt-en-de" not in later
    whole = Task(id=1, task="translation", dep=[0], args={"text": [Ref(0)]})
    assert for_language_pair(whole, pool) == pool and whole.error is None


def test_no_candidate_for_the_pair_is_a_clear_error(tmp_path):
    rows = [{"id": f"Helsinki-NLP/opus-mt-en-{t}", "task": "translation", "description": "pair",
             "library_name": "transformers", "model_type": "marian", "architectures": ["MarianMTModel"],
             "source_languages": ["en"], "target_languages": [t]} for t in ("fr", "de")]
    path = tmp_path / "catalog.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    pool = Catalog.load(path).candidates("translation", mode="local")
    task = _task("Translate to Zulu: good morning to all of you")
    assert for_language_pair(task, pool) == []
    assert "English to Zulu" in task.error and "nllb-200" in task.error


# ---------------------------------------------------------------- the runners on replicas

@pytest.fixture(scope="module")
def executor(hub_cache) -> LocalExecutor:
    from tests.tiny import build_all
    build_all(hub_cache, only=REPLICAS)
    return LocalExecutor(device="cpu", memory_budget_gb=1.0, options=RunOptions(max_new_tokens=6))


def _run(executor, tmp_path, model, text, **options):
    store = ResourceStore(tmp_path / "session")
    ctx = RunContext(device=Device(), new_file=store.new_path, options=RunOptions(**options))
    return executor.run("translation", model, TaskInputs(text=[text]), ctx)


def test_nllb_forces_the_target_language_and_reads_the_source_code(executor, tmp_path):
    out = _run(executor, tmp_path, NLLB, "Translate to French: the house is wonderful.")
    assert out.detail["target_language"] == "French" and out.detail["source_language"] == "English"
    assert out.detail["language_codes"] == {"source": "eng_Latn", "target": "fra_Latn"}
    out = _run(executor, tmp_path, NLLB, "Der Hund schläft und das Haus ist nicht groß.", target_language="zh")
    assert out.detail["language_codes"] == {"source": "deu_Latn", "target": "zho_Hans"}
    assert out.detail["source_detected"] is True


def test_nllb_needs_a_target_it_knows(executor, tmp_path):
    with pytest.raises(TaskError, match="say which language"):
        _run(executor, tmp_path, NLLB, "the house is wonderful.")
    out = _run(executor, tmp_path, NLLB, "Le chat est sur la table et il dort.")   # French source: into English
    assert out.detail["target_language"] == "English"


def test_multi_target_marian_gets_its_own_language_token(executor, tmp_path):
    out = _run(executor, tmp_path, "Helsinki-NLP/opus-mt-en-zh", "Translate to Chinese: the house is wonderful.")
    assert out.detail["target_language"] == "Chinese" and out.detail["language_codes"]["target"] == ">>cmn_Hans<<"
    with pytest.raises(TaskError, match="translates into French, not German"):
        _run(executor, tmp_path, "Helsinki-NLP/opus-mt-en-fr", "Translate to German: the house.")
