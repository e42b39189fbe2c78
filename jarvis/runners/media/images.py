"""Image helpers for the vision runners: robust loading to RGB, boxes, colour overlays, depth maps
and a Canny edge detector in plain numpy/PIL (no OpenCV), so canny-control needs no model at all.
"""
from __future__ import annotations

import colorsys
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

from jarvis.errors import TaskError
from jarvis.files.content_checks import IMAGE_FORMATS

# Larger inputs are scaled down first: no image processor of the catalog's models uses more than
# 1333 px (DETR/YOLOS), so nothing is lost, and drawing, masks and PNG encoding stay cheap.
MAX_SIDE = 1344


def load_rgb(path: str | Path, max_side: int | None = MAX_SIDE) -> Image.Image:
    """Open any image file (grayscale, palette, RGBA, CMYK, 16-bit, animated) as an RGB image.

    EXIF rotation is applied, transparency is composited on white, and an image whose longer side
    exceeds `max_side` is scaled down keeping its aspect ratio. A picture declaring more pixels than
    Pillow's bomb guard allows (Image.MAX_IMAGE_PIXELS) is refused from its header, before decoding
    (Pillow itself only warns up to twice that); inputs were already held to files.max_image_megapixels.
    """
    path = Path(path)
    try:
        with Image.open(path, formats=IMAGE_FORMATS) as opened:
            width, height = opened.size
            if Image.MAX_IMAGE_PIXELS and width * height > Image.MAX_IMAGE_PIXELS:
                raise TaskError(f"{path.name} declares {width}x{height} pixels, more than the "
                                f"{Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels Jarvis decodes; send a smaller image")
            opened.seek(0)  # first frame of an animation
            if max_side and opened.format == "JPEG":
                opened.draft("RGB", (max_side, max_side))  # decode big JPEGs at a reduced scale: much faster
            img: Image.Image = ImageOps.exif_transpose(opened)
            img.load()
    except FileNotFoundError as exc:
        raise TaskError(f"image file not found: {path.name}") from exc
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError) as exc:
        raise TaskError(f"cannot read {path.name} as an image ({exc}); attach a PNG, JPEG or WebP file") from exc
    img = to_rgb(img)
    if max_side and max(img.size) > max_side:
        img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return img


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode to RGB; alpha is composited on a white background."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        return Image.fromarray(arr.astype(np.uint8), "L").convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def save_png(img: Image.Image, path: Path) -> Path:
    img.save(path, format="PNG")
    return path


def palette(n: int) -> list[tuple[int, int, int]]:
    """n distinct, saturated colours (golden-ratio hue steps), stable for a given index."""
    colours = []
    for i in range(n):
        hue = (i * 0.618033988749895) % 1.0
        r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 0.95)
        colours.append((int(r * 255), int(g * 255), int(b * 255)))
    return colours


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def draw_boxes(img: Image.Image, boxes: Sequence[tuple[str, float, Sequence[float]]]) -> Image.Image:
    """A copy of `img` with each (label, score, [x0, y0, x1, y1]) drawn as a coloured, labelled box."""
    out = img.copy()
    draw = ImageDraw.Draw(out)
    width = max(2, round(max(out.size) / 300))
    font = _font(max(10, round(max(out.size) / 40)))
    labels = sorted({label for label, _, _ in boxes})
    colour_of = dict(zip(labels, palette(len(labels))))
    for label, score, (x0, y0, x1, y1) in boxes:
        colour = colour_of[label]
        draw.rectangle([x0, y0, x1, y1], outline=colour, width=width)
        caption = f"{label} {score:.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), caption, font=font)
        tw, th = right - left, bottom - top
        ty = y0 - th - 2 * width if y0 - th - 2 * width >= 0 else y0
        draw.rectangle([x0, ty, x0 + tw + 2 * width, ty + th + 2 * width], fill=colour)
        draw.text((x0 + width - left, ty + width - top), caption, fill=(0, 0, 0), font=font)
    return out


def overlay_masks(img: Image.Image, masks: Iterable[np.ndarray], alpha: float = 0.5) -> Image.Image:
    """Blend one colour per boolean mask (same size as `img`) over it; later masks paint on top."""
    base = np.asarray(img.convert("RGB"), dtype=np.float32)
    out = base.copy()
    masks = list(masks)
    for mask, colour in zip(masks, palette(len(masks))):
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != base.shape[:2]:
            resized = Image.fromarray(mask.astype(np.uint8) * 255).resize(img.size, Image.Resampling.NEAREST)
            mask = np.asarray(resized) > 127
        out[mask] = base[mask] * (1 - alpha) + np.array(colour, dtype=np.float32) * alpha
    return Image.fromarray(out.clip(0, 255).astype(np.uint8), "RGB")


