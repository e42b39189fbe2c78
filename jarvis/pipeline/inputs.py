"""A task's planned args turned into the values its runner takes: `<GENERATED>-K` becomes task K's
actual output (inside a text too), a file name becomes a checked path of the session's store, and
a text file of the session is read as text."""
from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from jarvis.errors import ResourceError, TaskError
from jarvis.files.store import ResourceStore
from jarvis.pipeline.plan import REF, Ref, Task
from jarvis.runners.base import TaskInputs, TaskOutputs

TEXT_FILE_SUFFIXES = {".txt", ".csv", ".tsv", ".md", ".json"}
MAX_TEXT_FILE = 1_000_000

MediaCheck = Callable[[Path, str], None]   # (path, resource type) -> raises ResourceError when unusable


def _text_value(value: str, results: Mapping[int, TaskOutputs], store: ResourceStore) -> str:
    """A text argument: inline <GENERATED>-K replaced by K's text; a text file of the session read."""
    def sub(match: re.Match[str]) -> str:
        out = results.get(int(match.group(1)))
        if out is None or out.text is None:
            raise TaskError(f"task {match.group(1)} produced no text to use here")
        return out.text
    text = REF.sub(sub, value)
    if Path(text).suffix.lower() in TEXT_FILE_SUFFIXES and len(text) < 300 and "\n" not in text:
        try:
            path = store.resolve(text)
        except ResourceError:
            return text
        return path.read_text(encoding="utf-8", errors="replace")[:MAX_TEXT_FILE]
    return text


def _output(out: TaskOutputs | None, rtype: str) -> str | Path | None:
    if out is None:
        return None
    value: str | Path | None = {"text": out.text, "image": out.image, "audio": out.audio, "video": out.video}[rtype]
    return value


def resolve_inputs(task: Task, results: Mapping[int, TaskOutputs], store: ResourceStore,
                   check: MediaCheck | None = None, *, progress: Callable[[str], None] | None = None,
                   cancel: threading.Event | None = None) -> TaskInputs:
    """The task's args with references and file names turned into values the runner takes. A URL
    is fetched into the store, telling `progress` how far it has come; `cancel` (the task's stop) ends it."""
    inputs = TaskInputs()
    for rtype, values in task.args.items():
        if rtype not in ("text", "image", "audio", "video"):
            continue
        for v in values:
            if isinstance(v, Ref):
                value = _output(results.get(v.task_id), rtype)
                if value is None:
                    raise TaskError(f"task {v.task_id} produced no {rtype} for this task")
                if rtype == "text":
                    inputs.text.append(str(value))
                else:
                    _media(inputs, rtype).append(Path(value))
            elif rtype == "text":
                inputs.text.append(_text_value(str(v), results, store))
            else:
                try:
                    path = store.resolve(str(v), progress=progress, cancel=cancel)
                    if check is not None:
                        check(path, rtype)
                except ResourceError as exc:
                    raise TaskError(str(exc)) from None
                _media(inputs, rtype).append(path)
    return inputs


def _media(inputs: TaskInputs, rtype: str) -> list[Path]:
    return {"image": inputs.image, "audio": inputs.audio, "video": inputs.video}[rtype]
