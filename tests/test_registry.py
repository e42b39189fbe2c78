"""The task registry against everything that derives from it: local runners, remote adapters, the
planner's prompt and plan validation, catalog eligibility and the shipped catalog. A task type added,
renamed or half-declared anywhere fails here, naming it."""
from __future__ import annotations

import inspect
import json
import subprocess
import sys

import pytest

from jarvis.catalog.eligibility import candidate_task, runs_locally, verdict
from jarvis.catalog.entries import Catalog
from jarvis.catalog.facts import ModelFacts
from jarvis.errors import TaskError
from jarvis.llm import prompts
from jarvis.pipeline.controller import task_list_for_prompt
from jarvis.pipeline.plan_reading import parse_plan
from jarvis.runners import registry
from jarvis.runners.base import Device, RunContext, Runner, TaskInputs
from jarvis.runners.options import RunOptions
from jarvis.runners.registry import RESOURCE_TYPES, TASK_TYPES
from jarvis.runners.remote import adapters
from tests.test_remote import CASES as REMOTE_CASES

NAMES = list(TASK_TYPES)


def test_entries_are_well_formed():
    aliases = [a for t in TASK_TYPES.values() for a in t.aliases]
    assert len(aliases) == len(set(aliases)) and not set(aliases) & set(TASK_TYPES)
    for name, spec in TASK_TYPES.items():
        assert spec.name == name and spec.inputs and spec.outputs and spec.description
        assert set(spec.inputs) | set(spec.outputs) <= set(RESOURCE_TYPES), name
        assert not spec.input_names or len(spec.input_names) == len(spec.inputs), name
        assert registry.get(name) is spec
        assert all(registry.get(alias) is spec for alias in spec.aliases)


def test_an_unknown_name_lists_the_known_ones():
    with pytest.raises(TaskError) as err:
        registry.get("text-to-hologram")
    assert "'text-to-hologram'" in str(err.value)
    assert all(name in str(err.value) for name in NAMES)
    with pytest.raises(TaskError, match="image-to-text"):
        registry.local_runner("hologram")


@pytest.mark.parametrize("name", NAMES)
def test_the_local_runner_serves_its_task(name):
    spec = TASK_TYPES[name]
    runner = registry.local_runner(name)
    assert isinstance(runner, Runner) and runner.task == name
    assert registry.local_runner(name) is runner  # one stateless instance per runner class
    assert runner.builtin == (not spec.needs_model)
    assert runner.cache_key("org/model") == (runner.family or name, "org/model")
    assert type(runner).run_batch is not Runner.run_batch or not runner.batching, \
        f"{name} says it batches but runs one input at a time"


def test_tasks_sharing_a_family_load_alike():
    """Task types of one family share a model's cached load, so their runners load with the same code."""
    families: dict[str, set[str]] = {}
    for name in NAMES:
        runner = registry.local_runner(name)
        if runner.family:
            families.setdefault(runner.family, set()).add(name)
    assert families["causal-lm"] == {"text-generation", "conversational"}
    assert families["seq2seq"] == {"summarization", "translation", "text2text-generation"}
    assert families["diffusion-image"] == {"text-to-image", "image-to-image"}
    assert families["depth-estimation"] == {"depth-estimation", "depth-control"}
    for members in families.values():
        assert len({type(registry.local_runner(m)).load for m in members}) == 1, members


def test_the_builtin_runner_needs_no_model(tmp_path):
    runner = registry.local_runner("canny-control")
    assert runner.load("anything", Device()) is None
    assert [t.name for t in TASK_TYPES.values() if not t.needs_model] == ["canny-control"]
    ctx = RunContext(Device(), lambda stem, suffix: tmp_path / f"{stem}{suffix}")
    with pytest.raises(TaskError, match="image input"):
        runner.run(None, TaskInputs(), ctx)