def depth_to_image(depth: np.ndarray, size: tuple[int, int] | None = None) -> Image.Image:
    """A depth (or inverse-depth) array as a grey image scaled to the full 0-255 range."""
    arr = np.nan_to_num(np.asarray(depth, dtype=np.float64).squeeze())
    lo, hi = float(arr.min()), float(arr.max())
    arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
    img = Image.fromarray(arr.astype(np.uint8), "L")
    if size and img.size != tuple(size):
        img = img.resize(size, Image.Resampling.BICUBIC)
    return img


# --- Canny ---------------------------------------------------------------------------------------

def _convolve_separable(arr: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """2-D convolution with a symmetric 1-D kernel along both axes, edges replicated."""
    r = len(kernel) // 2
    padded = np.pad(arr, r, mode="edge")
    rows = sum(k * padded[:, i:i + arr.shape[1]] for i, k in enumerate(kernel))
    return sum(k * rows[i:i + arr.shape[0], :] for i, k in enumerate(kernel))


def _shift(mask: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """mask moved by (dy, dx), zero filled."""
    out = np.zeros_like(mask)
    h, w = mask.shape
    out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        mask[max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


def _fill_runs(strong: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    """Along each row, mark every candidate run that touches a strong pixel as strong (fast hysteresis step)."""
    h, w = candidate.shape
    flat_c = np.concatenate([candidate, np.zeros((h, 1), bool)], axis=1).ravel()
    flat_s = np.concatenate([strong, np.zeros((h, 1), bool)], axis=1).ravel()
    run_id = np.cumsum(~flat_c)                 # pixels of one run share an id
    has_strong = np.zeros(run_id[-1] + 1, bool)
    has_strong[run_id[flat_s & flat_c]] = True
    return (flat_c & has_strong[run_id]).reshape(h, w + 1)[:, :w]


def canny(img: Image.Image, low: float = 100.0, high: float = 200.0, sigma: float = 1.0,
          max_iterations: int = 2000) -> Image.Image:
    """Canny edges of an image: white 1-pixel edges on black, same size, as an "L" image.

    Gaussian blur, Sobel gradients, non-maximum suppression along the gradient direction, and
    hysteresis (weak edges kept only where connected to strong ones). Thresholds are on the
    Sobel magnitude of 0-255 grey values, as in OpenCV's Canny.
    """
    grey = np.asarray(img.convert("L"), dtype=np.float32)
    if sigma > 0:
        r = max(1, int(round(3 * sigma)))
        x = np.arange(-r, r + 1, dtype=np.float32)
        kernel = np.exp(-(x ** 2) / (2 * sigma ** 2))
        grey = _convolve_separable(grey, kernel / kernel.sum())
    p = np.pad(grey, 1, mode="edge")
    gx = (p[:-2, 2:] + 2 * p[1:-1, 2:] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[1:-1, :-2] + p[2:, :-2])
    gy = (p[2:, :-2] + 2 * p[2:, 1:-1] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[:-2, 1:-1] + p[:-2, 2:])
    mag = np.hypot(gx, gy)

    # non-maximum suppression: quantise the direction to 0/45/90/135 degrees
    angle = (np.rad2deg(np.arctan2(gy, gx)) + 180.0) % 180.0
    sector = (((angle + 22.5) // 45.0) % 4).astype(np.int8)
    mp = np.pad(mag, 1)
    h, w = mag.shape
    neighbours = {0: ((0, 1), (0, -1)), 1: ((1, 1), (-1, -1)), 2: ((1, 0), (-1, 0)), 3: ((1, -1), (-1, 1))}
    keep = np.zeros_like(mag, dtype=bool)
    for s, ((ay, ax), (by, bx)) in neighbours.items():
        a = mp[1 + ay:1 + ay + h, 1 + ax:1 + ax + w]
        b = mp[1 + by:1 + by + h, 1 + bx:1 + bx + w]
        keep |= (sector == s) & (mag >= a) & (mag >= b)
    thin = np.where(keep, mag, 0.0)

    strong = thin >= high
    candidate = thin >= low
    for _ in range(max_iterations):  # hysteresis: grow strong edges through connected weak ones
        grown = _fill_runs(strong, candidate)
        grown = _fill_runs(grown.T, candidate.T).T
        dilated = grown.copy()
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                if dy or dx:
                    dilated |= _shift(grown, dy, dx)
        grown = dilated & candidate
        if np.array_equal(grown, strong):
            break
        strong = grown
    return Image.fromarray(strong.astype(np.uint8) * 255, "L")
