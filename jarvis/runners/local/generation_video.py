"""Local text-to-video runner: TextToVideoSDPipeline (ModelScope, ali-vilab/text-to-video-ms-1.7b).

Frames become an H.264 MP4 (videoio) so browsers play the result inline.
"""
from __future__ import annotations

from typing import Any

from jarvis.errors import TaskError
from jarvis.runners.base import Device, RunContext, Runner, TaskInputs, TaskOutputs
from jarvis.runners.local import generation_support as common
from jarvis.runners.media.video_files import write_mp4


class TextToVideoRunner(Runner):
    """A prompt in, a short MP4 out; options video_frames / video_fps tune length and speed.

    It does not batch: videos are memory-heavy, so several prompts on one model take turns."""
    task = "text-to-video"

    def load(self, model_id: str, device: Device) -> dict[str, Any]:
        from diffusers import DiffusionPipeline, TextToVideoSDPipeline

        index = common.model_index(model_id)
        # ModelScope-style repos load with their own class; anything else through DiffusionPipeline
        cls = TextToVideoSDPipeline if index.get("_class_name", "TextToVideoSDPipeline") == "TextToVideoSDPipeline" \
            else DiffusionPipeline
        return {"pipe": common.load_pretrained(cls, model_id, device), "model_id": model_id}

    def run(self, loaded: Any, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        prompt = common.prompt_of(inputs)
        if not prompt:
            raise TaskError("text-to-video needs a description of the video to make")
        model_id = loaded["model_id"]
        frames_n = max(2, ctx.options.video_frames)
        fps = max(1, ctx.options.video_fps)
        n = common.steps(ctx)
        ctx.progress(f"making a {frames_n}-frame video with {model_id}, {n} steps")
        result = common.call_pipe(loaded["pipe"], model_id, ctx, prompt=prompt, num_frames=frames_n,
                                  num_inference_steps=n, generator=common.generator(ctx), output_type="np")
        frames = result.frames[0]  # (frames, height, width, 3) floats in 0..1
        path = write_mp4(list(frames), ctx.new_file("video", ".mp4"), fps=fps)
        detail = {"model": model_id, "prompt": prompt, "frames": len(frames), "fps": fps}
        return TaskOutputs(text=f"generated {path.name} ({len(frames)} frames at {fps} fps)", video=path,
                           detail=detail)
