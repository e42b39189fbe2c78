"""The text runners on tiny real models, through LocalExecutor, offline.

Each runner: output types and detail shape, a 5000-word input still runs (truncation), and a
second call reuses the cached load."""
from __future__ import annotations

import pytest

from jarvis.errors import TaskError
from jarvis.execution.local import LocalExecutor
from jarvis.files.store import ResourceStore
from jarvis.runners.base import Device, RunContext, TaskInputs
from jarvis.runners.options import RunOptions
from jarvis.runners.registry import local_runner
from tests.helpers import check_detail

LONG = " ".join(["Clara lives in Berkeley and Hugging Face is based in Paris."] * 460)  # ~5000 words
QUESTION = "Where does Clara live?"
CONTEXT = "My name is Clara and I live in Berkeley, California. Hugging Face is based in Paris."
CSV = "fixed_acidity,volatile_acidity,alcohol\n7.4,0.7,9.4\n7.8,0.88,9.8\n10.3,0.32,12.1\n"

CASES = {  # task: (model id, texts for a normal call)
    "token-classification": ("dslim/bert-base-NER", [CONTEXT]),
    "text-classification": ("distilbert/distilbert-base-uncased-finetuned-sst-2-english", ["I loved this movie."]),
    "summarization": ("facebook/bart-large-cnn", [CONTEXT]),
    "translation": ("Helsinki-NLP/opus-mt-en-fr", ["The house is wonderful."]),
    "question-answering": ("distilbert/distilbert-base-cased-distilled-squad", [QUESTION, CONTEXT]),
    "conversational": ("Qwen/Qwen2.5-0.5B-Instruct", ["Hello, how are you?"]),
    "text-generation": ("openai-community/gpt2", ["The quick brown fox"]),
    "text2text-generation": ("google/flan-t5-base", ["Translate English to German: the house is wonderful."]),
    "sentence-similarity": ("sentence-transformers/all-MiniLM-L6-v2", ["The cat sat.", "A cat was sitting."]),
    "tabular-classification": ("scikit-learn/tabular-playground", [CSV]),
}


def _long_texts(task: str) -> list[str]:
    if task == "question-answering":
        return [QUESTION, LONG + " " + CONTEXT]
    if task == "sentence-similarity":
        return [LONG, "Clara lives in Berkeley."]
    if task == "tabular-classification":
        return [CSV.splitlines()[0] + "\n" + "\n".join(["7.4,0.7,9.4"] * 5000)]
    return [LONG]


@pytest.fixture(scope="module")
def executor(hub_cache) -> LocalExecutor:
    import importlib

    from tests.tiny import BUILDERS, build_all
    text_modules = ("tests.tiny.text", "tests.tiny.llm")   # only the text builders (the chat model's among them)
    for name in text_modules:
        importlib.import_module(name)
    build_all(hub_cache, only={rid for rid, fn in BUILDERS.items() if fn.__module__ in text_modules})
    return LocalExecutor(device="cpu", memory_budget_gb=1.0, options=RunOptions(max_new_tokens=8))


@pytest.fixture()
def store(tmp_path) -> ResourceStore:
    return ResourceStore(tmp_path / "session")


def _ctx(store: ResourceStore, **options) -> RunContext:
    return RunContext(device=Device(), new_file=store.new_path, options=RunOptions(**options))


def _run(executor, store, task, texts, **options):
    model = options.pop("model", None) or CASES[task][0]
    return executor.run(task, model, TaskInputs(text=list(texts)), _ctx(store, **options))


def test_every_text_task_has_a_runner():
    for task in CASES:
        assert local_runner(task).task == task


@pytest.mark.parametrize("task", list(CASES))
def test_runner_output_and_cache(executor, store, task):
    model, texts = CASES[task]
    out = _run(executor, store, task, texts)
    assert isinstance(out.text, str) and out.text.strip()
    assert out.image is None and out.audio is None and out.video is None
    check_detail(task, out.detail)  # JSON-serialisable, the result under the key remote adapters use too
    assert executor.is_loaded(task, model)
    loads = executor.cache.stats.loads
    again = _run(executor, store, task, texts)
    assert isinstance(again.text, str)
    assert executor.cache.stats.loads == loads  # second call reused the cached load


@pytest.mark.parametrize("task", list(CASES))
def test_very_long_input_is_truncated(executor, store, task):
    out = _run(executor, store, task, _long_texts(task))
    assert isinstance(out.text, str) and out.text.strip()
    assert out.detail["truncated"] is (task != "tabular-classification")


