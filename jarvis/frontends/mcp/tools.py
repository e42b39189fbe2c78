"""The MCP tools as agents see them: a name, what the tool does, an argument model whose type hints
and field descriptions are the tool's input JSON Schema (and what validates a call's arguments), and
for the tools that return data, a result model: its schema is the tool's outputSchema and the
structured content of every result is one of its instances.

`jarvis` is the whole pipeline (plan, select, run, answer) for agents that want one call; the other
three serve hosts that plan themselves: which task types exist, which models can run one, and one
task on the model they chose. Status, stop and clear belong to the web app and are not tools.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from mcp import types
from pydantic import BaseModel, ConfigDict, Field

from jarvis.pipeline.records import TaskStatus

FILES_HELP = ("Files the request is about, each an http(s) URL this server can fetch (public addresses only) or a "
              "data: URL with the content inline (data:image/png;base64,...). Images, audio and video are read. "
              "A path on your machine cannot be read by this server: send its content as a data: URL.")


class _Arguments(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JarvisArguments(_Arguments):
    request: str = Field(min_length=1, description=(
        "What you want done, in plain words, e.g. 'describe this photo, then read the description aloud' or "
        "'generate an image of a red bicycle by a lake'. Name attached files by what they are."))
    files: list[str] | None = Field(default=None, description=FILES_HELP)


class NoArguments(_Arguments):
    pass


class ListModelsArguments(_Arguments):
    task: str = Field(description="A task type from list_task_types, e.g. 'image-to-text' or 'text-to-speech'.")


class RunTaskArguments(_Arguments):
    task: str = Field(description="A task type from list_task_types.")
    model: str = Field(description="A model id from list_models for this task type.")
    text: list[str] | None = Field(default=None, description=(
        "The task's text inputs in the order list_task_types gives them, e.g. [question, context] for "
        "question-answering, [question] for visual-question-answering."))
    files: list[str] | None = Field(default=None, description=FILES_HELP + " Give them in the order the "
                                                                           "task type lists its media inputs.")


class _Result(BaseModel):
    model_config = ConfigDict(extra="forbid")


Mode = Literal["local", "remote", "hybrid"]
MODE_HELP = "The server's inference mode: local (this machine), remote (Inference Providers, Spaces) or hybrid."


class TaskInput(_Result):
    type: str = Field(description="The resource type: text, image, audio or video.")
    meaning: str = Field(description="What this input is, e.g. 'question' or 'context'.")


class TaskTypeInfo(_Result):
    name: str = Field(description="The task type, as list_models and run_task take it.")
    description: str
    inputs: list[TaskInput] = Field(description="Its inputs in order: run_task takes its text and files so.")
    outputs: list[str] = Field(description="The resource types it produces.")
    needs_model: bool = Field(description="False for a built-in task, which runs without a model.")


class TaskTypes(_Result):
    mode: Mode = Field(description=MODE_HELP)
    task_types: list[TaskTypeInfo]


class ModelInfo(_Result):
    id: str = Field(description="The Hugging Face model id, as run_task takes it.")
    downloads: int | None
    likes: int | None
    runs: list[Literal["local", "remote", "space"]] = Field(description=(
        "Where it runs: this machine, Inference Providers or a Gradio Space."))
    description: str


class Models(_Result):
    task: str = Field(description="The task type, by its canonical name.")
    mode: Mode = Field(description=MODE_HELP)
    models: list[ModelInfo] = Field(description="The candidates, best ranked first.")


class AttemptInfo(_Result):
    executor: str
    model: str
    ok: bool
    seconds: float
    error: str | None = None
    batch: int | None = Field(default=None, description="How many inputs shared the call, when batched.")


class TaskResult(_Result):
    status: TaskStatus
    model: str | None
    executor: str | None = Field(description="Where it ran: local, remote or space.")
    outputs: dict[str, str] = Field(description=(
        "By resource type: the text, or a generated file's download link."))
    detail: dict[str, Any] | None = Field(description="The runner's structured result: labels, boxes, scores...")
    error: str | None = Field(description="Why it failed or was skipped.")
    attempts: list[AttemptInfo] = Field(description="Every try, in order (a retry or a fallback adds one).")


@dataclass(frozen=True)
class ToolSpec:
    name: str
    title: str
    description: str
    arguments: type[_Arguments]
    read_only: bool
    result: type[_Result] | None = None     # what its structured content is, when it returns data

    def tool(self) -> types.Tool:
        output = None if self.result is None else _schema(self.result)
        return types.Tool(name=self.name, title=self.title, description=self.description,
                          inputSchema=_schema(self.arguments), outputSchema=output,
                          annotations=types.ToolAnnotations(title=self.title, readOnlyHint=self.read_only,
                                                            openWorldHint=not self.read_only))


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    schema: dict[str, Any] = model.model_json_schema()
    schema.pop("title", None)
    return schema


def tool_specs(file_ttl: float) -> dict[str, ToolSpec]:
    """Every tool; `file_ttl` (seconds a generated file stays downloadable) goes into the descriptions."""
    minutes = f"{file_ttl / 60:g} minutes"
    links = (f"Generated images come back as image content; audio and video as links to download with the same "
             f"Authorization header as this connection, valid for {minutes}.")
    specs = [
        ToolSpec("jarvis", "Ask Jarvis", (
            "Answer a request with Hugging Face models (HuggingGPT): Jarvis plans it into tasks (captioning, "
            "visual questions, object detection, speech recognition and synthesis, translation, summarization, "
            "image generation and editing...), picks a model for each, runs them and answers in text. "
            f"{links} Progress is reported while it runs."), JarvisArguments, read_only=False),
        ToolSpec("list_task_types", "List task types", (
            "The task types this server can run (in its inference mode): each with its inputs in order (type "
            "and meaning), its outputs and what it does. Use with list_models and run_task to plan yourself."),
            NoArguments, read_only=True, result=TaskTypes),
        ToolSpec("list_models", "List models for a task type", (
            "The candidate models for one task type, best ranked first: id, downloads, likes, where it runs "
            "(this machine, Inference Providers or a Gradio Space) and a short description."),
            ListModelsArguments, read_only=True, result=Models),
        ToolSpec("run_task", "Run one task on a model", (
            "Run one task type on the model you chose (from list_models) with its inputs, and return its "
            f"result: the text output and the structured detail (labels, boxes, scores...). {links}"),
            RunTaskArguments, read_only=False, result=TaskResult),
    ]
    return {s.name: s for s in specs}