def test_importing_the_registry_and_every_runner_leaves_torch_unloaded():
    code = ("import sys\nfrom jarvis.runners import registry\n"
            "[registry.local_runner(n) for n in registry.TASK_TYPES]\n"
            "print(sorted(m for m in ('torch', 'transformers', 'diffusers', 'av', 'gradio') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------- remote routes

def _adapter_functions() -> dict[str, object]:
    """The public functions of the adapters module with the adapter signature."""
    return {name: fn for name, fn in inspect.getmembers(adapters, inspect.isfunction)
            if fn.__module__ == adapters.__name__ and not name.startswith("_")
            and list(inspect.signature(fn).parameters) == ["call", "inputs", "ctx"]}


def test_remote_routes_are_adapters_and_none_is_orphaned():
    functions = _adapter_functions()
    used = set()
    for spec in TASK_TYPES.values():
        for route in (spec.adapter, spec.vlm_adapter):
            if route is not None:
                assert route in functions.values(), f"{spec.name}: {route} is not an adapter"
                used.add(route)
        if spec.vlm:
            assert spec.remote and "image" in spec.inputs and spec.outputs == ("text",), spec.name
    orphans = [name for name, fn in functions.items() if fn not in used]
    assert not orphans, f"adapters no task type names: {orphans}"


def test_every_remote_task_is_exercised_against_the_loopback_service():
    """tests/test_remote.py runs each task with a remote route through the fake Inference Providers
    service; a task gaining or losing its adapter must gain or lose its case there too."""
    assert {case[0] for case in REMOTE_CASES} == {t.name for t in TASK_TYPES.values() if t.remote}


def test_the_remote_executor_refuses_a_task_without_a_route(tmp_path):
    from jarvis.config import RemoteConfig
    from jarvis.errors import RemoteUnsupportedError
    from jarvis.execution.remote import RemoteExecutor
    remote = RemoteExecutor(RemoteConfig(), token="hf_x")
    for spec in TASK_TYPES.values():
        assert remote.can_run(spec.name) == spec.remote
    ctx = RunContext(Device(), lambda stem, suffix: tmp_path / f"{stem}{suffix}")
    with pytest.raises(RemoteUnsupportedError, match="cannot run remotely"):
        remote.run("canny-control", "builtin", TaskInputs(), ctx)


# ---------------------------------------------------------------- the planner

def _prompt_tasks(mode: str) -> dict[str, str]:
    """Task name -> its "inputs -> outputs" line, as the planner's system prompt lists them."""
    text = prompts.render("plan", task_list=task_list_for_prompt(mode), files="none")
    listed = text.split("Task types (inputs -> outputs):\n", 1)[1].split("\nFiles of this chat", 1)[0]
    return dict(line.split(": ", 1) for line in listed.splitlines())


@pytest.mark.parametrize("mode", ["local", "remote", "hybrid"])
def test_the_plan_prompt_lists_exactly_the_registry(mode):
    listed = _prompt_tasks(mode)
    expected = [t for t in TASK_TYPES.values()
                if mode == "hybrid" or (mode == "local" and t.local) or (mode == "remote" and t.remote)]
    assert list(listed) == [t.name for t in expected]
    for spec in expected:
        assert listed[spec.name] == f"{','.join(spec.inputs)} -> {','.join(spec.outputs)}"


def test_plan_validation_accepts_every_task_type_and_names_its_inputs():
    for spec in TASK_TYPES.values():
        args = {rtype: ["a.png" if rtype == "image" else "a.wav" if rtype == "audio" else "hello"] * spec.count(rtype)
                for rtype in set(spec.inputs)}
        plan = parse_plan(json.dumps([{"task": spec.name, "id": 0, "dep": [-1], "args": args}]),
                          files=["a.png", "a.wav"])
        (task,) = plan.tasks
        assert task.task == spec.name and task.error is None, (spec.name, task.error)
    (unknown,) = parse_plan('[{"task": "text-to-hologram", "id": 0, "dep": [-1], "args": {}}]').tasks
    assert unknown.error and "text-to-hologram" in unknown.error


# ---------------------------------------------------------------- the catalog

@pytest.fixture(scope="module")
def shipped() -> Catalog:
    return Catalog.load()


@pytest.mark.parametrize("name", NAMES)
def test_the_catalog_knows_every_task(shipped, name):
    spec = TASK_TYPES[name]
    source = TASK_TYPES[candidate_task(name)]
    assert source.needs_model == spec.needs_model and not source.models_of  # one level of borrowing
    local = shipped.candidates(name, k=50, mode="local")
    remote = shipped.candidates(name, k=50, mode="remote")
    if not spec.needs_model:
        assert local == remote == [] and not runs_locally(name, ModelFacts(library_name="transformers"))
        return
    assert local, f"the shipped catalog has no local candidate for {name}"
    assert all(m.task == source.name for m in local)
    assert bool(remote) == spec.remote, name
    need = source.local_models
    facts = {"transformers": ModelFacts(library_name="transformers", model_type=next(iter(need.model_types), None),
                                        architectures=tuple(need.architectures)),
             "diffusers": ModelFacts(library_name="diffusers", pipeline_class=next(iter(need.pipeline_classes), None),
                                     cross_attention_dim=need.cross_attention_dim),
             "skops": ModelFacts(library_name="sklearn", weight_format="skops")}
    assert verdict(name, facts[need.library]) is True


def test_eligibility_follows_the_declared_model_families():
    vilt = ModelFacts(library_name="transformers", model_type="vilt")
    assert verdict("visual-question-answering", vilt) is True
    assert verdict("visual-question-answering", ModelFacts(model_type="pix2struct")) is False
    assert verdict("text-classification", ModelFacts(model_type="anything-transformers-loads")) is True
    assert verdict("text-classification", ModelFacts(library_name="spacy")) is False
    assert verdict("depth-control", ModelFacts(library_name="transformers")) is True
    sd15 = ModelFacts(library_name="diffusers", pipeline_class="ControlNetModel", cross_attention_dim=768)
    assert verdict("canny-text-to-image", sd15) is True
    sdxl = ModelFacts(library_name="diffusers", pipeline_class="ControlNetModel", cross_attention_dim=2048)
    assert verdict("canny-text-to-image", sdxl) is False
    assert not runs_locally("text-to-hologram", ModelFacts())


# ---------------------------------------------------------------- run options

def test_run_options_reject_a_misspelt_key_and_layer_over_the_executors():
    with pytest.raises(TypeError, match="max_new_token"):
        RunOptions(max_new_token=8)  # type: ignore[call-arg]
    base = RunOptions(max_new_tokens=8, diffusion_steps=2)
    merged = RunOptions(detection_threshold=0.9).on_top_of(base)
    assert (merged.max_new_tokens, merged.diffusion_steps, merged.detection_threshold) == (8, 2, 0.9)
    assert RunOptions(max_new_tokens=3).on_top_of(base).max_new_tokens == 3
    assert RunOptions().new_tokens("caption") == 32 and base.new_tokens("caption") == 8
    assert RunOptions(max_new_tokens=0).new_tokens("text") == 1
