"""Maps the controller's events to chat messages (Gradio's messages format): the plan, the model and
result of each task as collapsible steps with status and duration, the streamed answer, then every
produced image, audio and video inline. While the LLM writes, its step line says how far it is (tokens,
seconds), and the plan lists its tasks as they are written. Pure data in, dicts out: no Gradio here.

What a model wrote (plan values, reasons, results, errors, the answer) passes through
jarvis.frontends.safe_text, so it renders as text: the answer keeps its Markdown, but an image in it
shows only when it is one of the session's own files (then as media below the answer)."""
from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jarvis.events import (
    AnswerDelta,
    Done,
    Event,
    Failed,
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
from jarvis.files.media_types import media_type
from jarvis.frontends.safe_text import answer_markdown, code_span, escape_text, model_text
from jarvis.pipeline.plan import ArgValue, Task

_REF = re.compile(r"<\s*GENERATED\s*>\s*-\s*(\d+)", re.I)
_VALUE_CHARS = 120
_RESULT_CHARS = 1500


def _short(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def _value(v: ArgValue) -> str:
    text = str(v)
    text = _REF.sub(lambda m: f"the output of task {m.group(1)}", text)
    if text != str(v):
        return f"*{escape_text(_short(text, _VALUE_CHARS))}*"
    if media_type(text):
        return code_span(Path(text.replace("\\", "/")).name)
    return f"“{escape_text(_short(text, _VALUE_CHARS))}”"


def plan_markdown(tasks: list[Task], repairs: list[str]) -> str:
    """The plan as a readable numbered list: task type, its inputs, what it waits for."""
    if not tasks:
        lines = ["No model is needed for this request: answering directly."]
    else:
        lines = []
        for t in tasks:
            parts = [f"{rtype} " + ", ".join(_value(v) for v in values) for rtype, values in t.args.items()]
            deps = [d for d in t.dep if d != -1]
            line = f"{t.id}. **{escape_text(t.task)}** on " + ("; ".join(parts) or "no input")
            if deps:
                line += f" (after task{'s' if len(deps) > 1 else ''} {', '.join(map(str, deps))})"
            if t.error:
                line += f"  \n   ⚠️ {escape_text(t.error)}"
            lines.append(line)
    if repairs:
        lines.append("")
        lines.append("_Fixed in the planner's answer: " + "; ".join(escape_text(r) for r in repairs) + "_")
    return "\n".join(lines)


def media_message(path: str | Path, role: str = "assistant") -> dict[str, Any]:
    """A chat message holding one file; images, audio and video render inline and play."""
    p = Path(path)
    return {"role": role, "content": {"path": str(p), "alt_text": p.name}}


def user_messages(text: str, files: list[str]) -> list[dict[str, Any]]:
    """The user's turn: the text (pasted text may carry markup too: filtered like an answer), then
    each attached file shown as media."""
    out = []
    if text.strip():
        out.append({"role": "user", "content": answer_markdown(text)})
    out += [media_message(f, "user") for f in files]
    if not out:
        out.append({"role": "user", "content": "(empty message)"})
    return out


class TurnRenderer:
    """Builds the assistant's turn from the event stream; `messages` is the current view of it.
    `files(ref)` finds a session file an answer's image names (ResourceStore.find); without it no
    image in the answer shows."""

    def __init__(self, files: Callable[[str], Path | None] | None = None) -> None:
        self.started = time.perf_counter()
        self._files = files
        self._shown: list[dict[str, Any]] = []       # session files the answer's images name
        self._plan: dict[str, Any] = {"role": "assistant", "content": "Reading the request and planning the tasks…",
                      "metadata": {"title": "🧭 Planning", "status": "pending", "id": "plan"}}
        self._steps: dict[int, dict[str, Any]] = {}
        self._order: list[int] = []
        self._answer: dict[str, Any] | None = None
        self._planned: list[Task] = []     # tasks the plan's stream has written so far
        self._media: list[dict[str, Any]] = []
        self._tail: list[dict[str, Any]] = []
        self.answer_text = ""
        self.error: str | None = None

    # -- view -------------------------------------------------------------
    @property
    def messages(self) -> list[dict[str, Any]]:
        out = [self._plan] + [self._steps[i] for i in self._order]
        if self._answer is not None:
            out.append(self._answer)
        media, paths = list(self._media), {m["content"]["path"] for m in self._media}
        for m in self._shown:       # the answer's images of session files, each once, unless shown already
            if m["content"]["path"] not in paths:
                media.append(m)
                paths.add(m["content"]["path"])
        return out + media + self._tail

    def note(self, text: str) -> None:
        """A pending note shown before the plan (e.g. waiting for the local model worker)."""
        self._plan["content"] = text

    # -- events -----------------------------------------------------------
    def _step(self, task_id: int, task: str) -> dict[str, Any]:
        if task_id not in self._steps:
            self._steps[task_id] = {"role": "assistant", "content": "",
                                    "metadata": {"title": f"⚙️ Task {task_id}: {escape_text(task)}",
                                                 "status": "pending",
                                                 "id": f"task-{task_id}"}}
            self._order.append(task_id)
        return self._steps[task_id]

    @staticmethod
    def _add(step: dict[str, Any], text: str) -> None:
        step["content"] = (step["content"] + "\n\n" + text) if step["content"] else text

    def _llm(self, event: LLMProgress) -> None:
        """The step line of the LLM call that is writing."""
        line = event.note or f"{event.tokens} tokens, {event.seconds:.0f} s"
        if event.note and event.stage != "answer":   # the embedded LLM's download or load, before the plan
            self._plan["metadata"]["log"] = event.note
        elif event.stage == "answer":
            if self._answer is None or "metadata" in self._answer:   # the answer's text has not begun
                self._answer = {"role": "assistant", "content": "",
                                "metadata": {"title": "✍️ Writing the answer", "status": "pending", "log": line,
                                             "id": "answer"}}
        else:
            what = {"plan": "writing", "select": "choosing the models"}.get(event.stage, event.stage)
            self._plan["metadata"]["log"] = f"{what}: {line}"

    def update(self, event: Event) -> None:
        if isinstance(event, LLMProgress):
            self._llm(event)
        elif isinstance(event, TaskPlanned):
            self._planned.append(event.task)
            self._plan["content"] = plan_markdown(self._planned, []) + "\n\n_Still planning…_"
        elif isinstance(event, PlanReady):
            n = len(event.tasks)
            title = f"🧭 Plan: {n} task{'s' if n != 1 else ''}" if n else "🧭 Plan: no tasks"
            self._plan = {"role": "assistant", "content": plan_markdown(event.tasks, event.repairs),
                          "metadata": {"title": title, "status": "done", "duration": round(event.seconds, 2),
                                       "id": "plan"}}
        elif isinstance(event, ModelChosen):
            if self._plan["metadata"].get("status") == "done":    # the selection call is over
                self._plan["metadata"].pop("log", None)
            step = self._step(event.task_id, event.task)
            others = [c for c in event.candidates if c != event.model][:4]
            text = f"**Model:** {code_span(event.model)}" + (f" — {model_text(event.reason)}" if event.reason else "")
            if others:
                text += "  \n_Other candidates:_ " + ", ".join(code_span(c) for c in others)
            self._add(step, text)
            step["metadata"]["title"] = f"⚙️ Task {event.task_id}: {escape_text(event.task)} · {escape_text(event.model)}"
        elif isinstance(event, TaskStarted):
            step = self._step(event.task_id, event.task)
            step["metadata"]["title"] = f"⚙️ Task {event.task_id}: {escape_text(event.task)} · {escape_text(event.model)}"
            step["metadata"]["log"] = f"running ({event.executor})"
        elif isinstance(event, TaskProgress):
            progressing = self._steps.get(event.task_id)
            if progressing is not None:
                progressing["metadata"]["log"] = _short(event.message, 80)
        elif isinstance(event, TaskFinished):
            rec = event.record
            step = self._step(rec.id, rec.task)
            meta = step["metadata"]
            meta.update(status="done", duration=round(rec.seconds or 0.0, 2))
            meta["title"] = "✅ " + meta["title"].removeprefix("⚙️ ")
            meta.pop("log", None)
            for rtype, value in rec.outputs.items():
                if rtype == "text":
                    self._add(step, "**Result:** " + model_text(value, _RESULT_CHARS))
                else:
                    self._add(step, f"**Produced {rtype}:** {code_span(Path(value).name)}")
                    self._media.append(media_message(value))
        elif isinstance(event, TaskFailed):
            rec = event.record
            step = self._step(rec.id, rec.task)
            meta = step["metadata"]
            meta.update(status="done")
            if rec.seconds is not None:
                meta["duration"] = round(rec.seconds, 2)
            meta["title"] = "❌ " + meta["title"].removeprefix("⚙️ ") + " (failed)"
            meta.pop("log", None)
            self._add(step, f"**Failed:** {model_text(rec.error or '')}")
        elif isinstance(event, TaskSkipped):
            step = self._step(event.record.id, event.record.task)
            step["metadata"].update(status="done")
            step["metadata"]["title"] = "⏭️ " + step["metadata"]["title"].removeprefix("⚙️ ") + " (skipped)"
            step["metadata"].pop("log", None)
            self._add(step, f"**Skipped:** {model_text(event.record.error or '')}")
        elif isinstance(event, AnswerDelta):
            self.answer_text += event.text
            self._shown = []
            self._answer = {"role": "assistant", "content": answer_markdown(self.answer_text, self._own_image)}
        elif isinstance(event, Done):
            self._finish_pending()
            usage, timings = event.result.usage, event.result.timings
            text = (f"{usage.llm_calls} LLM calls, {usage.prompt_tokens} prompt + "
                    f"{usage.completion_tokens} completion tokens. Seconds: "
                    + ", ".join(f"{k} {v}" for k, v in timings.to_dict().items()))
            self._tail = [{"role": "assistant", "content": text,
                           "metadata": {"title": "📊 Usage", "status": "done", "duration": timings.total}}]
        elif isinstance(event, Failed):
            self.fail(event.message)

    def _own_image(self, alt: str, src: str) -> str | None:
        """An answer's image that is one of the session's files: named in the text, shown as media."""
        path = self._files(src) if self._files is not None else None
        if path is None:
            return None
        self._shown.append(media_message(path))
        return f"🖼️ {escape_text(alt) or 'image'} ({code_span(path.name)}, shown below)"

    def fail(self, message: str) -> None:
        """The request as a whole could not be answered: say so as a chat message."""
        self.error = message
        self._finish_pending()
        if self._plan["metadata"].get("status") == "pending":
            self._plan["metadata"].update(status="done", title="🧭 Planning (not finished)")
            self._plan["content"] = "The request stopped before a plan was made."
        self._tail = [{"role": "assistant", "content": f"⚠️ **Could not answer:** {explain(message)}"}]

    def _finish_pending(self) -> None:
        self._plan["metadata"].pop("log", None)
        if self._answer is not None and "metadata" in self._answer:   # the answer never began
            self._answer = None
        for step in self._steps.values():
            if step["metadata"].get("status") == "pending":
                step["metadata"]["status"] = "done"
                step["metadata"].pop("log", None)


def explain(message: str) -> str:
    """Adds what to do next to the most common failures."""
    low = message.lower()
    hint = ""
    if "401" in low or ("api key" in low and "reject" in low):
        hint = " Paste a valid key in **Keys** (or fix the Space secret), then send again."
    elif "cannot reach" in low or "connect" in low or "did not answer in time" in low:
        hint = " Check **Advanced settings → LLM base URL**, or try again in a moment."
    return escape_text(message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")) + hint
