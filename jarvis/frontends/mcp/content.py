"""What crosses the MCP edge: the files an agent sends (URLs and data: URLs, never paths on its
machine), progress lines from the controller's events, and a finished run as MCP content (the
answer as text, generated images inline, audio and video as caller-bound download links).

Hosts render a tool's text as Markdown, so what a model wrote goes through jarvis.frontends.safe_text
as in the web app: the answer keeps its Markdown without raw HTML or image loads (a remote image is
a link with its address shown), a task's text and error are text, and the detail is a code block."""
from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from mcp import types
from pydantic import AnyUrl, BaseModel

from jarvis.errors import InputError
from jarvis.events import (
    AnswerDelta,
    Event,
    LLMProgress,
    ModelChosen,
    PlanReady,
    TaskFailed,
    TaskFinished,
    TaskPlanned,
    TaskProgress,
    TaskSkipped,
    TaskStarted,
)
from jarvis.files.media_types import MIME_SUFFIXES
from jarvis.frontends.http.files import MediaPart, parse_data_url
from jarvis.frontends.http.hugginggpt_routes import linkify
from jarvis.frontends.http.runs import Run
from jarvis.frontends.mcp.tools import AttemptInfo, TaskResult
from jarvis.frontends.safe_text import answer_markdown, clean, code_block, escape_text, json_text, model_text
from jarvis.pipeline.records import RunResult, TaskRecord, json_safe
from jarvis.shorten import shorten

MAX_INLINE_IMAGE = 4 * 2**20     # bytes: a larger generated image comes back as a link only

Content = types.TextContent | types.ImageContent | types.ResourceLink


def media_parts(files: list[str] | None) -> list[MediaPart]:
    """The files of a tool call as media parts to stage: http(s) URLs (fetched later through the
    guarded fetcher) and data: URLs (decoded now). Anything else is refused, naming the file."""
    parts = []
    for index, value in enumerate(files or []):
        where = f"files[{index}]"
        text = value.strip()
        head = text[:8].lower()
        if head.startswith("data:"):
            try:
                parts.append(parse_data_url(text, "any"))
            except InputError as exc:
                raise InputError(f"{where}: {exc}") from None
        elif head.startswith(("http://", "https:/")):
            parts.append(MediaPart("any", url=text))
        else:
            raise InputError(
                f"{where} ({shorten(text, 60)!r}) is neither an http(s) URL nor a data: URL. This server cannot "
                "read files on your machine: send the file's content as a data: URL (data:image/png;base64,...) "
                "or a public URL it can fetch")
    return parts


def progress_line(event: Event) -> str | None:
    """One progress line for an event worth telling an agent about (None: not worth a line)."""
    line = _progress_line(event)
    return None if line is None else clean(line)


def _progress_line(event: Event) -> str | None:
    if isinstance(event, LLMProgress) and event.note:  # the embedded LLM's download and load
        return f"llm: {event.note}"
    if isinstance(event, PlanReady):
        if not event.tasks:
            return "plan: no tasks, answering directly"
        return f"plan ready: {len(event.tasks)} task(s): " + ", ".join(f"{t.id} {t.task}" for t in event.tasks)
    if isinstance(event, TaskPlanned):
        return f"planned task {event.task.id}: {event.task.task}"
    if isinstance(event, ModelChosen):
        return f"task {event.task_id} ({event.task}): model {event.model}"
    if isinstance(event, TaskStarted):
        return f"task {event.task_id} ({event.task}) started on {event.model}"
    if isinstance(event, TaskProgress):
        return f"task {event.task_id}: {shorten(event.message, 200)}"
    if isinstance(event, TaskFinished):
        return f"task {event.task_id} ({event.record.task}) done in {event.record.seconds or 0.0:.1f} s"
    if isinstance(event, (TaskFailed, TaskSkipped)):
        what = "failed" if isinstance(event, TaskFailed) else "skipped"
        return f"task {event.task_id} ({event.record.task}) {what}: {shorten(event.record.error or '', 200)}"
    if isinstance(event, AnswerDelta):
        return "writing the answer"
    return None