def test_detail_shapes(executor, store):
    ner = _run(executor, store, "token-classification", [CONTEXT]).detail
    for entity in ner["entities"]:
        assert set(entity) >= {"entity", "word", "score", "start", "end"}
        assert CONTEXT[entity["start"]:entity["end"]] == entity["word"]
    labels = _run(executor, store, "text-classification", ["great"]).detail["labels"]
    assert {label["label"] for label in labels} == {"POSITIVE", "NEGATIVE"}
    assert abs(sum(label["score"] for label in labels) - 1.0) < 1e-3
    qa = _run(executor, store, "question-answering", [QUESTION, CONTEXT])
    if qa.detail["answer"]:
        assert CONTEXT[qa.detail["start"]:qa.detail["end"]].strip() == qa.detail["answer"] == qa.text
        assert 0.0 < qa.detail["score"] <= 1.0
    sim = _run(executor, store, "sentence-similarity", ["same words", "same words"])
    assert sim.text == "similarity: 1.00" and sim.detail["pooling"] == "mean"
    fox = " ".join(["The quick brown fox jumps over the lazy dog."] * 4)  # ~46 tokens: over max_seq_length 32
    assert _run(executor, store, "sentence-similarity", [fox, "a fox"]).detail["truncated"] is True
    table = _run(executor, store, "tabular-classification", [CSV]).detail["predictions"]
    assert [row["row"] for row in table] == [1, 2, 3]
    assert all(row["label"] in (5, 6, 7) and 0 < row["score"] <= 1 for row in table)


def test_generation_length_follows_options(executor, store):
    out = _run(executor, store, "text-generation", ["The quick brown fox"], max_new_tokens=5)
    assert out.detail["new_tokens"] <= 5 and out.text.startswith("The quick brown fox")
    assert out.detail["prompt_included"] is True


@pytest.mark.parametrize("model,target", [("Helsinki-NLP/opus-mt-en-de", "German"),
                                          ("Helsinki-NLP/opus-mt-mul-en", "English")])
def test_translation_other_marian_pairs(executor, store, model, target):
    out = _run(executor, store, "translation", ["the dog sleeps."], model=model)
    assert isinstance(out.text, str) and out.detail["target_language"] == target


def test_translation_instruction_names_the_target(executor, store):
    out = _run(executor, store, "translation", ["Translate to German: the dog sleeps."],
               model="Helsinki-NLP/opus-mt-en-de")
    assert out.detail["target_language"] == "German"
    with pytest.raises(TaskError, match="translates into French"):
        _run(executor, store, "translation", ["Translate to German: the dog sleeps."])


def test_translation_with_t5_uses_a_prefix(executor, store):
    out = _run(executor, store, "translation", ["the house"], model="google/flan-t5-base",
               target_language="de")
    assert out.detail["target_language"] == "German"
    out = _run(executor, store, "translation", ["Translate English to Spanish: the house"],
               model="google/flan-t5-base")
    assert out.detail["target_language"] == "Spanish"
    # the seq2seq task types share one load of a model
    assert executor.is_loaded("text2text-generation", "google/flan-t5-base")


def test_table_from_a_session_csv_file(executor, store):
    (store.root / "wine.csv").write_text(CSV)
    out = _run(executor, store, "tabular-classification", ["wine.csv"])
    assert out.text.count("row ") == 3


def test_headerless_table_gets_model_columns(executor, store):
    out = _run(executor, store, "tabular-classification", ["7.4,0.7,9.4\n7.8,0.88,9.8\n"])
    assert len(out.detail["predictions"]) == 2


def test_clear_errors(executor, store):
    with pytest.raises(TaskError, match="arbitrary code"):
        _run(executor, store, "tabular-classification", [CSV], model="julien-c/wine-quality")
    with pytest.raises(TaskError, match="columns"):
        _run(executor, store, "tabular-classification", ["a,b\n1,2\n"])
    with pytest.raises(TaskError, match="two texts"):
        _run(executor, store, "question-answering", [QUESTION])
    with pytest.raises(TaskError, match="not a file of this session"):
        _run(executor, store, "tabular-classification", ["/etc/missing.csv"])


def test_text_generation_with_an_instruct_model_follows_its_chat_template(executor, store):
    """The catalog's first text-generation model is an instruct model: the prompt is an instruction
    given through its chat template, and the output is what it writes (the prompt is not echoed)."""
    out = _run(executor, store, "text-generation", ["Write one line about the sea."],
               model="Qwen/Qwen2.5-0.5B-Instruct", max_new_tokens=4)
    assert out.detail["chat_template"] is True and out.detail["prompt_included"] is False
    assert not out.text.startswith("Write one line") and out.detail["new_tokens"] <= 4
    base = _run(executor, store, "text-generation", ["The quick brown fox"], max_new_tokens=3)
    assert base.detail["chat_template"] is False and base.text.startswith("The quick brown fox")
