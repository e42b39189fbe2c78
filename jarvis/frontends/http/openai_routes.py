"""OpenAI-compatible routes: Jarvis as the model "jarvis". GET /v1/models and POST
/v1/chat/completions, streamed (server-sent events, the steps shown before the answer) or not.

Clients render the content as Markdown, so what models wrote goes through
jarvis.frontends.safe_text: step lines show it as text, and the answer keeps its Markdown without
raw HTML or images that load from elsewhere (an image of the run's own files links here)."""
from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from jarvis.errors import ApiError
from jarvis.events import (
    AnswerDelta,
    Done,
    Event,
    Failed,
    LLMProgress,
    ModelChosen,
    PlanReady,
    TaskEnded,
    TaskFailed,
    TaskFinished,
    TaskPlanned,
    TaskProgress,
    TaskSkipped,
    TaskStarted,
)
from jarvis.frontends.http.runs import Api, Run, failed_error
from jarvis.frontends.safe_text import AnswerFilter, ImageHook, answer_markdown, escape_text
from jarvis.pipeline.records import RunResult

MODEL_ID = "jarvis"
STEP_MODES = ("think", "reasoning", "none")
PROGRESS_EVERY = 5.0    # seconds between two lines saying how far the LLM has written, per stage
_WRITING = {"plan": "writing the plan", "select": "choosing the models", "answer": "writing the answer"}
_CREATED = int(time.time())


def _model_card() -> dict[str, Any]:
    return {"id": MODEL_ID, "object": "model", "created": _CREATED, "owned_by": "jarvis"}


def usage_of(result: RunResult | None) -> dict[str, int]:
    """The run's token counts in OpenAI's usage shape."""
    prompt = result.usage.prompt_tokens if result else 0
    completion = result.usage.completion_tokens if result else 0
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def files_markdown(files: list[dict[str, Any]]) -> str:
    """The generated files as Markdown links (images inline), appended after the answer."""
    if not files:
        return ""
    lines = ["", "", "Generated files:"]
    for f in files:
        lines.append(f"- ![{f['name']}]({f['url']})" if f["type"] == "image" else f"- [{f['name']}]({f['url']})")
    return "\n".join(lines)


