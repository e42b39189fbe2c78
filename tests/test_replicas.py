"""Replicas mirror the real repositories: for each task type, the first candidate that local mode offers
from the shipped catalog has its real repo's facts recorded in tests/tiny/real_repos/<org>--<name>.json
(read from the Hub, with their source), and the tiny replica the tests build under that id agrees with them:
config model_type and architectures (or diffusers class), the recorded files (weights: the same format),
special tokens and generation-config fields. The catalog entry's own facts agree with the record too.
A replica that differs from the real thing proves nothing about it, so a mismatch, a missing record or a
missing replica fails (never skips)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from jarvis.catalog.entries import Catalog, ModelInfo
from jarvis.catalog.facts import WEIGHT_FORMATS
from jarvis.runners.registry import TASK_TYPES
from tests.tiny import snapshot_dir

RECORDS = Path(__file__).resolve().parent / "tiny" / "real_repos"
RECORD_KEYS = {"id", "source", "library_name", "model_type", "architectures", "pipeline_class", "files",
               "special_tokens", "generation_config"}
SPECIAL_TOKENS = ("bos_token", "eos_token", "pad_token", "unk_token")
TASKS = sorted(name for name, t in TASK_TYPES.items() if t.local and t.needs_model and not t.models_of)


def first_local(catalog: Catalog, task: str) -> ModelInfo | None:
    """The first candidate local mode offers for `task`, judged from the entries' own facts (not the cache)."""
    ranked = catalog.candidates(task, k=len(catalog), mode="hybrid")
    return next((m for m in ranked if m.runs_locally(use_cache=False)), None)


def record_path(repo_id: str) -> Path:
    return RECORDS / (repo_id.replace("/", "--") + ".json")


def load_record(repo_id: str) -> dict[str, Any]:
    path = record_path(repo_id)
    assert path.is_file(), f"{repo_id}: no record of the real repo's facts; write {path.relative_to(RECORDS.parent)}"
    record = json.loads(path.read_text(encoding="utf-8"))
    assert record.get("id") == repo_id, f"{path.name}: 'id' is {record.get('id')!r}, not {repo_id!r}"
    assert set(record) <= RECORD_KEYS, f"{repo_id}: unknown record keys {sorted(set(record) - RECORD_KEYS)}"
    assert "(read 20" in str(record.get("source", "")), f"{repo_id}: the record's source needs its URL and date"
    assert record.get("files"), f"{repo_id}: the record lists no files"
    return record


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _weight_format(name: str) -> str | None:
    return next((fmt for fmt, suffixes in WEIGHT_FORMATS if name.endswith(suffixes)), None)


def replica_special_tokens(snap: Path) -> dict[str, str]:
    """The special tokens the replica's tokenizer files define (tokenizer/ subfolder for diffusers)."""
    found: dict[str, str] = {}
    for folder in (snap, snap / "tokenizer"):
        for name in ("special_tokens_map.json", "tokenizer_config.json"):
            data = _json(folder / name)
            for key in SPECIAL_TOKENS:
                value = data.get(key)
                if isinstance(value, dict):
                    value = value.get("content")
                if isinstance(value, str) and key not in found:
                    found[key] = value
        if found:
            break
    return found


def mismatches(record: dict[str, Any], snap: Path) -> list[str]:
    """How the replica in `snap` differs from the real repo's recorded facts (empty: it mirrors them)."""
    problems: list[str] = []
    present = {p.relative_to(snap).as_posix() for p in snap.rglob("*") if p.is_file()}
    if record.get("pipeline_class"):
        index = _json(snap / "model_index.json") or _json(snap / "config.json")
        if index.get("_class_name") != record["pipeline_class"]:
            problems.append(f"class {index.get('_class_name')!r}, the real repo's is {record['pipeline_class']!r}")
    else:
        config = _json(snap / "config.json")
        if config.get("model_type") != record.get("model_type"):
            problems.append(f"model_type {config.get('model_type')!r}, the real repo's is {record.get('model_type')!r}")
        if record.get("architectures") and config.get("architectures") != record["architectures"]:
            problems.append(f"architectures {config.get('architectures')}, the real repo's are {record['architectures']}")
    for name in record["files"]:
        fmt = _weight_format(name)
        if fmt is None:
            if name not in present:
                problems.append(f"no {name}")
            continue
        folder = name.rpartition("/")[0]
        if not any(p.rpartition("/")[0] == folder and _weight_format(p) == fmt for p in present):
            problems.append(f"no {fmt} weights{' in ' + folder if folder else ''} (the real repo has {name})")
    tokens = replica_special_tokens(snap)
    for key, value in (record.get("special_tokens") or {}).items():
        if tokens.get(key) != value:
            problems.append(f"{key} {tokens.get(key)!r}, the real repo's is {value!r}")
    generation = _json(snap / "generation_config.json")
    missing = [f for f in record.get("generation_config") or () if f not in generation]
    if missing:
        problems.append(f"generation_config.json lacks {', '.join(missing)}")
    return problems


def test_every_record_is_well_formed():
    names = sorted(RECORDS.glob("*.json"))
    assert names, "no records in tests/tiny/real_repos"
    for path in names:
        record = json.loads(path.read_text(encoding="utf-8"))
        assert path.name == str(record.get("id", "")).replace("/", "--") + ".json", path.name
        load_record(record["id"])


@pytest.mark.parametrize("task", TASKS)
def test_first_candidate_mirrors_its_real_repo(task, tiny_models, hub_cache):
    shipped = Catalog.load()
    entry = first_local(shipped, task)
    assert entry is not None, f"{task}: the shipped catalog offers no model that runs locally"
    record = load_record(entry.id)
    facts = entry.facts
    if record.get("pipeline_class"):
        assert facts.pipeline_class == record["pipeline_class"], \
            f"{entry.id}: the catalog says {facts.pipeline_class!r}, the real repo {record['pipeline_class']!r}"
    else:
        assert (facts.model_type, list(facts.architectures)) == (record.get("model_type"), record.get("architectures")), \
            f"{entry.id}: the catalog records {facts.model_type!r} {list(facts.architectures)}, " \
            f"the real repo {record.get('model_type')!r} {record.get('architectures')}"
    if record.get("library_name"):
        assert facts.library_name == record["library_name"], f"{entry.id}: library {facts.library_name!r}"
    assert entry.id in tiny_models, f"{entry.id} ranks first for {task} but the tests build no replica of it"
    problems = mismatches(record, snapshot_dir(hub_cache, entry.id))
    assert not problems, f"{entry.id}: the replica differs from the real repo: " + "; ".join(problems)


def test_a_replica_that_differs_is_caught(tmp_path):
    """The comparison itself: a replica with another architecture, weight format and tokens is reported."""
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "vit", "architectures": ["ViTModel"]}))
    (tmp_path / "pytorch_model.bin").write_bytes(b"")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"eos_token": "</s>"}))
    record = {"id": "a/b", "model_type": "vit", "architectures": ["ViTForImageClassification"],
              "files": ["config.json", "model.safetensors", "preprocessor_config.json"],
              "special_tokens": {"eos_token": "<|endoftext|>"}, "generation_config": ["eos_token_id"]}
    text = "; ".join(mismatches(record, tmp_path))
    for part in ("architectures", "no safetensors weights", "no preprocessor_config.json", "eos_token",
                 "lacks eos_token_id"):
        assert part in text, (part, text)
    record = {"id": "a/b", "model_type": "vit", "architectures": ["ViTModel"], "files": ["pytorch_model.bin"],
              "special_tokens": {"eos_token": "</s>"}}
    assert mismatches(record, tmp_path) == []
