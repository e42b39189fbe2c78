"""Local image-generation runners on diffusers: text-to-image, image-to-image, image editing, ControlNet.

Text-to-image and image-to-image share one load per model (family "diffusion-image"): the second
pipeline is built from the first one's components with AutoPipelineFor*.from_pipe, no extra memory.
"""
from __future__ import annotations

import math
from abc import abstractmethod
from collections import defaultdict
from typing import Any

from PIL import Image

from jarvis.errors import TaskError
from jarvis.runners.base import Device, RunContext, Runner, TaskInputs, TaskOutputs
from jarvis.runners.local import generation_support as common
from jarvis.runners.local.loading import first_line


class DiffusionBundle(dict[str, Any]):
    """The pipelines of one model keyed by task (they share their modules); the model cache sizes it as a dict."""

    def __init__(self, model_id: str, **pipes: Any):
        super().__init__(pipes)
        self.model_id = model_id


def _auto_class(task: str) -> Any:
    """The diffusers auto pipeline class for text-to-image or (any other task) image-to-image."""
    from diffusers import AutoPipelineForImage2Image, AutoPipelineForText2Image

    return AutoPipelineForText2Image if task == "text-to-image" else AutoPipelineForImage2Image


def _load_bundle(task: str, model_id: str, device: Device) -> DiffusionBundle:
    pipe = common.load_pretrained(_auto_class(task), model_id, device, **common.safety_kwargs(model_id))
    return DiffusionBundle(model_id, **{task: pipe})


def _pipe_for(bundle: DiffusionBundle, task: str) -> Any:
    """The bundle's pipeline for `task`, made from the loaded components when missing."""
    if task not in bundle:
        source = next(iter(bundle.values()))
        try:
            pipe = _auto_class(task).from_pipe(source)
        except ValueError as exc:
            raise TaskError(f"{bundle.model_id} cannot do {task}: {first_line(exc, 200)}; "
                            "pick a Stable Diffusion model for it") from exc
        if hasattr(pipe, "set_progress_bar_config"):
            pipe.set_progress_bar_config(disable=True)
        bundle[task] = pipe
    return bundle[task]


def _nsfw(result: Any) -> Any:
    return getattr(result, "nsfw_content_detected", None)


def _group_by_size(images: list[Image.Image]) -> dict[tuple[int, int], list[int]]:
    """Indexes of the images by size: images of one size go through the pipeline as one batch."""
    groups: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, img in enumerate(images):
        groups[img.size].append(i)
    return groups


class _StableDiffusionRunner(Runner):
    """One load per model for text-to-image and image-to-image: whichever task loads it first, the
    other's pipeline is built from the same components (_pipe_for)."""
    family = "diffusion-image"

    def load(self, model_id: str, device: Device) -> DiffusionBundle:
        return _load_bundle(self.task, model_id, device)


