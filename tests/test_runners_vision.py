"""Vision runners on tiny random models through the real LocalExecutor, offline.

Each runner loads its model by the real Hub id from the temporary HF cache, reads a generated
image from a session's ResourceStore and writes its outputs there.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from jarvis.errors import TaskError
from jarvis.execution.local import LocalExecutor
from jarvis.files.store import ResourceStore
from jarvis.runners.base import Device, RunContext, TaskInputs
from jarvis.runners.local.vision_language import parse_donut_answer
from jarvis.runners.media.images import MAX_SIDE, canny, draw_boxes, load_rgb, overlay_masks
from jarvis.runners.options import RunOptions
from jarvis.runners.registry import local_runner
from tests.helpers import check_detail


def scene(size=(96, 72), mode="RGB") -> Image.Image:
    img = Image.new("RGB", size, (235, 235, 220))
    draw = ImageDraw.Draw(img)
    w, h = size
    draw.ellipse([w * 0.1, h * 0.2, w * 0.5, h * 0.8], fill=(200, 30, 30))
    draw.rectangle([w * 0.6, h * 0.1, w * 0.9, h * 0.6], fill=(20, 60, 200))
    if mode == "RGBA":
        out = img.convert("RGBA")
        out.putalpha(Image.new("L", size, 128))
        return out
    return img.convert(mode)


@pytest.fixture(scope="module")
def executor(tiny_models) -> LocalExecutor:
    return LocalExecutor(device="cpu", memory_budget_gb=1.0, options=RunOptions(max_new_tokens=6))


@pytest.fixture()
def store(tmp_path) -> ResourceStore:
    return ResourceStore(tmp_path / "session")


def add_image(store: ResourceStore, img: Image.Image, name: str = "photo.png") -> Path:
    src = store.root.parent / name
    img.save(src)
    return store.add_upload(src).path


def run(executor, store, task, model, image, text=(), **options):
    ctx = RunContext(device=Device("cpu"), new_file=store.new_path, options=RunOptions(**options))
    outputs = executor.run(task, model, TaskInputs(text=list(text), image=[image]), ctx)
    json.dumps(outputs.detail)
    if outputs.image is not None:
        assert Path(outputs.image).parent == store.root
        with Image.open(outputs.image) as img:
            assert img.format == "PNG"
            img.load()
    if outputs.text is not None:
        assert outputs.text.strip()
    return outputs


CASES = [
    ("image-classification", "google/vit-base-patch16-224", ()),
    ("object-detection", "PekingU/rtdetr_r50vd", ()),
    ("object-detection", "hustvl/yolos-tiny", ()),
    ("object-detection", "facebook/detr-resnet-50", ()),
    ("image-segmentation", "nvidia/segformer-b0-finetuned-ade-512-512", ()),
    ("depth-estimation", "depth-anything/Depth-Anything-V2-Small-hf", ()),
    ("depth-estimation", "Intel/dpt-large", ()),
    ("depth-control", "depth-anything/Depth-Anything-V2-Small-hf", ()),
    ("image-to-text", "HuggingFaceTB/SmolVLM-256M-Instruct", ()),
    ("image-to-text", "nlpconnect/vit-gpt2-image-captioning", ()),
    ("image-to-text", "Salesforce/blip-image-captioning-base", ()),
    ("visual-question-answering", "HuggingFaceTB/SmolVLM-256M-Instruct", ("what colour is the car?",)),
    ("visual-question-answering", "dandelin/vilt-b32-finetuned-vqa", ("what colour is the car?",)),
    ("visual-question-answering", "Salesforce/blip-vqa-base", ("how many dogs are there?",)),
    ("document-question-answering", "HuggingFaceTB/SmolVLM-256M-Instruct", ("what is the total amount?",)),
    ("document-question-answering", "naver-clova-ix/donut-base-finetuned-docvqa", ("what is the total amount?",)),
    ("canny-control", "none", ()),
]
NEEDS_IMAGE = {"object-detection", "image-segmentation", "depth-estimation", "depth-control", "canny-control"}
NEEDS_TEXT = {"image-classification", "object-detection", "image-segmentation", "image-to-text",
              "visual-question-answering", "document-question-answering"}


@pytest.mark.parametrize("task,model,text", CASES, ids=[f"{t}:{m}" for t, m, _ in CASES])
def test_runner_on_tiny_model(executor, store, task, model, text):
    image = add_image(store, scene())
    out = run(executor, store, task, model, image, text)
    if task in NEEDS_IMAGE:
        assert out.image is not None
        with Image.open(out.image) as img:
            assert img.size == (96, 72)  # outputs keep the input's size
    if task in NEEDS_TEXT:
        assert out.text
    check_detail(task, out.detail)
    if task == "image-to-text":
        assert out.detail["caption"]  # the tiny captioners decode to real tokens, not only special ones
    if task in ("depth-estimation", "depth-control"):
        with Image.open(out.image) as img:
            grey = np.asarray(img.convert("L"))
        assert grey.min() == 0 and grey.max() == 255  # normalised to the full range


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16"])
@pytest.mark.parametrize("task,model", [("image-classification", "google/vit-base-patch16-224"),
                                        ("object-detection", "hustvl/yolos-tiny"),
                                        ("visual-question-answering", "dandelin/vilt-b32-finetuned-vqa")])
def test_unusual_modes(executor, store, task, model, mode):
    img = scene(mode="RGBA" if mode == "RGBA" else "L" if mode == "I;16" else mode)
    if mode == "I;16":
        img = Image.fromarray((np.asarray(img, dtype=np.uint16) * 256), "I;16")
    out = run(executor, store, task, model, add_image(store, img), ("is it red?",))
    assert out.text


def test_huge_image(executor, store):
    big = scene(size=(3000, 3000))
    path = add_image(store, big, "huge.jpg")
    for task, model in [("object-detection", "hustvl/yolos-tiny"), ("image-segmentation",
                        "nvidia/segformer-b0-finetuned-ade-512-512"), ("canny-control", "x")]:
        out = run(executor, store, task, model, path)
        with Image.open(out.image) as img:
            assert max(img.size) <= MAX_SIDE


def test_detection_draws_boxes_and_lists_them(executor, store):
    out = run(executor, store, "object-detection", "hustvl/yolos-tiny", add_image(store, scene()),
              detection_threshold=0.0)
    objects = out.detail["objects"]
    assert objects and {"label", "score", "box"} <= set(objects[0])
    assert out.text.startswith(f"{len(objects)} object")
    assert " at [" in out.text


def test_depth_control_shares_the_depth_load(executor, store):
    model = "depth-anything/Depth-Anything-V2-Small-hf"
    image = add_image(store, scene())
    run(executor, store, "depth-estimation", model, image)
    loads = executor.cache.stats.loads
    out = run(executor, store, "depth-control", model, image)
    assert executor.cache.stats.loads == loads
    with Image.open(out.image) as img:
        assert img.mode == "RGB"


def test_canny_is_builtin_and_finds_edges(store):
    runner = local_runner("canny-control")
    assert runner.builtin is True and runner.load("anything", Device()) is None
    ctx = RunContext(device=Device(), new_file=store.new_path)
    out = runner.run(None, TaskInputs(image=[add_image(store, scene(size=(128, 128)))]), ctx)
    edges = np.asarray(Image.open(out.image).convert("L")) > 0
    assert 0.01 < edges.mean() < 0.2
    assert not edges[:5, :5].any()  # flat background has no edges


def test_canny_on_a_square_outline():
    img = Image.new("L", (64, 64), 0)
    ImageDraw.Draw(img).rectangle([16, 16, 47, 47], fill=255)
    edges = np.asarray(canny(img)) > 0
    assert edges[16:48, 14:18].any() and edges[16:48, 46:50].any()
    assert not edges[30:34, 30:34].any()


def test_image_helpers():
    img = scene()
    boxed = draw_boxes(img, [("cat", 0.9, [1, 1, 40, 40])])
    assert boxed.size == img.size and boxed.tobytes() != img.tobytes()
    mask = np.zeros((72, 96), bool)
    mask[:10] = True
    over = overlay_masks(img, [mask])
    assert np.asarray(over)[:10].tobytes() != np.asarray(img)[:10].tobytes()
    assert np.asarray(over)[20:].tobytes() == np.asarray(img)[20:].tobytes()


def test_bad_image_is_a_task_error(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(TaskError, match="cannot read"):
        load_rgb(bad)


def test_parse_donut_answer():
    seq = "<s_docvqa><s_question>what is the total?</s_question><s_answer>$ 12.50</s_answer></s><pad>"
    assert parse_donut_answer(seq) == "$ 12.50"
    assert parse_donut_answer("<s_docvqa><s_question>q</s_question><s_answer>42") == "42"


def test_vqa_needs_a_question(executor, store):
    with pytest.raises(TaskError):
        run(executor, store, "visual-question-answering", "dandelin/vilt-b32-finetuned-vqa",
            add_image(store, scene()), ("   ",))


def test_unsupported_vqa_architecture_is_explained(executor, store):
    with pytest.raises(TaskError, match="ViLT, BLIP and vision-language models"):
        run(executor, store, "visual-question-answering", "google/vit-base-patch16-224",
            add_image(store, scene()), ("what?",))


def test_vision_language_model_is_asked_through_its_chat_template(executor, store):
    """SmolVLM (Idefics3) answers through its chat template: the prompt holds the image tokens and the
    task's question, the pixel mask keeps its integer type, and the reply holds only the new tokens."""
    from jarvis.runners.local.vision_language import VQA_PROMPT, _pixels
    loaded = local_runner("visual-question-answering").load("HuggingFaceTB/SmolVLM-256M-Instruct", Device("cpu"))
    assert loaded.kind == "chat"
    messages = [{"role": "user", "content": [{"type": "image"},
                                             {"type": "text", "text": VQA_PROMPT.format(question="is it red?")}]}]
    prompt = loaded.processor.apply_chat_template(messages, add_generation_prompt=True)
    assert prompt.startswith("<|im_start|>User:<image>") and prompt.endswith("is it red?<end_of_utterance>\nAssistant:")
    batch = _pixels(loaded.processor, [scene()], loaded, text=[prompt])
    assert not batch["pixel_attention_mask"].is_floating_point()  # only pixel values take the model's dtype
    assert (batch["input_ids"] == loaded.model.config.image_token_id).sum() > 0
    out = run(executor, store, "visual-question-answering", "HuggingFaceTB/SmolVLM-256M-Instruct",
              add_image(store, scene()), ("is it red?",), max_new_tokens=4)
    answer = out.detail["answers"][0]["answer"]
    assert "Assistant" not in answer and "is it red" not in answer


def test_depth_control_loads_on_its_own(tiny_models, store):
    """Without a depth-estimation load to share (catalog verify, a first task), it loads its family's pipeline."""
    runner = local_runner("depth-control")
    loaded = runner.load("depth-anything/Depth-Anything-V2-Small-hf", Device("cpu"))
    ctx = RunContext(device=Device("cpu"), new_file=store.new_path)
    out = runner.run(loaded, TaskInputs(image=[add_image(store, scene())]), ctx)
    with Image.open(out.image) as img:
        assert img.mode == "RGB" and img.size == (96, 72)
