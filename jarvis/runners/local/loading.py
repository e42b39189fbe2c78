"""Model loading helpers every local runner shares: the dtype for a device, a transformers pipeline
built with clear errors, and load failures turned into messages a user can act on.

torch and transformers are imported inside the functions, so importing this module stays cheap.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from jarvis.errors import TaskError
from jarvis.runners.base import Device, RunContext

# packages some models need that Jarvis does not install (DETR: timm; LayoutLM: pytesseract)
OPTIONAL_PACKAGES = ("timm", "pytesseract", "sentencepiece", "protobuf")


def torch_dtype(device: Device) -> Any:
    """float16 on a half-precision device (a GPU), float32 otherwise."""
    import torch
    return torch.float16 if device.half else torch.float32


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message (its type name when it has none), cut to `limit`."""
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:limit]


def load_error(model_id: str, task: str, exc: Exception) -> TaskError:
    """A load failure turned into a message a user can act on (naming a missing package if one is)."""
    text = first_line(exc)
    everything = str(exc).replace(model_id, "")
    missing = next((p for p in OPTIONAL_PACKAGES if re.search(rf"\b{p}\b", everything)), None)
    if missing is None and isinstance(exc, ImportError):
        missing = exc.name
    if missing:
        return TaskError(f"{model_id} needs the Python package {missing} to run locally: "
                         f"`pip install {missing}`, or pick another model ({text})")
    return TaskError(f"{model_id} cannot run {task} locally ({text}); pick another model or use remote mode")


def make_pipeline(task: str, model_id: str, device: Device) -> Any:
    """A transformers pipeline for `task` on `device`; load problems become TaskErrors."""
    try:
        from transformers import pipeline
        build: Callable[..., Any] = pipeline  # its overloads name each task literally; ours is a variable
        return build(task, model=model_id, device=device.name, dtype=torch_dtype(device))
    except OSError:
        raise  # the executor explains missing files / no network
    except (ValueError, KeyError, ImportError, RuntimeError, TypeError, AttributeError) as exc:
        raise load_error(model_id, task, exc) from exc


def cancel_criteria(ctx: RunContext) -> Any:
    """Stopping criteria for transformers' generate(): once the run is cancelled (timed out or stopped),
    the next token raises the run's TaskError, so a long generation does not run on."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class Cancelled(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            ctx.raise_if_cancelled()
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
    return StoppingCriteriaList([Cancelled()])