class TextToImageRunner(_StableDiffusionRunner):
    """Prompt in, PNG out; several prompts go through the pipeline as one batch."""
    task = "text-to-image"
    batching = True

    def run(self, loaded: DiffusionBundle, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        return self.run_batch(loaded, [inputs], ctx)[0]

    def run_batch(self, loaded: DiffusionBundle, batch: list[TaskInputs], ctx: RunContext) -> list[TaskOutputs]:
        if not batch:
            return []
        prompts = [common.prompt_of(inputs) for inputs in batch]
        if not all(prompts):
            raise TaskError("text-to-image needs a description of the image to draw")
        pipe = _pipe_for(loaded, self.task)
        n = common.steps(ctx)
        ctx.progress(f"drawing {len(prompts)} image(s) with {loaded.model_id}, {n} steps")
        result = common.call_pipe(pipe, loaded.model_id, ctx, prompt=prompts, num_inference_steps=n,
                                  generator=common.generator(ctx))
        return common.save_images(result.images, _nsfw(result), ctx, "image", loaded.model_id, prompts)


class _ImageConditionedRunner(Runner):
    """Shared batching for runners that take an image (and maybe a prompt): equal sizes share a batch."""
    batching = True
    stem = "image"

    def run(self, loaded: Any, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        return self.run_batch(loaded, [inputs], ctx)[0]

    def run_batch(self, loaded: Any, batch: list[TaskInputs], ctx: RunContext) -> list[TaskOutputs]:
        if not batch:
            return []
        prompts = [self.prompt(inputs) for inputs in batch]  # validate before any loading
        sources = [common.load_source(inputs.first("image")) for inputs in batch]
        pipe = self.pipeline(loaded, ctx)
        model_id = self.model_label(loaded, ctx)
        images = [common.fit_image(img, pipe) for img in sources]
        n = common.steps(ctx)
        outs: list[TaskOutputs | None] = [None] * len(batch)
        for (w, h), idx in _group_by_size(images).items():
            ctx.progress(f"{self.task}: {len(idx)} image(s) {w}x{h} with {model_id}, {n} steps")
            kwargs = self.call_kwargs([prompts[i] for i in idx], [images[i] for i in idx], w, h, ctx)
            kwargs.setdefault("num_inference_steps", n)
            result = common.call_pipe(pipe, model_id, ctx, generator=common.generator(ctx), **kwargs)
            saved = common.save_images(result.images, _nsfw(result), ctx, self.stem, model_id,
                                       [prompts[i] for i in idx])
            for i, out in zip(idx, saved):
                outs[i] = out
        return [o for o in outs if o is not None]

    # hooks -------------------------------------------------------------
    @abstractmethod
    def pipeline(self, loaded: Any, ctx: RunContext) -> Any:
        """The diffusers pipeline to call, from what load built."""

    def model_label(self, loaded: Any, ctx: RunContext) -> str:
        """The model named in progress messages and the detail."""
        return str(loaded.model_id)

    def prompt(self, inputs: TaskInputs) -> str:
        """The prompt of one input (checked before any model work)."""
        return common.prompt_of(inputs)

    @abstractmethod
    def call_kwargs(self, prompts: list[str], images: list[Image.Image], width: int, height: int,
                    ctx: RunContext) -> dict[str, Any]:
        """The pipeline's arguments for one batch of equal-sized images."""


class ImageToImageRunner(_ImageConditionedRunner, _StableDiffusionRunner):
    """An image (and an optional prompt) in, a transformed image out: img2img on the text-to-image model."""
    task = "image-to-image"

    def pipeline(self, loaded: DiffusionBundle, ctx: RunContext) -> Any:
        return _pipe_for(loaded, self.task)

    def prompt(self, inputs: TaskInputs) -> str:
        return common.prompt_of(inputs, "a high quality, detailed picture")

    def call_kwargs(self, prompts: list[str], images: list[Image.Image], width: int, height: int,
                    ctx: RunContext) -> dict[str, Any]:
        strength = min(1.0, max(0.05, ctx.options.img2img_strength))
        # img2img runs steps * strength denoising steps: keep at least one
        steps = max(common.steps(ctx), math.ceil(1 / strength))
        return {"prompt": prompts, "image": images, "strength": strength, "num_inference_steps": steps}


class ImageEditingRunner(_ImageConditionedRunner):
    """Image + instruction in, edited image out (InstructPix2Pix)."""
    task = "image-editing"
    stem = "edited"

    def load(self, model_id: str, device: Device) -> DiffusionBundle:
        from diffusers import StableDiffusionInstructPix2PixPipeline

        pipe = common.load_pretrained(StableDiffusionInstructPix2PixPipeline, model_id, device,
                                      **common.safety_kwargs(model_id))
        return DiffusionBundle(model_id, **{self.task: pipe})

    def pipeline(self, loaded: DiffusionBundle, ctx: RunContext) -> Any:
        return loaded[self.task]

    def prompt(self, inputs: TaskInputs) -> str:
        instruction = common.prompt_of(inputs)
        if not instruction:
            raise TaskError("image-editing needs an instruction saying what to change, e.g. 'make it snowy'")
        return instruction

    def call_kwargs(self, prompts: list[str], images: list[Image.Image], width: int, height: int,
                    ctx: RunContext) -> dict[str, Any]:
        return {"prompt": prompts, "image": images, "image_guidance_scale": 1.5}


class _ControlNetRunner(_ImageConditionedRunner):
    """Prompt + control image (edges or depth) in, a new image following it out.

    load() gets only the ControlNet; the base pipeline (options.controlnet_base, default SD 1.5)
    is assembled at the first run, since options reach runners only then.
    """
    stem = "controlled"

    def load(self, model_id: str, device: Device) -> dict[str, Any]:
        from diffusers import ControlNetModel

        controlnet = common.load_pretrained(ControlNetModel, model_id, device)
        return {"controlnet": controlnet, "model_id": model_id, "device": device, "pipes": {}}

    def pipeline(self, loaded: dict[str, Any], ctx: RunContext) -> Any:
        from diffusers import StableDiffusionControlNetPipeline

        base = ctx.options.controlnet_base
        pipes = loaded["pipes"]
        if base not in pipes:
            ctx.progress(f"loading ControlNet base model {base}")
            try:
                pipes[base] = common.load_pretrained(StableDiffusionControlNetPipeline, base, loaded["device"],
                                                     controlnet=loaded["controlnet"], **common.safety_kwargs(base))
            except OSError as exc:
                raise TaskError(f"could not load the ControlNet base model {base}: "
                                f"{first_line(exc, 200)} (is it downloaded, or is the network "
                                "reachable?)") from exc
        return pipes[base]

    def model_label(self, loaded: dict[str, Any], ctx: RunContext) -> str:
        return str(loaded["model_id"])

    def prompt(self, inputs: TaskInputs) -> str:
        text = common.prompt_of(inputs)
        if not text:
            raise TaskError(f"{self.task} needs a description of the image to draw")
        return text

    def call_kwargs(self, prompts: list[str], images: list[Image.Image], width: int, height: int,
                    ctx: RunContext) -> dict[str, Any]:
        return {"prompt": prompts, "image": images, "width": width, "height": height}


class CannyTextToImageRunner(_ControlNetRunner):
    """A new image drawn from a description along an edge map (a canny ControlNet)."""
    task = "canny-text-to-image"


class DepthTextToImageRunner(_ControlNetRunner):
    """A new image drawn from a description along a depth map (a depth ControlNet)."""
    task = "depth-text-to-image"
