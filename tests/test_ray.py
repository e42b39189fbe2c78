"""Local models on Ray Serve (local.backend: ray): one local Ray instance with 2 CPUs for the module, the
model deployment with 2 replicas, the controller driven by a scripted LLM over HTTP, tiny real models.

The replicas' runners are the registry's, except text-classification, whose runner here is the real one
slowed down on texts that start with "[slow]" (and telling which replica it runs on), so a replica can
be killed in the middle of a task.
"""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from jarvis.config import LocalConfig
from jarvis.pipeline.controller import Controller
from jarvis.runners.base import Device, RunContext, Runner, TaskInputs, TaskOutputs
from jarvis.runners.registry import local_runner
from jarvis.session import Session
from tests.fakes.llm_server import ScriptedLLM
from tests.helpers import config_for, plan_json, run_to_end

ROOT = Path(__file__).resolve().parent.parent
SST2 = "distilbert/distilbert-base-uncased-finetuned-sst-2-english"
SD = "stable-diffusion-v1-5/stable-diffusion-v1-5"
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
