"""An executor whose tasks take a fixed time and return placeholder outputs of the right types,
so benchmarks measure Jarvis's own overhead (prompts, calls, scheduling), not model speed."""
from __future__ import annotations

import time

from PIL import Image

from jarvis.runners.base import RunContext, TaskInputs, TaskOutputs
from jarvis.runners.registry import TASK_TYPES


class FixedExecutor:
    """The Executor contract with a sleep for work: every model is ready, nothing batches."""
    name = "local"

    def __init__(self, seconds: float = 0.0):
        self.seconds = seconds

    def can_run(self, task: str) -> bool:
        return task in TASK_TYPES

    def ready(self, task: str, model_id: str) -> bool:
        return True

    def batches(self, task: str) -> bool:
        return False

    def run(self, task: str, model_id: str, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        time.sleep(self.seconds)
        out = TaskOutputs(detail={"fixed": True})
        for rtype in TASK_TYPES[task].outputs:
            if rtype == "text":
                out.text = f"{task} result"
            elif rtype == "image":
                path = ctx.new_file("image", ".png")
                Image.new("RGB", (8, 8)).save(path)
                out.image = path
            else:
                path = ctx.new_file(rtype, ".wav" if rtype == "audio" else ".mp4")
                path.write_bytes(b"placeholder")
                setattr(out, rtype, path)
        return out

    def run_batch(self, task: str, model_id: str, batch: list[TaskInputs], ctx: RunContext) -> list[TaskOutputs]:
        return [self.run(task, model_id, inputs, ctx) for inputs in batch]

    def close(self) -> None:
        """Nothing to release."""