def _trim(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "…"


def step_line(event: Event, run: Run) -> str | None:
    """One event as a line a person can follow while the request runs (None: nothing to show)."""
    if isinstance(event, LLMProgress):
        if event.note:  # the embedded LLM's download and load
            return f"LLM: {escape_text(event.note)}\n"
        return f"LLM {_WRITING.get(event.stage, event.stage)}: {event.tokens} tokens, {event.seconds:.0f} s\n"
    if isinstance(event, TaskPlanned):
        return f"Task {event.task.id} planned: {escape_text(event.task.task)}\n"
    if isinstance(event, PlanReady):
        if not event.tasks:
            return None
        lines = [f"Plan: {len(event.tasks)} task(s)"]
        for t in event.tasks:
            after = [d for d in t.dep if d != -1]
            lines.append(f"- task {t.id}: {escape_text(t.task)}" + (f", after task {', '.join(map(str, after))}"
                                                                    if after else "")
                         + (f" (!! {escape_text(t.error)})" if t.error else ""))
        lines += [f"- repaired: {escape_text(r)}" for r in event.repairs]
        return "\n".join(lines) + "\n"
    if isinstance(event, ModelChosen):
        return (f"Task {event.task_id} ({escape_text(event.task)}): model {escape_text(event.model)}: "
                f"{escape_text(_trim(event.reason, 160))}\n")
    if isinstance(event, TaskStarted):
        return f"Task {event.task_id} started ({event.executor})\n"
    if isinstance(event, TaskProgress):
        return f"Task {event.task_id}: {escape_text(_trim(event.message))}\n"
    if isinstance(event, TaskFinished):
        rec = event.record
        outs = [escape_text(_trim(v)) if k == "text" else (run.link(v) if run.owns(v) else k) for k, v in rec.outputs.items()]
        return f"Task {rec.id} done in {rec.seconds or 0.0:.1f} s: {'; '.join(outs)}\n"
    if isinstance(event, TaskFailed):
        return f"Task {event.task_id} failed: {escape_text(_trim(event.record.error or '', 300))}\n"
    if isinstance(event, TaskSkipped):
        return f"Task {event.task_id} skipped: {escape_text(_trim(event.record.error or '', 300))}\n"
    return None


def _task_id(event: Event) -> int | None:
    """The task a step event is about; None for events about the whole run."""
    if isinstance(event, (ModelChosen, TaskStarted, TaskProgress, TaskEnded)):
        return event.task_id
    return event.task.id if isinstance(event, TaskPlanned) else None


def router(api: Api) -> APIRouter:
    r = APIRouter()

    @r.get("/v1/models")
    async def models(request: Request):
        api.owner(request)
        return {"object": "list", "data": [_model_card()]}

    @r.get("/v1/models/{model_id}")
    async def model(model_id: str, request: Request):
        api.owner(request)
        if model_id != MODEL_ID:
            raise ApiError(404, f"the model {model_id!r} does not exist here: use {MODEL_ID!r}", "model_not_found")
        return _model_card()

    @r.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        owner, body, text, parts, history = await api.chat_request(request)
        stream = body.get("stream", False)
        if not isinstance(stream, bool):
            raise ApiError(400, '"stream" must be true or false')
        options = body.get("stream_options") or {}
        include_usage = bool(options.get("include_usage")) if isinstance(options, dict) else False
        mode = request.headers.get("x-jarvis-steps", "think").strip().lower() or "think"
        if mode not in STEP_MODES:
            raise ApiError(400, f"X-Jarvis-Steps must be one of {', '.join(STEP_MODES)}, got {mode!r}")
        cfg = await api.config_for(request)
        run = await api.start(request, cfg, owner, text, parts, history)
        if not stream:
            try:
                return JSONResponse(_completion(run, await run.result()))
            finally:
                run.close()
        events = run.events()
        try:  # wait for the plan, so that early failures (bad key, LLM down) get a real HTTP status
            first = await run.while_connected(events.__anext__())
            if isinstance(first, Failed):
                raise failed_error(first)
        except StopAsyncIteration:
            run.close()
            raise ApiError(502, "the request ended without an answer", "upstream_error") from None
        except BaseException:
            run.close()
            raise
        return StreamingResponse(_sse(run, first, events, mode, include_usage), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return r


def own_images(run: Run) -> ImageHook:
    """An answer's image that is one of the run's files: shown from its download link."""
    def image(alt: str, src: str) -> str | None:
        path = run.session.store.find(src)
        if path is None or not run.owns(path):
            return None
        return f"![{escape_text(alt)}]({run.link(path)})"
    return image


def _completion(run: Run, result: RunResult) -> dict[str, Any]:
    files = run.files(result.tasks)
    content = answer_markdown(result.answer, own_images(run)) + files_markdown(files) + _timeout_note(run)
    return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": MODEL_ID, "system_fingerprint": None,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "logprobs": None, "finish_reason": "stop"}],
            "usage": usage_of(result), "jarvis": _extra(run, result, files)}


def _extra(run: Run, result: RunResult, files: list[dict[str, Any]]) -> dict[str, Any]:
    """Jarvis's own record of the request (plan, models, results, timings): an extra field that
    OpenAI clients ignore and programs may read."""
    return {"tasks": run.public_tasks(result.tasks), "files": files, "timings": result.timings.to_dict(),
            "llm_calls": result.usage.llm_calls, "plan_repairs": list(result.plan_repairs),
            "timed_out": run.timed_out}


def _timeout_note(run: Run) -> str:
    if not run.timed_out:
        return ""
    return f"\n\n(Stopped at this server's time limit of {run.api.request_timeout:g} s per request.)"


async def _sse(run: Run, first: Event, events: AsyncIterator[Event], mode: str,
               include_usage: bool) -> AsyncIterator[str]:
    cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

    def chunk(delta: dict, finish: str | None = None, **extra) -> str:
        body = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": MODEL_ID,
                "system_fingerprint": None,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}], **extra}
        return f"data: {json.dumps(body, ensure_ascii=False, default=str)}\n\n"

    async def all_events() -> AsyncIterator[Event]:
        yield first
        async for event in events:
            yield event

    def error(message: str, code: str) -> str:
        return f"data: {json.dumps({'error': {'message': message, 'type': 'server_error', 'code': code}})}\n\n"

    result: RunResult | None = None
    thinking = False
    answer = AnswerFilter(own_images(run))
    progress_shown: dict[str, float] = {}     # per LLM stage: the seconds of its last progress line
    try:
        yield chunk({"role": "assistant", "content": ""})
        async for event in all_events():
            if isinstance(event, Failed):
                yield error(event.message, "upstream_error")
                return
            if isinstance(event, Done):
                result = event.result
                continue
            if isinstance(event, AnswerDelta):
                if thinking:
                    thinking = False
                    yield chunk({"content": "</think>\n\n"})
                text = answer.feed(event.text)
                if text:
                    yield chunk({"content": text})
                continue
            if isinstance(event, LLMProgress):
                if event.seconds - progress_shown.get(event.stage, -PROGRESS_EVERY) < PROGRESS_EVERY:
                    continue
                progress_shown[event.stage] = event.seconds
            line = step_line(event, run) if mode != "none" else None
            if not line:
                continue
            info = {"event": type(event).__name__, "task_id": _task_id(event)}
            if mode == "reasoning":
                yield chunk({"reasoning_content": line}, jarvis=info)
            else:
                if not thinking:
                    thinking, line = True, "<think>\n" + line
                yield chunk({"content": line}, jarvis=info)
        if thinking:
            yield chunk({"content": "</think>\n\n"})
        if result is not None:
            files = run.files(result.tasks)
            tail = answer.close() + files_markdown(files) + _timeout_note(run)
            if tail:
                yield chunk({"content": tail})
            yield chunk({}, "stop", jarvis=_extra(run, result, files))
            if include_usage:
                usage = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": MODEL_ID,
                         "choices": [], "usage": usage_of(result)}
                yield f"data: {json.dumps(usage)}\n\n"
        yield "data: [DONE]\n\n"
    except ApiError as exc:
        yield error(exc.message, exc.code)
    finally:
        run.close()
