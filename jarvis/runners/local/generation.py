"""Local runners of the generation task types (diffusers): images in generation_image, video in generation_video."""
from __future__ import annotations

from jarvis.runners.local.generation_image import RUNNERS as _IMAGE_RUNNERS
from jarvis.runners.local.generation_video import RUNNERS as _VIDEO_RUNNERS

RUNNERS = {**_IMAGE_RUNNERS, **_VIDEO_RUNNERS}