def mime_type(path: Path, rtype: str) -> str:
    """The MIME type of a generated file of a resource type, from its suffix."""
    suffix = path.suffix.lower()
    return next((m for m, s in MIME_SUFFIXES.items() if s == suffix and m.startswith(rtype + "/")),
                "application/octet-stream")


def file_blocks(run: Run, records: list[TaskRecord], ttl: float) -> list[Content]:
    """Each generated file of the run: an image inline (and its link), audio and video as links."""
    blocks: list[Content] = []
    for record in records:
        for rtype, path in record.files():
            if not run.owns(path) or not path.is_file():
                continue
            url, mime = run.link(path), mime_type(path, rtype)
            if rtype == "image" and path.stat().st_size <= MAX_INLINE_IMAGE:
                blocks.append(types.ImageContent(type="image", data=base64.b64encode(path.read_bytes()).decode(),
                                                 mimeType=mime))
            blocks.append(types.ResourceLink(
                type="resource_link", name=path.name, uri=AnyUrl(url), mimeType=mime, size=path.stat().st_size,
                description=f"{rtype} generated by task {record.id} ({record.task}); download it with this "
                            f"connection's Authorization header within {ttl / 60:g} minutes"))
    return blocks


def workflow_text(records: list[TaskRecord]) -> str:
    """One line per task: type, model, where it ran, how it ended."""
    lines = ["Workflow:"]
    for r in records:
        where = f" on {r.executor}" if r.executor else ""
        ended = f"done in {r.seconds or 0.0:.1f} s" if r.status == "done" else \
            f"{r.status}: {escape_text(shorten(r.error or '', 200))}"
        lines.append(f"- task {r.id} {r.task} with {escape_text(r.model or 'no model')}{where}: {ended}")
    return "\n".join(lines)


def answer_content(run: Run, result: RunResult, ttl: float) -> list[Content]:
    """The jarvis tool's result: the answer (generated files named in it become their links), the
    workflow when tasks ran, then the files."""
    links = [{"name": f["name"], "url": f["url"]} for f in run.files(result.tasks)]
    answer = answer_markdown(linkify(result.answer, links)).strip()
    blocks: list[Content] = [types.TextContent(type="text", text=answer or "(no answer)")]
    if result.tasks:
        blocks.append(types.TextContent(type="text", text=workflow_text(result.tasks)))
    return blocks + file_blocks(run, result.tasks, ttl)


def data_content(result: BaseModel) -> tuple[list[Content], dict[str, Any]]:
    """A tool's data as structured content (the tool's outputSchema is its model's) and as its JSON
    text, for clients that ignore structured content. Hosts render the text as Markdown, so `<` and
    `](`, which stand only inside the document's strings (a model card's description), go as \\u
    escapes: the same JSON, but no HTML, link or image load."""
    data = result.model_dump(mode="json")
    document = json_text(json.dumps(data, ensure_ascii=False)).replace("<", "\\u003c").replace("](", "]\\u0028")
    return [types.TextContent(type="text", text=document)], data


def task_content(run: Run, result: RunResult, ttl: float) -> tuple[list[Content], dict[str, Any]]:
    """run_task's result: the text output (or the error), the detail as JSON, the files; and the same
    as structured content (tools.TaskResult)."""
    record = result.tasks[0]
    public = run.public_tasks([record])[0]
    structured = TaskResult(status=record.status, model=record.model, executor=record.executor,
                            outputs=public["outputs"], detail=json_safe(record.detail), error=record.error,
                            attempts=[AttemptInfo(**a.to_dict()) for a in record.attempts])
    said = record.outputs.get("text") or record.error
    blocks: list[Content] = [types.TextContent(type="text", text=model_text(said) if said
                                               else f"{record.task} {record.status}")]
    if record.detail:
        blocks.append(types.TextContent(type="text", text="Detail:" + code_block(
            json.dumps(json_safe(record.detail), ensure_ascii=False, indent=1))))
    return blocks + file_blocks(run, [record], ttl), structured.model_dump(mode="json")
