"""Every TaskBench link (source task -> target task, resource type) as a two-task plan through the
controller, the source's output feeding the target, on tiny local models. Reports how many of the
225 links pass; every link whose two ends run locally must pass."""
import json
import wave

import numpy as np
import pytest
from PIL import Image

from jarvis.pipeline.controller import Controller
from jarvis.session import Session
from tests.fakes.llm_server import ScriptedLLM
from tests.helpers import config_for, run_to_end
from tests.test_controller import pick_top

pytestmark = pytest.mark.slow

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


def test_every_taskbench_link_chains(shared_data, tiny_models, media, tmp_path):
    from jarvis.runners.registry import TASK_TYPES
    graph = json.loads((shared_data / "taskbench_hf_graph_desc.json").read_text())
    tools = {n["id"]: n for n in json.loads((shared_data / "taskbench_hf_tool_desc.json").read_text())["nodes"]}
    links = graph["links"]
    assert len(links) == 225
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
