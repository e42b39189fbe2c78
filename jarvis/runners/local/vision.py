"""Local runners of the image analysis tasks: classification, detection, segmentation, depth and
the two control-image extractors. Pipelines serve the tasks transformers 5 still has pipelines for;
the image+text tasks (captioning, VQA, document QA) live in vision_language.py.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from jarvis.runners.base import Device, RunContext, Runner, TaskInputs, TaskOutputs
from jarvis.runners.local.loading import make_pipeline
from jarvis.runners.media.images import canny, depth_to_image, draw_boxes, load_rgb, overlay_masks, save_png

TEXT_ITEMS = 30  # the text lists this many boxes or segments; detail keeps them all


def _more(count: int) -> str:
    return f"; and {count - TEXT_ITEMS} more" if count > TEXT_ITEMS else ""


def _as_float(value: Any) -> float | None:
    return None if value is None else round(float(value), 4)


class PipelineRunner(Runner):
    """Loads the transformers pipeline of its task (of its family's task when it shares that task's
    loads, as depth-control does depth-estimation's); subclasses turn its output into TaskOutputs."""

    def load(self, model_id: str, device: Device) -> Any:
        return make_pipeline(self.family or self.task, model_id, device)


class ImageClassificationRunner(PipelineRunner):
    """Top labels of an image with their scores."""
    task = "image-classification"

    def run(self, loaded: Any, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        image = load_rgb(inputs.first("image"))
        results = loaded(image, top_k=ctx.options.top_k_labels)
        detail = [{"label": str(r["label"]), "score": _as_float(r["score"])} for r in results]
        if not detail:
            return TaskOutputs(text="no label", detail={"labels": []})
        text = ", ".join(f"{d['label']} {d['score']:.2f}" for d in detail)
        return TaskOutputs(text=text, detail={"labels": detail})


class ObjectDetectionRunner(PipelineRunner):
    """Boxes with labels: drawn on the image (PNG) and listed as text."""
    task = "object-detection"

    def run(self, loaded: Any, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        image = load_rgb(inputs.first("image"))
        threshold = ctx.options.detection_threshold
        results = loaded(image, threshold=threshold)
        results = sorted(results, key=lambda r: -float(r["score"]))[:ctx.options.max_objects]
        detail: list[dict[str, Any]] = []
        for r in results:
            b = r["box"]
            box = [int(round(b["xmin"])), int(round(b["ymin"])), int(round(b["xmax"])), int(round(b["ymax"]))]
            detail.append({"label": str(r["label"]), "score": _as_float(r["score"]), "box": box})
        path = save_png(draw_boxes(image, [(d["label"], d["score"], d["box"]) for d in detail]),
                        ctx.new_file("detection", ".png"))
        if not detail:
            text = f"0 objects found with confidence above {threshold:.2f}"
        else:
            listed = "; ".join(f"{d['label']} {d['score']:.2f} at [{','.join(map(str, d['box']))}]"
                               for d in detail[:TEXT_ITEMS]) + _more(len(detail))
            text = f"{len(detail)} object{'s' if len(detail) != 1 else ''}: {listed}"
        return TaskOutputs(text=text, image=path, detail={"objects": detail})


class ImageSegmentationRunner(PipelineRunner):
    """Labelled regions as a colour overlay (PNG) plus their labels and image shares as text."""
    task = "image-segmentation"

    def run(self, loaded: Any, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        image = load_rgb(inputs.first("image"))
        results = loaded(image)
        segments: list[tuple[np.ndarray, dict[str, Any]]] = []
        for r in results:
            mask = np.asarray(r["mask"].convert("L")) > 127
            segments.append((mask, {"label": str(r["label"]), "score": _as_float(r.get("score")),
                                    "area": round(float(mask.mean()), 4)}))
        segments.sort(key=lambda s: -s[1]["area"])
        overlay = overlay_masks(image, [m for m, _ in segments])
        path = save_png(overlay, ctx.new_file("segmentation", ".png"))
        detail = [d for _, d in segments]
        if not detail:
            return TaskOutputs(text="0 segments found", image=path, detail={"segments": []})
        listed = ", ".join(f"{d['label']} {d['area'] * 100:.0f}%" for d in detail[:TEXT_ITEMS]) + _more(len(detail))
        text = f"{len(detail)} segment{'s' if len(detail) != 1 else ''} (share of the image): {listed}"
        return TaskOutputs(text=text, image=path, detail={"segments": detail})


class DepthEstimationRunner(PipelineRunner):
    """A grey depth map, normalised to the full range (brighter = nearer for relative-depth models)."""
    task = "depth-estimation"
    family = "depth-estimation"

    def depth_image(self, loaded: Any, inputs: TaskInputs) -> tuple[Image.Image, np.ndarray]:
        """The depth map as a grey image of the input's size, and the raw depth values."""
        image = load_rgb(inputs.first("image"))
        result = loaded(image)
        depth = result["predicted_depth"]
        depth = depth.detach().float().cpu().numpy() if hasattr(depth, "detach") else np.asarray(depth)
        return depth_to_image(depth, size=image.size), depth

    def run(self, loaded: Any, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        img, depth = self.depth_image(loaded, inputs)
        path = save_png(img, ctx.new_file("depth", ".png"))
        detail = {"width": img.width, "height": img.height,
                  "raw_min": float(f"{np.nanmin(depth):.4g}"), "raw_max": float(f"{np.nanmax(depth):.4g}")}
        return TaskOutputs(image=path, detail=detail)


class DepthControlRunner(DepthEstimationRunner):
    """A depth map as a 3-channel control image for a depth ControlNet; shares the depth model load."""
    task = "depth-control"
    family = "depth-estimation"

    def run(self, loaded: Any, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        img, _ = self.depth_image(loaded, inputs)
        path = save_png(img.convert("RGB"), ctx.new_file("depth-control", ".png"))
        return TaskOutputs(image=path, detail={"width": img.width, "height": img.height})


class CannyControlRunner(Runner):
    """Canny edges (white on black) as a control image; built in, no model to load."""
    task = "canny-control"
    builtin = True

    def load(self, model_id: str, device: Device) -> None:
        return None

    def run(self, loaded: Any, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        image = load_rgb(inputs.first("image"), max_side=ctx.options.canny_max_side)
        low, high = ctx.options.canny_low, ctx.options.canny_high
        if low > high:
            low, high = high, low
        edges = canny(image, low=low, high=high)
        path = save_png(edges.convert("RGB"), ctx.new_file("canny", ".png"))
        share = float((np.asarray(edges) > 0).mean())
        return TaskOutputs(image=path, detail={"width": edges.width, "height": edges.height,
                                               "low": low, "high": high, "edge_share": round(share, 4)})
