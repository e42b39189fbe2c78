"""HuggingGPT's server-mode routes with its request body and response shapes, so its web client
and scripts work unchanged: POST /hugginggpt -> {"message"}, /tasks -> the plan, /results ->
per-task results with the chosen model and reason (no final answer, as in HuggingGPT)."""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request

from jarvis.errors import ApiError
from jarvis.events import Done, Event, Failed, ModelChosen, PlanReady, TaskEnded, TaskFailed, TaskFinished, TaskSkipped
from jarvis.frontends.http.runs import Api, Run, failed_error
from jarvis.pipeline.records import json_safe


def endpoint_base(endpoint: str) -> str:
    """HuggingGPT's api_endpoint names the full route (…/v1/chat/completions); the SDK wants …/v1."""
    return re.sub(r"/(chat/)?completions/?$", "", endpoint.strip())


def linkify(answer: str, files: list[dict[str, Any]]) -> str:
    """Generated file names in the answer become their download URLs (HuggingGPT's clients render
    media from the URLs in the message); files the answer does not name are listed after it."""
    if not files:
        return answer
    urls = {f["name"]: f["url"] for f in files}
    names = sorted(urls, key=len, reverse=True)
    pattern = re.compile(r"(?<![\w/.-])(?:/?(?:images|audios|videos)/)?(" + "|".join(map(re.escape, names))
                         + r")(?![\w.-])")
    seen: set[str] = set()

    def swap(m: re.Match[str]) -> str:
        seen.add(m.group(1))
        return urls[m.group(1)]
    text = pattern.sub(swap, answer)
    rest = [urls[n] for n in urls if n not in seen]
    return text + ("\n\n" + "\n".join(rest) if rest else "")


class _AllTasksEnded:
    """Stops a run once every planned task has finished, failed or been skipped (before the answer)."""

    def __init__(self) -> None:
        self.planned: int | None = None
        self.ended: set[int] = set()

    def __call__(self, event: Event) -> bool:
        if isinstance(event, PlanReady):
            self.planned = len(event.tasks)
        elif isinstance(event, TaskEnded):
            self.ended.add(event.task_id)
        return self.planned is not None and 0 < self.planned <= len(self.ended)


def router(api: Api) -> APIRouter:
    r = APIRouter()

    async def start(request: Request, until: Callable[[Event], bool] | None = None) -> Run:
        owner, body, text, parts, history = await api.chat_request(request)
        api_type = str(body.get("api_type") or "openai").lower()
        if api_type not in ("openai", "local"):
            raise ApiError(400, f"api_type {api_type!r} is not supported here: Jarvis speaks to OpenAI-compatible "
                                "endpoints (api_type openai)")
        fields = {k: body.get(k) for k in ("api_key", "api_endpoint", "model")}
        for k, v in fields.items():
            if v is not None and not isinstance(v, str):
                raise ApiError(400, f'"{k}" must be a string')
        cfg = await api.config_for(request, api_key=fields["api_key"] or "",
                                   base_url=endpoint_base(fields["api_endpoint"] or ""), model=fields["model"] or "")
        return await api.start(request, cfg, owner, text, parts, history, until)

    async def collect(run: Run) -> tuple[list[dict[str, Any]] | None, dict[int, ModelChosen], dict[int, TaskEnded], str]:
        """The run's plan (HuggingGPT's format), choices and task ends by task id, and its answer."""
        plan: list[dict[str, Any]] | None = None
        chosen: dict[int, ModelChosen] = {}
        ended: dict[int, TaskEnded] = {}
        answer = ""
        async for event in run.events():
            if isinstance(event, Failed):
                raise failed_error(event)
            if isinstance(event, PlanReady):
                plan = [t.to_dict() for t in event.tasks]
            elif isinstance(event, ModelChosen):
                chosen[event.task_id] = event
            elif isinstance(event, TaskEnded):
                ended[event.task_id] = event
            elif isinstance(event, Done):
                answer = event.result.answer
        return plan, chosen, ended, answer

    @r.post("/hugginggpt")
    async def hugginggpt(request: Request) -> dict[str, Any]:
        run = await start(request)
        try:
            result = await run.result()
            return {"message": linkify(result.answer, run.files(result.tasks))}
        finally:
            run.close()

    @r.post("/tasks")
    async def tasks(request: Request) -> list[dict[str, Any]] | dict[str, Any]:
        run = await start(request, until=lambda e: isinstance(e, PlanReady) and bool(e.tasks))
        try:
            plan, _, _, answer = await run.while_connected(collect(run))
        finally:
            run.close()
        if plan:
            return plan
        return {"message": answer}   # no tasks: HuggingGPT chats instead

    @r.post("/results")
    async def results(request: Request) -> dict[str, Any]:
        run = await start(request, until=_AllTasksEnded())
        try:
            plan, chosen, ended, answer = await run.while_connected(collect(run))
            if not plan:
                return {"message": answer}
            return _results(run, plan, chosen, ended)
        finally:
            run.close()

    return r


def _results(run: Run, plan: list[dict[str, Any]], chosen: dict[int, ModelChosen],
             ended: dict[int, TaskEnded]) -> dict[str, Any]:
    """HuggingGPT's /results shape: {task id: {"task", "inference result", "choose model result"}}."""
    out: dict[str, Any] = {}
    for task in plan:
        tid = task["id"]
        choice = chosen.get(tid)
        event = ended.get(tid)
        model = choice.model if choice else None
        inference: dict[str, Any] = {}
        if isinstance(event, TaskFinished):
            rec = event.record
            model = next((a.model for a in rec.attempts if a.ok), model)
            for rtype, value in rec.outputs.items():
                if rtype == "text":
                    inference["generated text"] = value
                elif run.owns(value):
                    inference[f"generated {rtype}"] = run.link(value)
            if rec.detail is not None:
                inference["predicted"] = json_safe(rec.detail)
        elif isinstance(event, (TaskFailed, TaskSkipped)):
            inference = {"error": event.record.error}
        else:
            inference = {"error": "the task did not run (the request was stopped)"}
        out[str(tid)] = {"task": task, "inference result": inference,
                         "choose model result": {"id": model, "reason": choice.reason} if model and choice else ""}
    return out
