"""Every TaskBench link (source task -> target task, resource type) as a two-task plan, the
source's output feeding the target: what the target receives, recorded by a FakeExecutor, for all
225 links in a second; and the same links through the controller on tiny local models (slow).

How many links must run is fixed here, from the data and a list of the links Jarvis's task types
cannot take, never from the code under test: a registry change that drops links fails."""
import json
import time
import wave
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jarvis.execution.dispatch import Dispatcher
from jarvis.files.store import ResourceStore
from jarvis.pipeline.controller import Controller
from jarvis.pipeline.plan_reading import parse_plan
from jarvis.pipeline.scheduler import Scheduler
from jarvis.pipeline.selection import Choice
from jarvis.runners.base import RunContext, TaskInputs, TaskOutputs
from jarvis.session import Session
from tests.fakes.fake_executor import FakeExecutor
from tests.fakes.llm_server import ScriptedLLM
from tests.helpers import config_for, run_to_end
from tests.test_controller import pick_top

LINKS = 225
INLINE_TEXT_LINKS = 147     # text links whose target takes one free text: also tried as "Use this: <GENERATED>-0"
# TaskBench's tabular classification reads a picture of a table; Jarvis's reads the table as text
NOT_APPLICABLE = {(src, "tabular-classification", "image") for src in
                  ("image-to-image", "text-to-image", "image-segmentation", "depth-estimation", "image-editing")}
# what each source task produces here, by TaskBench's own output types plus the extras Jarvis adds
PRODUCES = {"object-detection": ("image", "text"), "image-segmentation": ("image", "text"),
            "sentence-similarity": ("text",)}

TABLE = "fixed_acidity,volatile_acidity,alcohol\n7.4,0.70,9.4\n7.8,0.88,9.8"
LITERAL = {"text": "A cat sits on a red mat in the sun.", "image": "photo.png", "audio": "speech.wav"}
QUESTION = "What is on the mat?"


def task_name(title: str) -> str:
    return title.lower().replace(" ", "-").replace("image-to-image", "image-to-image")


def source_args(task: str, inputs: list[str]) -> dict:
    if task == "tabular-classification":
        return {"text": TABLE}
    if task in ("question-answering",):
        return {"text": [QUESTION, LITERAL["text"]]}
    if task == "sentence-similarity":
        return {"text": [LITERAL["text"], "A dog runs."]}
    if task in ("visual-question-answering", "document-question-answering"):
        return {"image": LITERAL["image"], "text": QUESTION}
    if task == "image-editing":
        return {"image": LITERAL["image"], "text": "make it blue"}
    return {t: LITERAL[t] for t in inputs}


