"""What travels between the app and a Ray replica: a task's inputs and outputs as bytes, never as paths.

A replica may run on another machine, so a path on the app's disk means nothing there. The app packs
each input file's bytes (Ray carries large arguments through its object store); the replica writes them
into a scratch folder, runs the runner, and packs the files it produced the same way; the app writes
those into the session's file store (`ctx.new_file`). Plain dataclasses: Ray pickles them, no Ray import.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jarvis.runners.base import RunContext, TaskInputs, TaskOutputs
from jarvis.runners.options import RunOptions

MEDIA = ("image", "audio", "video")


@dataclass(frozen=True)
class FileBytes:
    """One file's content, with the name it had (its suffix tells runners and the store its type)."""
    name: str
    data: bytes


@dataclass(frozen=True)
class WireInputs:
    text: list[str] = field(default_factory=list)
    files: dict[str, list[FileBytes]] = field(default_factory=dict)    # resource type -> files, in order


@dataclass(frozen=True)
class WireRequest:
    """One call: a task type on a model, one or several inputs (a batch), the run's options."""
    task: str
    model_id: str
    batch: list[WireInputs]
    options: RunOptions


@dataclass(frozen=True)
class WireOutputs:
    text: str | None = None
    files: dict[str, FileBytes] = field(default_factory=dict)          # resource type -> the file produced
    detail: dict[str, Any] | None = None


@dataclass(frozen=True)
class WireResult:
    """A replica's answer: one output per input (or why it failed), where it ran, its progress lines."""
    outputs: list[WireOutputs]
    replica: str
    node: str
    progress: list[str] = field(default_factory=list)
    error: str | None = None            # why the run failed, for the user; then `outputs` is empty
    skipped: bool = False               # the model failed to load there a short while ago: not tried again
    failed_load: tuple[float, str] | None = None   # (seconds since, why) of that failed load, when `error` is one
                                                    # (or a skip for one): the app remembers it too


# -- the app's side ----------------------------------------------------------------------------
def pack_inputs(inputs: TaskInputs) -> WireInputs:
    files = {rtype: [FileBytes(Path(p).name, Path(p).read_bytes()) for p in getattr(inputs, rtype)]
             for rtype in MEDIA if getattr(inputs, rtype)}
    return WireInputs(list(inputs.text), files)


def unpack_outputs(wire: WireOutputs, ctx: RunContext, where: dict[str, str]) -> TaskOutputs:
    """The outputs, their files written into the session's store; `where` joins the detail."""
    out = TaskOutputs(text=wire.text, detail={**(wire.detail or {}), **where})
    for rtype, item in wire.files.items():
        name = Path(item.name)
        path = ctx.new_file(name.stem or rtype, name.suffix)
        path.write_bytes(item.data)
        setattr(out, rtype, path)
    return out


# -- the replica's side ------------------------------------------------------------------------
def unpack_inputs(wire: WireInputs, folder: Path) -> TaskInputs:
    """The inputs with their files written under `folder` (one subfolder each: names may repeat)."""
    inputs = TaskInputs(text=list(wire.text))
    for rtype, items in wire.files.items():
        paths = []
        for i, item in enumerate(items):
            sub = folder / f"{rtype}-{i}"
            sub.mkdir(parents=True, exist_ok=True)
            path = sub / (Path(item.name).name or rtype)
            path.write_bytes(item.data)
            paths.append(path)
        setattr(inputs, rtype, paths)
    return inputs


def pack_outputs(outputs: TaskOutputs) -> WireOutputs:
    files = {rtype: FileBytes(Path(p).name, Path(p).read_bytes())
             for rtype in MEDIA if (p := getattr(outputs, rtype)) is not None}
    return WireOutputs(outputs.text, files, outputs.detail)
