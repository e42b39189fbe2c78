"""Helpers the diffusion runners share: loading on a device, steps and seeds, image sizing, saving PNGs.

diffusers and torch are imported inside the functions so importing this module stays cheap.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from jarvis.runners.base import Device, RunContext, TaskError, TaskInputs, TaskOutputs

DEFAULT_STEPS = 20


def torch_dtype(device: Device):
    import torch

    return torch.float16 if device.half else torch.float32


def model_index(model_id: str) -> dict:
    """A diffusers repo's model_index.json (a local folder or the Hub/cache); {} when it cannot be read."""
    import json

    local = Path(model_id) / "model_index.json"
    try:
        if local.is_file():
            return json.loads(local.read_text())
        from huggingface_hub import hf_hub_download
        return json.loads(Path(hf_hub_download(model_id, "model_index.json")).read_text())
    except Exception:
        return {}


def safety_kwargs(model_id: str) -> dict:
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
    try:
        value = int(ctx.options.get("diffusion_steps", DEFAULT_STEPS))
    except (TypeError, ValueError) as exc:
        raise TaskError("local.diffusion_steps must be a whole number, like 20") from exc
    if value < 1:
        raise TaskError("local.diffusion_steps must be at least 1")
    return value


def generator(ctx: RunContext):
    """A seeded torch.Generator when options carry a `seed`, else None (random)."""
    seed = ctx.options.get("seed")
    if seed is None:
        return None
    import torch

    return torch.Generator("cpu").manual_seed(int(seed))


def default_side(pipe: Any) -> int:
    """The side in pixels the pipeline's UNet was trained for (512 for SD 1.5)."""
    unet = getattr(pipe, "unet", None)
    sample = getattr(getattr(unet, "config", None), "sample_size", None) or 64
    if isinstance(sample, (list, tuple)):
        sample = max(sample)
    return int(sample) * int(getattr(pipe, "vae_scale_factor", 8))


def load_rgb(path: Path):
    """Open an image file as RGB; a video gives its first frame."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if path.suffix.lower() in {".mp4", ".webm", ".mov", ".mkv", ".avi"}:
        from jarvis.runners.media.video_files import read_first_frame
        return read_first_frame(path)
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise TaskError(f"could not open image {path.name}: is it a PNG/JPEG file?") from exc


def fit_size(width: int, height: int, max_side: int, multiple: int = 8) -> tuple[int, int]:
    """Scale (width, height) so the longer side is max_side, both sides multiples of `multiple`."""
    scale = max_side / max(width, height)
    w = max(multiple, int(round(width * scale / multiple)) * multiple)
    h = max(multiple, int(round(height * scale / multiple)) * multiple)
    return w, h


def fit_image(image, pipe: Any):
    """Resize an input image to the pipeline's native scale, keeping its aspect ratio."""
    multiple = max(8, int(getattr(pipe, "vae_scale_factor", 8)))
    w, h = fit_size(image.width, image.height, default_side(pipe), multiple)
    return image if (w, h) == image.size else image.resize((w, h))


def prompt_of(inputs: TaskInputs, default: str = "") -> str:
    return str(inputs.text[0]).strip() if inputs.text else default


def call_pipe(pipe: Any, model_id: str, **kwargs: Any) -> Any:
    """Run a pipeline without autograd; a failure becomes a TaskError a user can act on."""
    import torch

    try:
        with torch.inference_mode():
            return pipe(**kwargs)
    except torch.OutOfMemoryError as exc:
        raise TaskError(f"{model_id} ran out of GPU memory; lower local.diffusion_steps or use remote mode") from exc
    except (ValueError, RuntimeError) as exc:
        raise TaskError(f"{model_id} could not generate: {str(exc).splitlines()[0][:300]}") from exc


def save_images(images: Iterable[Any], nsfw: Iterable[Any] | None, ctx: RunContext, stem: str,
                model_id: str, prompts: list[str] | None = None) -> list[TaskOutputs]:
    """One TaskOutputs per generated image, saved as PNG; notes when the safety checker blanked one."""
    images = list(images)
    flags = list(nsfw) if nsfw is not None else [False] * len(images)
    outs = []
    for i, img in enumerate(images):
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
