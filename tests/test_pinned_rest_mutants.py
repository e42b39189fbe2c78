"""Pinned where a small slip would pass the other tests unnoticed: the translation candidates kept for
a language pair (the source unknown while the text is another task's output, a source alone, no
text, other task types) and the message when none is left; the selector's unreadable answer; a
saved conversation's files restored into a session's store, and nothing outside it; long names
keeping their suffix (and their cap when repeated); the store's messages whole; arguments read
under unknown names around a reference; a reference to a task of several outputs."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from jarvis.catalog.entries import Catalog, ModelInfo
from jarvis.errors import ResourceError
from jarvis.files.store import NAME_CHARS, ResourceStore
from jarvis.llm.client import Usage
from jarvis.pipeline.plan import Ref, Task
from jarvis.pipeline.plan_reading import parse_plan, plan_from_items
from jarvis.pipeline.selection import for_language_pair, select_models
from tests.fakes.fake_llm import FakeLLM
from tests.helpers import plan_json

pytestmark = pytest.mark.timeout(30)


# ---------------------------------------------------------------- translation candidates by pair

def pairs_catalog(tmp_path: Path, *pairs: tuple[str, str]) -> list[ModelInfo]:
    """The local translation candidates of a catalog holding one Marian model per (source, target)."""
    rows = [{"id": f"Helsinki-NLP/opus-mt-{s}-{t}", "task": "translation", "description": "pair",
             "library_name": "transformers", "model_type": "marian", "architectures": ["MarianMTModel"],
             "downloads": 1000 - i, "source_languages": [s], "target_languages": [t]}
            for i, (s, t) in enumerate(pairs)]
    path = tmp_path / "catalog.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return Catalog.load(path).candidates("translation", k=len(rows), mode="local")


def translation(*texts: object) -> Task:
    return Task(id=0, task="translation", dep=[-1], args={"text": list(texts)} if texts else {})


def ids(models: list[ModelInfo]) -> list[str]:
    return [m.id for m in models]


def test_the_words_around_another_tasks_output_do_not_decide_its_source(tmp_path):
    pool = pairs_catalog(tmp_path, ("de", "fr"), ("en", "fr"), ("en", "de"))
    # the English words around the reference say nothing of the language task 0 will write
    task = translation("Translate to French: the text of <GENERATED>-0 in the house and the garden")
    assert ids(for_language_pair(task, pool)) == ["Helsinki-NLP/opus-mt-de-fr", "Helsinki-NLP/opus-mt-en-fr"]
    assert task.error is None


def test_a_source_alone_keeps_the_models_that_read_it():
    catalog = Catalog.load()
    pool = catalog.candidates("translation", k=len(catalog), mode="local")
    task = translation("Der Hund schläft und das Haus ist nicht groß.")    # German, no target named
    assert ids(for_language_pair(task, pool)) == ["facebook/nllb-200-distilled-600M", "facebook/m2m100_418M"]
    assert task.error is None


def test_a_task_without_text_or_of_another_type_keeps_every_candidate(tmp_path):
    pool = pairs_catalog(tmp_path, ("en", "fr"), ("en", "de"))
    bare = translation()
    assert for_language_pair(bare, pool) == pool and bare.error is None
    other = Task(id=0, task="summarization", dep=[-1], args={"text": ["Translate to Zulu: good morning"]})
    assert for_language_pair(other, pool) == pool and other.error is None
    none = translation("Translate to Zulu: good morning to all of you")
    assert for_language_pair(none, []) == [] and none.error is None    # no candidate is said elsewhere


def test_no_model_for_an_unknown_source_into_the_target_names_five_tried_and_what_to_do(tmp_path):
    pool = pairs_catalog(tmp_path, *[("en", t) for t in ("fr", "de", "es", "it", "pt", "nl")])
    task = translation("Translate to Zulu: <GENERATED>-0")
    assert for_language_pair(task, pool) == []
    assert task.error == (
        "no translation model in the catalog translates any language to Zulu (tried Helsinki-NLP/opus-mt-en-fr, "
        "Helsinki-NLP/opus-mt-en-de, Helsinki-NLP/opus-mt-en-es, Helsinki-NLP/opus-mt-en-it, "
        "Helsinki-NLP/opus-mt-en-pt); add one to the catalog (e.g. facebook/nllb-200-distilled-600M covers "
        "200 languages) or ask for another language")


def test_no_model_for_a_source_with_no_target_named_says_so(tmp_path):
    pool = pairs_catalog(tmp_path, ("en", "fr"))
    task = translation("Der Hund schläft und das Haus ist nicht groß.")
    assert for_language_pair(task, pool) == []
    assert task.error == (
        "no translation model in the catalog translates German to any (tried Helsinki-NLP/opus-mt-en-fr); add one "
        "to the catalog (e.g. facebook/nllb-200-distilled-600M covers 200 languages) or ask for another language")


def test_an_unreadable_selection_answer_says_so_and_takes_the_top_ranked():
    plan = parse_plan(plan_json(("summarization", {"text": "A story."})))
    candidates = {0: [ModelInfo(id="org/bart", task="summarization", downloads=9),
                      ModelInfo(id="org/t5", task="summarization", downloads=1)]}
    choice = select_models(plan, "sum it up", candidates, FakeLLM(select="I would pick the first one."), Usage())[0]
    assert (choice.model, choice.reason) == (
        "org/bart", "the model-selection answer was not readable; used the top-ranked org/bart")


# ---------------------------------------------------------------- the session's store

@pytest.fixture
def store(tmp_path) -> ResourceStore:
    return ResourceStore(tmp_path / "session")


def test_a_saved_conversations_file_is_restored_with_its_origin(store):
    photo = store.root / "photo.png"
    photo.write_bytes(b"\x89PNG")
    restored = store.restore(photo, "generated")
    assert (restored.name, restored.path, restored.type, restored.origin) == ("photo.png", photo, "image", "generated")
    assert store.list() == [restored] and store.resolve("photo.png") == photo
    old = store.root / "Photo 1.png"         # a name as an older version wrote it: found by that name
    old.write_bytes(b"\x89PNG")
    assert store.restore(str(old), "upload").origin == "upload" and store.resolve("Photo 1.png") == old


def test_only_files_of_the_sessions_folder_are_restored(store, tmp_path):
    outside = tmp_path / "secret.txt"
    outside.write_text("not the session's")
    (store.root / "folder").mkdir()
    os.symlink(outside, store.root / "link.txt")
    for path, name in [(outside, "secret.txt"), (store.root / "folder", "folder"),
                       (store.root / "gone.png", "gone.png"), (store.root / "link.txt", "link.txt"),
                       (store.root / ".." / "secret.txt", "secret.txt")]:
        with pytest.raises(ResourceError) as refused:
            store.restore(path, "upload")
        assert str(refused.value) == f"{name} is not a file of this session's folder"
    assert store.list() == []


@pytest.mark.parametrize("name, suffix", [("X" * 300 + ".png", ".png"), ("x" * 300 + ".PNG", ".PNG"),
                                          ("x" * 300 + ".v2.png", ".png")])
def test_a_long_name_is_cut_to_the_cap_and_keeps_its_suffix(store, tmp_path, name, suffix):
    src = tmp_path / "in.png"
    src.write_bytes(b"\x89PNG")
    res = store.add_upload(src, name=name)
    assert len(res.name) == NAME_CHARS and res.name.endswith(suffix) and res.type == "image"


def test_a_repeated_long_name_stays_within_the_cap_and_each_resolves_to_its_own_file(store, tmp_path):
    src = tmp_path / "notes.txt"
    made = []
    for i in range(3):
        src.write_text(f"notes {i}")
        made.append(store.add_upload(src, name="n" * 300 + ".txt"))
    assert [r.name for r in made] == ["n" * 96 + ".txt", "n" * 94 + "-1.txt", "n" * 94 + "-2.txt"]
    assert [store.resolve(r.name).read_text() for r in made] == ["notes 0", "notes 1", "notes 2"]


def test_a_generated_file_is_named_by_its_stem_and_eight_hex_digits(store):
    assert re.fullmatch(r"image-[0-9a-f]{8}\.png", store.new_path("image", ".png").name)


def test_a_path_inside_the_store_resolves_though_no_task_registered_it(store):
    frame = store.root / "frames" / "frame-1.png"
    frame.parent.mkdir()
    frame.write_bytes(b"\x89PNG")
    assert store.resolve(str(frame)) == frame
    with pytest.raises(ResourceError):
        store.resolve("frame-1.png")          # by name it is not one of the session's files


def test_the_stores_refusals_read_whole(store, tmp_path):
    address = "file:///" + "a" * 80
    with pytest.raises(ResourceError) as refused:
        store.resolve(address)
    assert str(refused.value) == f"only http(s) URLs and this session's files can be used, not {address[:60]!r}"
    for name in ("b.png", "a.png"):
        (tmp_path / name).write_bytes(b"\x89PNG")
        store.add_upload(tmp_path / name)
    with pytest.raises(ResourceError) as refused:
        store.resolve("c.png")
    assert str(refused.value) == "'c.png' is not a file of this session: attach it first, or name one of: a.png, b.png"
    (tmp_path / "logo.svg").write_text("<svg/>")
    with pytest.raises(ResourceError) as refused:
        store.add_upload(tmp_path / "logo.svg")
    assert str(refused.value) == ("cannot attach logo.svg: SVG, HTML and other markup can carry scripts. "
                                  "Attach images as PNG, JPEG or WEBP, or audio or video files")


# ---------------------------------------------------------------- reading and checking a plan

def test_an_unknown_argument_holding_a_file_and_a_reference_is_read_as_the_files_type():
    plan = plan_from_items([{"task": "text-to-image", "id": 0, "args": {"text": "a cat"}},
                            {"task": "visual-question-answering", "id": 1,
                             "args": {"question": "Which is bigger?", "photos": ["cat.png", "<GENERATED>-0"]}}], [])
    assert plan.tasks[1].args == {"text": ["Which is bigger?"], "image": ["cat.png", Ref(0)]}
    assert plan.tasks[1].error is None and plan.tasks[1].dep == [0]
    assert plan.repairs == ["task 1: read argument 'photos' as image", "task 1: dep [-1] rebuilt from its references as [0]"]


def test_long_names_in_notes_and_errors_are_cut_at_their_limits():
    key, task_name = "k" * 50, "\n" * 20 + "Document_Question_Answering"
    plan = plan_from_items([{"task": "visual-question-answering", "id": 0,
                             "args": {"image": "cat.png", "question": "What?", key: "x", key + ".png": "dog.png"}},
                            {"task": "z" * 70, "id": 1, "args": {"text": "a"}},
                            {"task": task_name, "id": 2, "args": {"image": "form.png", "text": "Who signed?"}}], [])
    assert plan.repairs == [f"task 0: ignored unknown argument {'k' * 40!r}", f"task 0: read argument {'k' * 40!r} as image",
                            f"task 2: read task type {task_name[:40]!r} as 'document-question-answering'"]
    assert plan.tasks[1].error == f"unknown task type {'z' * 60!r} (known types are listed in the planning prompt)"


def test_a_reference_to_a_task_of_two_outputs_that_fits_neither_names_both():
    plan = plan_from_items([{"task": "object-detection", "id": 0, "args": {"image": "street.jpg"}},
                            {"task": "automatic-speech-recognition", "id": 1, "args": {"audio": "<GENERATED>-0"}}], [])
    assert plan.tasks[1].error == ("task 1 wants audio from task 0 (object-detection), "
                                   "which produces image, text only")


@pytest.mark.parametrize("head", [b" " * 1000 + b"<html>", b"\r\n" * 400 + b"<script>x()</script>", b"<iframe src=x>",
                                  b"<body onload=x()>", b"\xef\xbb\xbf<a href=x>", b"<svg\nxmlns='x'>", b"<P>hi"])
def test_markup_a_browser_would_sniff_in_its_first_1445_bytes_is_refused(tmp_path, head):
    src = tmp_path / "notes.txt"
    src.write_bytes(head + b" trailing text")
    with pytest.raises(ResourceError, match="cannot attach notes.txt: SVG, HTML and other markup can carry scripts"):
        ResourceStore(tmp_path / "s").add_upload(src)


@pytest.mark.parametrize("head", [b" " * 1446 + b"<html>", b"<abbr>", b"plain words <html>", b"<bold claim"])
def test_text_that_a_browser_would_not_take_for_markup_is_attached(tmp_path, head):
    src = tmp_path / "notes.txt"
    src.write_bytes(head)
    assert ResourceStore(tmp_path / "s").add_upload(src).path.read_bytes() == head
