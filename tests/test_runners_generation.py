"""Generation runners (diffusers) through the LocalExecutor on tiny random pipelines, offline.

Images must open with PIL; the video must be an H.264 MP4 PyAV can decode, with several frames.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from jarvis.errors import TaskError
from jarvis.execution.local import LocalExecutor
from jarvis.files.store import ResourceStore
from jarvis.runners.base import RunContext, TaskInputs
from jarvis.runners.options import RunOptions
from jarvis.runners.registry import local_runner
from tests.tiny import build_all
from tests.tiny import diffusion as tiny

pytestmark = pytest.mark.timeout(300)

OPTIONS = RunOptions(diffusion_steps=2, video_frames=4, seed=0)


@pytest.fixture(scope="module")
def executor(hub_cache):
    build_all(hub_cache, only=set(tiny.IDS))
    return LocalExecutor(device="cpu", memory_budget_gb=1, options=OPTIONS)


@pytest.fixture()
def store(tmp_path) -> ResourceStore:
    return ResourceStore(tmp_path / "session")


def _ctx(store: ResourceStore, options: RunOptions | None = None, **values) -> RunContext:
    from jarvis.runners.base import Device
    messages: list[str] = []
    return RunContext(device=Device(), new_file=store.new_path, progress=messages.append,
                      options=options or RunOptions(**values))


def _picture(store: ResourceStore, size=(40, 24), name="in.png") -> Path:
    from PIL import Image, ImageDraw
    img = Image.new("RGB", size, "white")
    ImageDraw.Draw(img).rectangle([5, 5, size[0] - 8, size[1] - 6], outline="black", width=2)
    src = store.root.parent / name
    img.save(src)
    return store.add_upload(src).path


def _assert_png(path: Path, store: ResourceStore) -> tuple[int, int]:
    from PIL import Image
    assert path.suffix == ".png" and path.parent == store.root
    with Image.open(path) as img:
        img.load()
        assert img.format == "PNG" and img.mode == "RGB"
        return img.size


def test_text_to_image(executor, store):
    out = executor.run("text-to-image", tiny.SD_ID, TaskInputs(text=["a red fox in the snow"]), _ctx(store))
    assert _assert_png(out.image, store) == (32, 32)
    assert out.detail["prompt"] == "a red fox in the snow" and not out.detail["nsfw_blocked"]


def test_text_to_image_batch_gives_one_output_per_input(executor, store):
    runner = local_runner("text-to-image")
    entry = executor.cache.get(runner.cache_key(tiny.SD_ID), lambda: runner.load(tiny.SD_ID, executor.device))
    batch = [TaskInputs(text=[p]) for p in ("a cat", "a boat on a lake", "the moon")]
    outs = runner.run_batch(entry.loaded, batch, _ctx(store, OPTIONS))
    assert len(outs) == 3
    assert len({o.image for o in outs}) == 3
    assert [o.detail["prompt"] for o in outs] == ["a cat", "a boat on a lake", "the moon"]
    for out in outs:
        _assert_png(out.image, store)


def test_image_to_image_shares_the_text_to_image_load(executor, store):
    executor.run("text-to-image", tiny.SD_ID, TaskInputs(text=["warm up"]), _ctx(store))
    loads = executor.cache.stats.loads
    out = executor.run("image-to-image", tiny.SD_ID, TaskInputs(image=[_picture(store)]), _ctx(store))
    assert executor.cache.stats.loads == loads  # same family: no second load
    width, height = _assert_png(out.image, store)
    assert width > height  # aspect ratio kept (40x24 in)


def test_image_to_image_batch_mixed_sizes(executor, store):
    runner = local_runner("image-to-image")
    entry = executor.cache.get(runner.cache_key(tiny.SD_ID), lambda: runner.load(tiny.SD_ID, executor.device))
    batch = [TaskInputs(image=[_picture(store, (40, 24), "a.png")], text=["make it blue"]),
             TaskInputs(image=[_picture(store, (24, 40), "b.png")]),
             TaskInputs(image=[_picture(store, (40, 24), "c.png")])]
    outs = runner.run_batch(entry.loaded, batch, _ctx(store, OPTIONS))
    assert len(outs) == 3
    sizes = [_assert_png(o.image, store) for o in outs]
    assert sizes[0] == sizes[2] and sizes[1] == sizes[0][::-1]


def test_image_editing(executor, store):
    inputs = TaskInputs(image=[_picture(store)], text=["turn it into a painting"])
    out = executor.run("image-editing", tiny.PIX2PIX_ID, inputs, _ctx(store))
    _assert_png(out.image, store)
    with pytest.raises(TaskError, match="instruction"):
        executor.run("image-editing", tiny.PIX2PIX_ID, TaskInputs(image=[_picture(store)]), _ctx(store))


@pytest.mark.parametrize("task,model_id", [("canny-text-to-image", tiny.CANNY_ID),
                                           ("depth-text-to-image", tiny.DEPTH_ID)])
def test_controlnet(executor, store, task, model_id):
    inputs = TaskInputs(text=["a house by a river"], image=[_picture(store, (32, 32))])
    out = executor.run(task, model_id, inputs, _ctx(store))
    assert _assert_png(out.image, store) == (32, 32)
    assert out.detail["model"] == model_id


def test_controlnet_base_option_is_used(executor, store):
    inputs = TaskInputs(text=["a tree"], image=[_picture(store, (32, 32))])
    with pytest.raises(TaskError, match="no-such/base-model"):
        executor.run("canny-text-to-image", tiny.CANNY_ID, inputs, _ctx(store, controlnet_base="no-such/base-model"))


def test_text_to_video_writes_browser_playable_mp4(executor, store):
    import av
    out = executor.run("text-to-video", tiny.VIDEO_ID, TaskInputs(text=["a dog running on a beach"]), _ctx(store))
    assert out.video.suffix == ".mp4" and out.video.parent == store.root
    with av.open(str(out.video)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        frames = list(container.decode(stream))
    assert len(frames) == OPTIONS.video_frames > 1
    assert frames[0].width % 2 == 0 and frames[0].height % 2 == 0


def test_missing_prompt_is_a_clear_error(executor, store):
    with pytest.raises(TaskError, match="description"):
        executor.run("text-to-image", tiny.SD_ID, TaskInputs(text=["  "]), _ctx(store))


def test_videoio_round_trip(tmp_path):
    import numpy as np

    from jarvis.runners.media.video_files import h264_encoder, read_first_frame, video_info, write_mp4
    assert h264_encoder() in ("libx264", "libopenh264")
    frames = [np.full((33, 21, 3), i * 40, dtype=np.uint8) for i in range(5)]  # odd sizes get cropped even
    path = write_mp4(frames, tmp_path / "v.mp4", fps=5)
    info = video_info(path)
    assert info["codec"] == "h264" and info["frames"] == 5 and (info["width"], info["height"]) == (20, 32)
    assert read_first_frame(path).size == (20, 32)


def test_image_to_image_first_then_text_to_image(hub_cache, store):
    build_all(hub_cache, only={tiny.SD_ID})
    fresh = LocalExecutor(device="cpu", memory_budget_gb=1, options=OPTIONS)
    out = fresh.run("image-to-image", tiny.SD_ID, TaskInputs(image=[_picture(store)], text=["snow"]), _ctx(store))
    _assert_png(out.image, store)
    out = fresh.run("text-to-image", tiny.SD_ID, TaskInputs(text=["a lighthouse"]), _ctx(store))
    _assert_png(out.image, store)
    assert fresh.cache.stats.loads == 1


def test_safety_checker_kept_when_the_repo_has_one(tmp_path):
    import json

    from jarvis.runners.local.generation_support import safety_kwargs
    with_checker = tmp_path / "with"
    with_checker.mkdir()
    (with_checker / "model_index.json").write_text(json.dumps(
        {"_class_name": "StableDiffusionPipeline",
         "safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"]}))
    without = tmp_path / "without"
    without.mkdir()
    (without / "model_index.json").write_text(json.dumps(
        {"_class_name": "StableDiffusionPipeline", "safety_checker": [None, None]}))
    assert safety_kwargs(str(with_checker)) == {}
    assert safety_kwargs(str(without))["safety_checker"] is None
    assert safety_kwargs(str(without))["requires_safety_checker"] is False
