"""Local models on Ray Serve (local.backend: ray): one local Ray instance with 2 CPUs for the module, the
model deployment with 2 replicas, the controller driven by a scripted LLM over HTTP, tiny real models.

The replicas' runners are the registry's, except text-classification, whose runner here is the real one
slowed down on texts that start with "[slow]" (and telling which replica it runs on), so a replica can
be killed in the middle of a task. A second application on the same Ray instance, one replica whose
budget holds one tiny model but not two, shows what one replica does: unloading to make room, and
remembering a model that failed to load.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from jarvis.config import LocalConfig
from jarvis.events import TaskProgress
from jarvis.pipeline.controller import Controller
from jarvis.runners.base import Device, RunContext, Runner, TaskInputs, TaskOutputs
from jarvis.runners.registry import local_runner
from jarvis.session import Session
from tests.fakes.llm_server import ScriptedLLM
from tests.helpers import config_for, plan_json, run_to_end
from tests.tiny import snapshot_dir

ROOT = Path(__file__).resolve().parent.parent
SST2 = "distilbert/distilbert-base-uncased-finetuned-sst-2-english"
SD = "stable-diffusion-v1-5/stable-diffusion-v1-5"
NER = "dslim/bert-base-NER"
BROKEN = "acme/broken-sst2"        # SST2's files with a corrupt weights file
ONE_MODEL = 120_000                # bytes: the tiny SST2 (86 kB) or NER (83 kB) fits, both do not
BUDGET_GB = 0.001     # about 1 MiB: every tiny model used here fits; the tiny Stable Diffusion (12 MB) does not
SLOW_SECONDS = 4.0


class SlowClassifier(Runner):
    """The registry's text-classification runner; on a text starting with "[slow]" it first writes its Ray
    actor's name to `marker` and waits SLOW_SECONDS (stopping if the task is cancelled)."""
    task = "text-classification"

    def __init__(self, marker: Path):
        self.marker = marker

    def load(self, model_id: str, device: Device) -> object:
        return local_runner(self.task).load(model_id, device)

    def run(self, loaded: object, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        if inputs.text and inputs.text[0].startswith("[slow]"):
            import ray
            name = ray.get_runtime_context().get_actor_name()
            self.note(f"started {name}")
            deadline = time.monotonic() + SLOW_SECONDS
            while time.monotonic() < deadline:
                if ctx.cancel.is_set():
                    self.note(f"cancelled {name}")
                    ctx.raise_if_cancelled()
                time.sleep(0.05)
        return local_runner(self.task).run(loaded, inputs, ctx)

    def note(self, line: str) -> None:
        with self.marker.open("a") as f:
            f.write(line + "\n")


def notes(marker: Path, since: int = 0) -> list[list[str]]:
    """The slow runner's lines after the first `since`, each [what, actor name]."""
    return [line.split() for line in marker.read_text().splitlines()[since:]] if marker.exists() else []


@pytest.fixture(scope="module")
def ray_models(tiny_models, tmp_path_factory):
    """(controller whose local executor is Ray's, the slow runner's marker file); Ray stops at the end."""
    from jarvis.execution.ray.cluster import connect, deploy
    from jarvis.execution.ray.deployment import ReplicaSettings
    from jarvis.execution.ray.executor import RayExecutor
    local = LocalConfig(device="cpu", memory_budget_gb=BUDGET_GB, backend="ray", ray_replicas=2,
                        ray_cpus_per_replica=0.5)
    cluster = connect(local, num_cpus=2, include_dashboard=False)
    marker = tmp_path_factory.mktemp("ray") / "slow-runs.txt"
    try:
        settings = ReplicaSettings.from_config(local)
        handle = deploy(settings, {"text-classification": SlowClassifier(marker)})
        controller = Controller(config_for("http://127.0.0.1:9/v1"), local=RayExecutor(handle, settings))
        yield controller, marker
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def one_replica(ray_models):
    """(the handle, settings) of a second application on the module's Ray: one replica, ONE_MODEL bytes."""
    from jarvis.execution.ray.cluster import deploy
    from jarvis.execution.ray.deployment import ReplicaSettings
    settings = dataclasses.replace(ReplicaSettings(device="cpu"), budget_bytes=ONE_MODEL, cpus=0.5)
    return deploy(settings, name="jarvis-one-replica"), settings


def replica_stats(handle) -> dict:
    return handle.stats.remote().result(timeout_s=30)


def new_items(after: dict, before: dict) -> dict:
    return {key: n - before.get(key, 0) for key, n in after.items() if n != before.get(key, 0)}


def pick(*models):
    """A selector answer naming these models for tasks 0, 1, ..."""
    return json.dumps({str(i): {"id": m, "reason": "the test's choice"} for i, m in enumerate(models)})


def run(controller, tmp_path, plan, select, request="do it", files=()):
    with ScriptedLLM(plan=plan, select=select, answer="Done.") as server:
        cfg = config_for(server.url, local={"device": "cpu"})
        events, result, failed = run_to_end(controller, Session.create(cfg, root=tmp_path / "s"), request, files)
    assert failed is None, failed
    return result.tasks


def assert_ran_on_ray(task):
    assert task.status == "done", (task.error, task.attempts)
    assert task.executor == "ray" and task.attempts[-1].executor == "ray"
    assert task.detail["replica"] and task.detail["node"]


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_single_task_runs_on_a_replica(ray_models, tmp_path):
    controller, _ = ray_models
    [task] = run(controller, tmp_path, plan_json(("text-classification", {"text": "I love this film"})), pick(SST2))
    assert_ran_on_ray(task)
    assert task.model == SST2 and task.detail["labels"] and "score" in task.outputs["text"]


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_chain_passes_results_between_replicas(ray_models, tmp_path):
    controller, _ = ray_models
    plan = plan_json(("summarization", {"text": "The cat sat on the mat. The dog barked at the cat all day."}),
                     ("text-classification", {"text": "<GENERATED>-0"}, [0]))
    tasks = run(controller, tmp_path, plan, pick("facebook/bart-large-cnn", SST2))
    for task in tasks:
        assert_ran_on_ray(task)
    assert tasks[1].started >= tasks[0].finished and tasks[1].args["text"] == "<GENERATED>-0"


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_fan_out_sends_an_upload_as_bytes_and_uses_both_replicas(ray_models, tmp_path):
    controller, _ = ray_models
    picture = tmp_path / "upload" / "shapes.png"
    picture.parent.mkdir()
    img = Image.new("RGB", (48, 48), "navy")
    ImageDraw.Draw(img).rectangle([8, 8, 30, 30], fill="white")
    img.save(picture)
    plan = plan_json(("image-classification", {"image": "shapes.png"}), ("object-detection", {"image": "shapes.png"}),
                     ("token-classification", {"text": "Ada Lovelace lived in London."}))
    tasks = run(controller, tmp_path, plan, pick("google/vit-base-patch16-224", "hustvl/yolos-tiny",
                                                 "dslim/bert-base-NER"), files=[str(picture)])
    for task in tasks:
        assert_ran_on_ray(task)
    assert tasks[0].detail["labels"] and "objects" in tasks[1].detail and "entities" in tasks[2].detail
    assert len({t.detail["replica"] for t in tasks}) == 2    # one task at a time per replica: both worked


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_audio_made_on_a_replica_lands_in_the_session_and_goes_back_as_bytes(ray_models, tmp_path):
    controller, _ = ray_models
    plan = plan_json(("text-to-speech", {"text": "hello there"}),
                     ("automatic-speech-recognition", {"audio": "<GENERATED>-0"}, [0]))
    tasks = run(controller, tmp_path, plan, pick("facebook/mms-tts-eng", "openai/whisper-tiny"))
    for task in tasks:
        assert_ran_on_ray(task)
    audio = Path(tasks[0].outputs["audio"])
    assert audio.is_file() and audio.is_relative_to(tmp_path / "s") and audio.read_bytes()[:4] == b"RIFF"
    assert isinstance(tasks[1].outputs["text"], str)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_model_beyond_a_replicas_budget_is_refused_with_what_to_do(ray_models, tmp_path):
    controller, _ = ray_models
    plan = plan_json(("text-to-image", {"text": "a red fox"}))
    with ScriptedLLM(plan=plan, select=pick(SD), answer="No picture.") as server:
        cfg = config_for(server.url, local={"device": "cpu"})
        _, result, failed = run_to_end(controller, Session.create(cfg, root=tmp_path / "s"), "a fox")
    task = result.tasks[0]
    assert task.status == "failed"
    first = task.attempts[0]
    assert first.executor == "ray" and first.model == SD and not first.ok
    assert "more than a Ray replica's memory budget" in first.error and "local.memory_budget_gb" in first.error
    assert first.seconds < 10        # refused before loading


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_task_that_times_out_is_stopped_inside_its_replica(ray_models, tmp_path):
    controller, marker = ray_models
    before = len(notes(marker))
    plan = plan_json(("text-classification", {"text": "[slow] I love it"}))
    with ScriptedLLM(plan=plan, select=pick(SST2), answer="Too slow.") as server:
        cfg = config_for(server.url, local={"device": "cpu"}, inference={"task_timeout": 1})
        _, result, _ = run_to_end(controller, Session.create(cfg, root=tmp_path / "s"), "slow")
    assert result.tasks[0].status == "failed" and "timed out" in result.tasks[0].error
    deadline = time.monotonic() + SLOW_SECONDS
    while time.monotonic() < deadline and [n[0] for n in notes(marker, before)] != ["started", "cancelled"]:
        time.sleep(0.05)
    assert [n[0] for n in notes(marker, before)] == ["started", "cancelled"]   # before its 4 s were up


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_a_replica_killed_mid_task_is_retried_on_another(ray_models, tmp_path):
    import ray
    controller, marker = ray_models
    before = len(notes(marker))
    killed: list[str] = []

    def kill_the_first_runner() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not notes(marker, before):
            time.sleep(0.05)
        name = notes(marker, before)[0][1]
        ray.kill(ray.get_actor(name, namespace="serve"), no_restart=True)
        killed.append(name)

    killer = threading.Thread(target=kill_the_first_runner, daemon=True)
    killer.start()
    [task] = run(controller, tmp_path, plan_json(("text-classification", {"text": "[slow] I love it"})), pick(SST2))
    killer.join(timeout=5)
    assert killed, "the slow runner never started"
    assert_ran_on_ray(task)
    lost, done = task.attempts
    assert not lost.ok and lost.executor == "ray" and "replica" in lost.error and "stopped" in lost.error
    assert done.ok and done.model == SST2
    first, retry = notes(marker, before)
    assert retry == ["started", retry[1]] and retry[1] != killed[0]     # the retry ran on another replica
    assert task.detail["replica"] in retry[1] and task.detail["replica"] not in killed[0]


def test_without_ray_the_default_backend_works_and_ray_asks_to_be_installed():
    """Ray blocked from importing: the in-process executor is built; the Ray backend says how to install it,
    and so does `python -m jarvis workers`."""
    code = ("import sys; sys.modules['ray'] = None\n"
            "from jarvis.config import load_config\n"
            "from jarvis.errors import ConfigError\n"
            "from jarvis.execution.local_slots import local_executor\n"
            "print(type(local_executor(load_config().local, 1).inner).__name__)\n"
            "try:\n"
            "    local_executor(load_config(env={'JARVIS_LOCAL_BACKEND': 'ray'}).local)\n"
            "except ConfigError as exc:\n"
            "    print(exc)\n"
            "from jarvis.frontends.cli import main\n"
            "sys.exit(main(['workers']))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    lines = proc.stdout.splitlines()
    assert lines[0] == "LocalExecutor"
    assert "Ray is not installed" in lines[1] and "pip install -r requirements-ray.txt" in lines[1]
    assert proc.returncode == 2 and "pip install -r requirements-ray.txt" in proc.stderr


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_replica_unloads_its_older_model_to_keep_its_budget(one_replica, tmp_path):
    """SST2, then NER, then SST2 again on a replica that holds one of them: each answers, and the replica
    reports (progress, stats) that each load unloaded the other."""
    from jarvis.execution.ray.executor import RayExecutor
    handle, settings = one_replica
    controller = Controller(config_for("http://127.0.0.1:9/v1"), local=RayExecutor(handle, settings))
    before = replica_stats(handle)
    steps = [("text-classification", {"text": "I love this film"}, SST2),
             ("token-classification", {"text": "Ada Lovelace lived in London."}, NER),
             ("text-classification", {"text": "I hate this film"}, SST2)]
    tasks, lines = [], []
    for n, (task_type, args, model) in enumerate(steps):
        with ScriptedLLM(plan=plan_json((task_type, args)), select=pick(model), answer="Done.") as server:
            cfg = config_for(server.url, local={"device": "cpu"})
            events, result, failed = run_to_end(controller, Session.create(cfg, root=tmp_path / f"s{n}"), "go")
        assert failed is None, failed
        tasks += result.tasks
        lines.append([e.message for e in events if isinstance(e, TaskProgress) and "unloaded" in e.message])
    for task in tasks:
        assert_ran_on_ray(task)
    assert tasks[0].detail["labels"] and tasks[1].detail["entities"] and tasks[2].detail["labels"]
    assert len({t.detail["replica"] for t in tasks}) == 1
    after = replica_stats(handle)
    sst2, ner = f"text-classification|{SST2}", f"token-classification|{NER}"
    assert after["unloaded"][len(before["unloaded"]):] == [[sst2, ner], [ner, sst2]]
    assert after["held"] == [sst2] and new_items(after["loads"], before["loads"])[ner] == 1
    assert lines[1] == [f"unloaded {SST2} from Ray replica to make room for {NER} (local.memory_budget_gb)"]
    assert lines[2] == [f"unloaded {NER} from Ray replica to make room for {SST2} (local.memory_budget_gb)"]


@pytest.fixture()
def broken_first(tiny_models, hub_cache, tmp_path):
    """A catalog whose first text-classification candidate is SST2's files with a corrupt weights file."""
    good = snapshot_dir(hub_cache, SST2)
    snap = snapshot_dir(hub_cache, BROKEN)
    shutil.copytree(good, snap, dirs_exist_ok=True)
    (snap / "model.safetensors").write_bytes(b"\0" * 64)
    catalog = tmp_path / "catalog.jsonl"
    catalog.write_text("".join(json.dumps(r) + "\n" for r in [
        {"id": BROKEN, "task": "text-classification", "downloads": 100, "description": "broken"},
        {"id": SST2, "task": "text-classification", "downloads": 10, "description": "works"}]))
    return catalog


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_replica_remembers_a_failed_load_and_the_next_candidate_runs(one_replica, broken_first, tmp_path):
    from jarvis.execution.ray.executor import RayExecutor
    handle, settings = one_replica
    before = replica_stats(handle)
    records = []
    with ScriptedLLM(plan=plan_json(("text-classification", {"text": "I love it"})), select=pick(BROKEN),
                     answer="Done.") as server:
        cfg = config_for(server.url, catalog={"path": str(broken_first)}, inference={"mode": "local", "top_k": 2},
                         local={"device": "cpu"})
        controller = Controller(cfg, local=RayExecutor(handle, settings))
        for n in range(2):
            _, result, failed = run_to_end(controller, Session.create(cfg, root=tmp_path / f"s{n}"), "classify")
            assert failed is None, failed
            records.append(result.tasks[0])
    for record in records:
        assert_ran_on_ray(record)
        assert record.model == SST2 and record.detail["labels"]
        assert [(a.executor, a.model, a.ok) for a in record.attempts] == [("ray", BROKEN, False), ("ray", SST2, True)]
    first, skipped = records[0].attempts[0], records[1].attempts[0]
    assert first.error.startswith(f"could not load {BROKEN} on the Ray replica (") and "Safetensor" in first.error
    assert skipped.error.startswith(f"skipped: {BROKEN} failed to load") and f"({first.error[:150]}" in skipped.error
    assert skipped.seconds < 2
    loads = new_items(replica_stats(handle)["loads"], before["loads"])
    assert loads[f"text-classification|{BROKEN}"] == 1      # the second task did not load it again


def test_without_serves_private_multiplexer_a_replica_logs_why_and_keeps_going(caplog):
    """Another Ray version without the multiplexer's private parts: no unload, no crash, a clear log line."""
    import asyncio

    from jarvis.execution.ray.deployment import _unload_oldest
    with caplog.at_level("WARNING", logger="jarvis.execution.ray.deployment"):
        assert asyncio.run(_unload_oldest(object())) is None
    assert "cannot unload models to stay within local.memory_budget_gb" in caplog.text
    assert "ray 2.60.0" in caplog.text