def target_args(task: str, inputs: list[str], link_type: str) -> dict:
    ref = "<GENERATED>-0"
    if task == "question-answering":
        return {"text": [QUESTION, ref]}
    if task == "sentence-similarity":
        return {"text": [ref, "A dog runs."]}
    args = {}
    for t in inputs:
        args.setdefault(t, [])
    args[link_type] = [ref]
    for t in inputs:
        if not args[t]:
            args[t] = [QUESTION if task.endswith("question-answering") and t == "text" else
                       "make it blue" if task == "image-editing" and t == "text" else LITERAL[t]]
    return {k: v[0] if len(v) == 1 else v for k, v in args.items()}


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("media")
    img = np.zeros((48, 64, 3), dtype=np.uint8)
    img[10:40, 10:50] = (200, 40, 40)
    Image.fromarray(img).save(d / "photo.png")
    t = np.linspace(0, 1, 16000, endpoint=False)
    pcm = (0.3 * np.sin(2 * np.pi * 220 * t) * 32767).astype("<i2")
    with wave.open(str(d / "speech.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(pcm.tobytes())
    return [d / "photo.png", d / "speech.wav"]


def load_links(shared_data: Path) -> tuple[list[dict], dict[str, dict]]:
    graph = json.loads((shared_data / "taskbench_hf_graph_desc.json").read_text())
    tools = {n["id"]: n for n in json.loads((shared_data / "taskbench_hf_tool_desc.json").read_text())["nodes"]}
    assert len(graph["links"]) == LINKS
    return graph["links"], tools


class Producer:
    """A FakeExecutor handler: every task produces each of its outputs, each one unique (a text
    naming the task and call, a file written into the session's store)."""

    def __init__(self, outputs: dict[str, list[str]]):
        self.outputs = outputs
        self.count = 0

    def __call__(self, task: str, model_id: str, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        self.count += 1
        kinds = PRODUCES.get(task) or tuple(self.outputs[task])
        out = TaskOutputs(detail={"model": model_id})
        for kind in kinds:
            if kind == "text":
                out.text = f"text of {task} #{self.count}"
            else:
                path = ctx.new_file(f"{task}-{self.count}", {"image": ".png", "audio": ".wav", "video": ".mp4"}[kind])
                path.write_bytes(f"{kind} of {task} #{self.count}".encode())
                setattr(out, kind, path)
        return out


def test_every_taskbench_link_hands_the_producers_output_to_the_consumer(shared_data, tmp_path):
    links, tools = load_links(shared_data)
    outputs = {task_name(k): v["output-type"] for k, v in tools.items()}
    from jarvis.runners.registry import TASK_TYPES
    skipped, checked, problems = set(), 0, []
    start = time.perf_counter()
    for n, link in enumerate(links):
        src, dst, rtype = task_name(link["source"]), task_name(link["target"]), link["type"]
        if (src, dst, rtype) in NOT_APPLICABLE:
            skipped.add((src, dst, rtype))
            continue
        store = ResourceStore(tmp_path / f"s{n}")
        for f in _media_files(tmp_path):
            store.add_upload(f)
        inline = [False, True] if rtype == "text" and dst not in ("question-answering", "sentence-similarity") else [False]
        for inside_text in inline:
            args = target_args(dst, list(TASK_TYPES[dst].inputs), rtype)
            if inside_text:
                args["text"] = "Use this: <GENERATED>-0"
            plan = parse_plan(json.dumps([
                {"task": src, "id": 0, "dep": [-1], "args": source_args(src, tools[link["source"]]["input-type"])},
                {"task": dst, "id": 1, "dep": [-1], "args": args}]))
            executor = FakeExecutor(Producer(outputs))
            scheduler = Scheduler(Dispatcher("local", executor), store)
            choices = {t.id: Choice(t.id, "org/m", "test", ["org/m"]) for t in plan.tasks}
            list(scheduler.run(plan, choices, time.perf_counter()))
            records = scheduler.records
            where = f"{src} -> {dst} ({rtype}{', inside text' if inside_text else ''})"
            if [r.status for r in records.values()] != ["done", "done"] or len(executor.calls) != 2:
                problems.append(f"{where}: {[(r.status, r.error) for r in records.values()]}")
                continue
            produced = records[0].outputs[rtype]
            received = getattr(executor.calls[1][2], rtype)
            expected = f"Use this: {produced}" if inside_text else produced
            if [str(v) for v in received].count(expected) != 1:
                problems.append(f"{where}: received {received}, expected {expected!r}")
            if any("GENERATED" in str(v) for v in executor.calls[1][2].text):
                problems.append(f"{where}: a reference reached the consumer unresolved")
            checked += 1
    assert skipped == NOT_APPLICABLE
    assert not problems, "\n".join(problems)
    assert checked == LINKS - len(NOT_APPLICABLE) + INLINE_TEXT_LINKS
    assert time.perf_counter() - start < 30


def _media_files(tmp_path: Path) -> list[Path]:
    d = tmp_path / "literal-media"
    if not d.is_dir():
        d.mkdir()
        (d / "photo.png").write_bytes(b"\x89PNG literal photo")
        (d / "speech.wav").write_bytes(b"RIFF literal speech")
    return [d / "photo.png", d / "speech.wav"]


@pytest.mark.slow
@pytest.mark.timeout(1800)   # 225 two-task runs on tiny local models
def test_every_taskbench_link_chains(shared_data, tiny_models, media, tmp_path):
    from jarvis.runners.registry import TASK_TYPES
    links, tools = load_links(shared_data)
    passed, not_local, failures = 0, [], []
    with ScriptedLLM(select=pick_top, answer="ok") as llm:
        cfg = config_for(llm.url, local={"diffusion_steps": 2, "max_new_tokens": 8})
        controller = Controller(cfg)
        for link in links:
            src, dst, rtype = task_name(link["source"]), task_name(link["target"]), link["type"]
            if rtype not in TASK_TYPES[dst].inputs:
                not_local.append(f"{src} -> {dst} ({rtype}): Jarvis's {dst} takes "
                                 f"{'/'.join(TASK_TYPES[dst].inputs)}, not {rtype}")
                continue
            plan = [{"task": src, "id": 0, "dep": [-1], "args": source_args(src, tools[link["source"]]["input-type"])},
                    {"task": dst, "id": 1, "dep": [0], "args": target_args(dst, list(TASK_TYPES[dst].inputs), rtype)}]
            llm.script["plan"] = json.dumps(plan)
            session = Session.create(cfg, root=tmp_path / f"s{len(failures) + passed}")
            try:
                _, result, failed = run_to_end(controller, session, f"{src} then {dst}", files=media)
            finally:
                session.close()
            tasks = result.tasks if result else []
            if failed or len(tasks) != 2 or any(t.status != "done" for t in tasks):
                why = failed or "; ".join(f"{t.task}: {t.error}" for t in tasks if t.status != "done")
                failures.append(f"{src} -> {dst} ({rtype}): {why}")
            else:
                passed += 1
    print(f"\nTaskBench links: {passed} of {len(links)} pass; {len(not_local)} not applicable; "
          f"{len(failures)} fail")
    for line in not_local:
        print("  n/a:", line)
    assert not failures, "\n".join(failures)
    assert len(not_local) == len(NOT_APPLICABLE) and passed == LINKS - len(NOT_APPLICABLE)
