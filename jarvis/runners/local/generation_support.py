"""Helpers the diffusion runners share: loading on a device, steps and seeds, image sizing, saving PNGs.

diffusers and torch are imported inside the functions so importing this module stays cheap.
"""
from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from PIL import Image

from jarvis.errors import TaskError
from jarvis.runners.base import Device, RunContext, TaskInputs, TaskOutputs
from jarvis.runners.local.loading import first_line, torch_dtype
from jarvis.runners.media import images
from jarvis.runners.media.video_files import read_first_frame

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = {".mp4", ".webm", ".mov", ".mkv", ".avi"}


def model_index(model_id: str) -> dict[str, Any]:
    """A diffusers repo's model_index.json (a local folder or the Hub/cache); {} when it cannot be read."""
    local = Path(model_id) / "model_index.json"
    try:
        if local.is_file():
            index = json.loads(local.read_text())
        else:
            from huggingface_hub import hf_hub_download
            index = json.loads(Path(hf_hub_download(model_id, "model_index.json")).read_text())
    except Exception as exc:  # no index (not a diffusers repo) or unreadable: the caller's defaults apply
        log.debug("no usable model_index.json for %s: %s", model_id, exc)
        return {}
    return index if isinstance(index, dict) else {}


def safety_kwargs(model_id: str) -> dict[str, Any]:
    """Turn the safety checker off cleanly when the repo ships none; keep it (default load) when present."""
    index = model_index(model_id)
    if "safety_checker" not in index:
        return {}
    entry = index.get("safety_checker")
    if entry is None or (isinstance(entry, (list, tuple)) and all(v is None for v in entry)):
        return {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}
    return {}


def load_pretrained(cls: Any, model_id: str, device: Device, **kwargs: Any) -> Any:
    """cls.from_pretrained on `device`: fp16 weights (variant when the repo has it) only on a half device."""
    if device.half:
        kwargs["torch_dtype"] = torch_dtype(device)
        try:
            obj = cls.from_pretrained(model_id, variant="fp16", **kwargs)
        except (OSError, ValueError):  # repo has no fp16 variant: load the full weights, cast on load
            obj = cls.from_pretrained(model_id, **kwargs)
    else:
        obj = cls.from_pretrained(model_id, **kwargs)
    return prepare(obj, device)


def prepare(obj: Any, device: Device) -> Any:
    """Move a model or pipeline to the device and silence per-step progress bars."""
    if hasattr(obj, "to"):
        obj = obj.to(device.name)
    if hasattr(obj, "set_progress_bar_config"):
        obj.set_progress_bar_config(disable=True)
    return obj


def steps(ctx: RunContext) -> int:
    """Denoising steps (config local.diffusion_steps); at least 1."""
    value = ctx.options.diffusion_steps
    if value < 1:
        raise TaskError("local.diffusion_steps must be at least 1")
    return value


def generator(ctx: RunContext) -> Any:
    """A seeded torch.Generator when options carry a `seed`, else None (random)."""
    seed = ctx.options.seed
    if seed is None:
        return None
    import torch

    return torch.Generator("cpu").manual_seed(seed)


def default_side(pipe: Any) -> int:
    """The side in pixels the pipeline's UNet was trained for (512 for SD 1.5)."""
    unet = getattr(pipe, "unet", None)
    sample = getattr(getattr(unet, "config", None), "sample_size", None) or 64
    if isinstance(sample, (list, tuple)):
        sample = max(sample)
    return int(sample) * int(getattr(pipe, "vae_scale_factor", 8))


def load_source(path: Path) -> Image.Image:
    """An input image as RGB at full size (the pipeline scales it); a video gives its first frame."""
    path = Path(path)
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return read_first_frame(path)
    return images.load_rgb(path, max_side=None)


def fit_size(width: int, height: int, max_side: int, multiple: int = 8) -> tuple[int, int]:
    """Scale (width, height) so the longer side is max_side, both sides multiples of `multiple`."""
    scale = max_side / max(width, height)
    w = max(multiple, int(round(width * scale / multiple)) * multiple)
    h = max(multiple, int(round(height * scale / multiple)) * multiple)
    return w, h


def fit_image(image: Image.Image, pipe: Any) -> Image.Image:
    """Resize an input image to the pipeline's native scale, keeping its aspect ratio."""
    multiple = max(8, int(getattr(pipe, "vae_scale_factor", 8)))
    w, h = fit_size(image.width, image.height, default_side(pipe), multiple)
    return image if (w, h) == image.size else image.resize((w, h))


def prompt_of(inputs: TaskInputs, default: str = "") -> str:
    """The task's first text, stripped (the prompt), or `default` when it has none."""
    return str(inputs.text[0]).strip() if inputs.text else default


def call_pipe(pipe: Any, model_id: str, ctx: RunContext, **kwargs: Any) -> Any:
    """Run a pipeline without autograd; a failure becomes a TaskError a user can act on. The run's
    cancel flag is checked after every denoising step, so a task that timed out stops there."""
    import torch

    def on_step_end(_pipe: Any, _step: int, _timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        ctx.raise_if_cancelled()
        return tensors

    accepted = inspect.signature(pipe.__call__).parameters
    if "callback_on_step_end" in accepted:
        kwargs["callback_on_step_end"] = on_step_end
    elif "callback" in accepted:  # older pipelines (TextToVideoSDPipeline): callback(step, timestep, latents)
        kwargs.update(callback=lambda *_: ctx.raise_if_cancelled(), callback_steps=1)
    try:
        with torch.inference_mode():
            return pipe(**kwargs)
    except torch.OutOfMemoryError as exc:
        raise TaskError(f"{model_id} ran out of GPU memory; lower local.diffusion_steps or use remote mode") from exc
    except (ValueError, RuntimeError) as exc:
        raise TaskError(f"{model_id} could not generate: {first_line(exc)}") from exc


def save_images(generated: Iterable[Any], nsfw: Iterable[Any] | None, ctx: RunContext, stem: str,
                model_id: str, prompts: list[str] | None = None) -> list[TaskOutputs]:
    """One TaskOutputs per generated image, saved as PNG; notes when the safety checker blanked one."""
    pictures = list(generated)
    flags = list(nsfw) if nsfw is not None else [False] * len(pictures)
    outs = []
    for i, img in enumerate(pictures):
        path = ctx.new_file(stem, ".png")
        img.save(path, format="PNG")
        flagged = bool(flags[i]) if i < len(flags) else False
        detail = {"model": model_id, "width": img.width, "height": img.height, "nsfw_blocked": flagged}
        if prompts:
            detail["prompt"] = prompts[i] if i < len(prompts) else prompts[0]
        note = (f"generated {path.name} ({img.width}x{img.height})" if not flagged else
                f"the safety checker blocked {path.name} (black image); try a different prompt")
        outs.append(TaskOutputs(text=note, image=path, detail=detail))
    return outs
