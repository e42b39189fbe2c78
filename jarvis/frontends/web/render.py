"""Maps the controller's events to chat messages (Gradio's messages format): the plan, the model and
result of each task as collapsible steps with status and duration, the streamed answer, then every
produced image, audio and video inline. Pure data in, dicts out: no Gradio import here."""
from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from jarvis.events import (
    AnswerDelta,
    Done,
    Event,
    Failed,
    ModelChosen,
    PlanReady,
    TaskFailed,
    TaskFinished,
    TaskProgress,
    TaskSkipped,
    TaskStarted,
)
from jarvis.files.media_types import media_type
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
        return f"*{_short(text, _VALUE_CHARS)}*"
    if media_type(text):
        return f"`{Path(text).name}`"
    return f"“{_short(text, _VALUE_CHARS)}”"


def plan_markdown(tasks: list[Task], repairs: list[str]) -> str:
    """The plan as a readable numbered list: task type, its inputs, what it waits for."""
    if not tasks:
        lines = ["No model is needed for this request: answering directly."]
    else:
        lines = []
        for t in tasks:
            parts = [f"{rtype} " + ", ".join(_value(v) for v in values) for rtype, values in t.args.items()]
            deps = [d for d in t.dep if d != -1]
            line = f"{t.id}. **{t.task}** on " + ("; ".join(parts) or "no input")
            if deps:
                line += f" (after task{'s' if len(deps) > 1 else ''} {', '.join(map(str, deps))})"
            if t.error:
                line += f"  \n   ⚠️ {t.error}"
            lines.append(line)
    if repairs:
        lines.append("")
        lines.append("_Fixed in the planner's answer: " + "; ".join(repairs) + "_")
    return "\n".join(lines)


def media_message(path: str | Path, role: str = "assistant") -> dict[str, Any]:
    """A chat message holding one file; images, audio and video render inline and play."""
    p = Path(path)
    return {"role": role, "content": {"path": str(p), "alt_text": p.name}}


def user_messages(text: str, files: list[str]) -> list[dict[str, Any]]:
    """The user's turn: the text, then each attached file shown as media."""
    out = []
    if text.strip():
        out.append({"role": "user", "content": text})
    out += [media_message(f, "user") for f in files]
    if not out:
        out.append({"role": "user", "content": "(empty message)"})
    return out


class TurnRenderer:
    """Builds the assistant's turn from the event stream; `messages` is the current view of it."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self._plan: dict[str, Any] = {"role": "assistant", "content": "Reading the request and planning the tasks…",
                      "metadata": {"title": "🧭 Planning", "status": "pending", "id": "plan"}}
        self._steps: dict[int, dict[str, Any]] = {}
        self._order: list[int] = []
        self._answer: dict[str, Any] | None = None
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
        return out + self._media + self._tail

    def note(self, text: str) -> None:
        """A pending note shown before the plan (e.g. waiting for the local model worker)."""
        self._plan["content"] = text

    # -- events -----------------------------------------------------------
    def _step(self, task_id: int, task: str) -> dict[str, Any]:
        if task_id not in self._steps:
            self._steps[task_id] = {"role": "assistant", "content": "",
                                    "metadata": {"title": f"⚙️ Task {task_id}: {task}", "status": "pending",
                                                 "id": f"task-{task_id}"}}
            self._order.append(task_id)
        return self._steps[task_id]

    @staticmethod
    def _add(step: dict[str, Any], text: str) -> None:
        step["content"] = (step["content"] + "\n\n" + text) if step["content"] else text

    def update(self, event: Event) -> None:
        if isinstance(event, PlanReady):
            n = len(event.tasks)
            title = f"🧭 Plan: {n} task{'s' if n != 1 else ''}" if n else "🧭 Plan: no tasks"
            self._plan = {"role": "assistant", "content": plan_markdown(event.tasks, event.repairs),
                          "metadata": {"title": title, "status": "done", "duration": round(event.seconds, 2),
                                       "id": "plan"}}
        elif isinstance(event, ModelChosen):
            step = self._step(event.task_id, event.task)
            others = [c for c in event.candidates if c != event.model][:4]
            text = f"**Model:** `{event.model}`" + (f" — {event.reason}" if event.reason else "")
            if others:
                text += "  \n_Other candidates:_ " + ", ".join(f"`{c}`" for c in others)
            self._add(step, text)
            step["metadata"]["title"] = f"⚙️ Task {event.task_id}: {event.task} · {event.model}"
        elif isinstance(event, TaskStarted):
            step = self._step(event.task_id, event.task)
            step["metadata"]["title"] = f"⚙️ Task {event.task_id}: {event.task} · {event.model}"
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
                    self._add(step, "**Result:** " + _short(value, _RESULT_CHARS))
                else:
                    self._add(step, f"**Produced {rtype}:** `{Path(value).name}`")
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
            self._add(step, f"**Failed:** {rec.error}")
        elif isinstance(event, TaskSkipped):
            step = self._step(event.record.id, event.record.task)
            step["metadata"].update(status="done")
            step["metadata"]["title"] = "⏭️ " + step["metadata"]["title"].removeprefix("⚙️ ") + " (skipped)"
            step["metadata"].pop("log", None)
            self._add(step, f"**Skipped:** {event.record.error}")
        elif isinstance(event, AnswerDelta):
            self.answer_text += event.text
            self._answer = {"role": "assistant", "content": self.answer_text}
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

    def fail(self, message: str) -> None:
        """The request as a whole could not be answered: say so as a chat message."""
        self.error = message
        self._finish_pending()
        if self._plan["metadata"].get("status") == "pending":
            self._plan["metadata"].update(status="done", title="🧭 Planning (not finished)")
            self._plan["content"] = "The request stopped before a plan was made."
        self._tail = [{"role": "assistant", "content": f"⚠️ **Could not answer:** {explain(message)}"}]

    def _finish_pending(self) -> None:
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
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".") + hint
