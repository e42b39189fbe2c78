"""HuggingGPT's server-mode routes with its request body and response shapes, so its web client
and scripts work unchanged: POST /hugginggpt -> {"message"}, /tasks -> the plan, /results ->
per-task results with the chosen model and reason (no final answer, as in HuggingGPT)."""
from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request

from jarvis.events import Done, Event, Failed, ModelChosen, PlanReady, TaskFailed, TaskFinished, TaskSkipped
from jarvis.frontends.http.auth import ApiError

if TYPE_CHECKING:
    from jarvis.frontends.http.app import Api, Run

_TERMINAL = (TaskFinished, TaskFailed, TaskSkipped)


def endpoint_base(endpoint: str) -> str:
    """HuggingGPT's api_endpoint names the full route (…/v1/chat/completions); the SDK wants …/v1."""
    return re.sub(r"/(chat/)?completions/?$", "", endpoint.strip())


def linkify(answer: str, files: list[dict]) -> str:
    """Generated file names in the answer become their download URLs (HuggingGPT's clients render
    media from the URLs in the message); files the answer does not name are listed after it."""
    if not files:
        return answer
    urls = {f["name"]: f["url"] for f in files}
    names = sorted(urls, key=len, reverse=True)
    pattern = re.compile(r"(?<![\w/.-])(?:/?(?:images|audios|videos)/)?(" + "|".join(map(re.escape, names))
                         + r")(?![\w.-])")
    seen: set[str] = set()

    def swap(m: re.Match) -> str:
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
        elif isinstance(event, _TERMINAL):
            self.ended.add(event.task_id)
        return bool(self.planned) and len(self.ended) >= self.planned


def router(api: Api) -> APIRouter:
    r = APIRouter()

    async def start(request: Request, until=None) -> Run:
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

    async def collect(run: Run) -> tuple[list[dict] | None, dict, dict, dict | None]:
        plan, chosen, ended, result = None, {}, {}, None
        async for event in run.events():
            if isinstance(event, Failed):
                from jarvis.frontends.http.app import failed_error
                raise failed_error(event)
            if isinstance(event, PlanReady):
                plan = event.tasks
            elif isinstance(event, ModelChosen):
                chosen[event.task_id] = event
            elif isinstance(event, _TERMINAL):
                ended[event.task_id] = event
            elif isinstance(event, Done):
                result = event.result
        return plan, chosen, ended, result

    @r.post("/hugginggpt")
    async def hugginggpt(request: Request):
        run = await start(request)
        try:
            result = await run.result()
            return {"message": linkify(result["answer"], run.files(result["tasks"]))}
        finally:
            run.close()

    @r.post("/tasks")
    async def tasks(request: Request):
        run = await start(request, until=lambda e: isinstance(e, PlanReady) and bool(e.tasks))
        try:
            plan, _, _, result = await collect(run)
        finally:
            run.close()
        if plan:
            return plan
        return {"message": (result or {}).get("answer", "")}   # no tasks: HuggingGPT chats instead

    @r.post("/results")
    async def results(request: Request):
        run = await start(request, until=_AllTasksEnded())
        try:
            plan, chosen, ended, result = await collect(run)
            if not plan:
                return {"message": (result or {}).get("answer", "")}
            return _results(run, plan, chosen, ended)
        finally:
            run.close()

    return r


def _results(run: Run, plan: list[dict], chosen: dict, ended: dict) -> dict:
    """HuggingGPT's /results shape: {task id: {"task", "inference result", "choose model result"}}."""
    out = {}
    for task in plan:
        tid = task["id"]
        choice = chosen.get(tid)
        event = ended.get(tid)
        model = choice.model if choice else None
        if isinstance(event, TaskFinished):
            model = next((a.get("model") for a in event.attempts if a.get("ok")), model)
            inference = {}
            for rtype, value in event.outputs.items():
                if rtype == "text":
                    inference["generated text"] = value
                elif run.owns(value):
                    inference[f"generated {rtype}"] = run.link(value)
            if event.detail is not None:
                inference["predicted"] = json.loads(json.dumps(event.detail, default=str))
        elif isinstance(event, TaskFailed):
            inference = {"error": event.error}
        elif isinstance(event, TaskSkipped):
            inference = {"error": event.reason}
        else:
            inference = {"error": "the task did not run (the request was stopped)"}
        out[str(tid)] = {"task": task, "inference result": inference,
                         "choose model result": {"id": model, "reason": choice.reason} if model and choice else ""}
    return out
