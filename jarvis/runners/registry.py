"""Every task type Jarvis knows, declared once, in one table: TASK_TYPES.

Everything about task types derives from it: the planner prompt's task list and plan validation
(names, inputs, outputs), dispatch (can it run here or remotely, does it need a model), the remote call
(each task's adapter in jarvis.runners.remote.adapters) and the catalog's eligibility rules (which
models its local runner loads, whose models it borrows). Adding a task type means one entry here plus
its runner; tests/test_registry.py fails when anything disagrees with this table.

Inputs and outputs are resource types: "text", "image", "audio", "video". A task may take two inputs
of one type (question answering: question then context); the plan carries them in order as a list
under that type: {"text": [QUESTION, CONTEXT]}.

Local runners are named "module:Class" under jarvis.runners.local and imported at the first local
task of their type, so importing this table loads neither torch nor transformers.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache
from typing import Literal

from jarvis.errors import TaskError
from jarvis.runners.base import Runner
from jarvis.runners.remote import adapters as remote
from jarvis.runners.remote.adapters import Adapter

RESOURCE_TYPES = ("text", "image", "audio", "video")
RUNNER_PACKAGE = "jarvis.runners.local"


@dataclass(frozen=True)
class LocalModels:
    """Which Hub models a task's local runner loads, by their architecture facts (jarvis.catalog.facts),
    never by their names."""
    library: Literal["transformers", "diffusers", "skops"] = "transformers"
    # transformers: config model_types the runner handles (empty = any), and the architectures among
    # them it needs (empty = any)
    model_types: frozenset[str] = frozenset()
    architectures: frozenset[str] = frozenset()
    # diffusers: the classes the runner builds (model_index.json "_class_name", or config.json's for
    # one model), and the text width a ControlNet must condition on (768: Stable Diffusion 1.x)
    pipeline_classes: frozenset[str] = frozenset()
    cross_attention_dim: int | None = None


TRANSFORMERS = LocalModels()


@dataclass(frozen=True)
class TaskType:
    """One task type: what it takes and gives, and where and how it runs."""
    name: str
    inputs: tuple[str, ...]                 # resource types, in order (repeats allowed)
    outputs: tuple[str, ...]                # resource types it produces
    description: str
    runner: str | None                      # "module:Class" under jarvis.runners.local; None = remote only
    adapter: Adapter | None                 # the remote call; None = Inference Providers do not serve it
    vlm_adapter: Adapter | None = None      # the task asked of a vision-language model instead
    input_names: tuple[str, ...] = ()       # what each input means, for the prompt and errors
    aliases: tuple[str, ...] = ()
    needs_model: bool = True                # False: built in (canny-control), no model to choose
    models_of: str = ""                     # its candidates are this task's models (depth-control)
    local_models: LocalModels = TRANSFORMERS

    @property
    def local(self) -> bool:
        """A local runner ships for it."""
        return self.runner is not None

    @property
    def remote(self) -> bool:
        """Inference Providers can serve it."""
        return self.adapter is not None

    @property
    def vlm(self) -> bool:
        """A vision-language model can answer it when no provider serves the chosen model."""
        return self.vlm_adapter is not None

    def count(self, rtype: str) -> int:
        """How many inputs of a resource type it takes."""
        return sum(1 for t in self.inputs if t == rtype)


def _diffusers(*classes: str) -> LocalModels:
    return LocalModels("diffusers", pipeline_classes=frozenset(classes))


def _transformers(*model_types: str, architectures: frozenset[str] = frozenset()) -> LocalModels:
    return LocalModels(model_types=frozenset(model_types), architectures=architectures)


# vision-language models the image+text runners ask through their chat template (vision_language.py's chat route)
VLM_MODEL_TYPES = ("idefics3", "smolvlm", "qwen2_vl", "qwen2_5_vl")
_CONTROLNET = LocalModels("diffusers", pipeline_classes=frozenset({"ControlNetModel"}), cross_attention_dim=768)
_TEXT, _IMAGE, _AUDIO = ("text",), ("image",), ("audio",)

TASK_TYPES: dict[str, TaskType] = {t.name: t for t in [
    # text
    TaskType("token-classification", _TEXT, _TEXT, "label each word: named entities, parts of speech",
             "text:TokenClassificationRunner", remote.token_classification, aliases=("ner",)),
    TaskType("text-classification", _TEXT, _TEXT, "label a whole text: sentiment, topic",
             "text:TextClassificationRunner", remote.text_classification, aliases=("sentiment-analysis",)),
    TaskType("summarization", _TEXT, _TEXT, "shorten a text keeping its meaning",
             "text_seq2seq:SummarizationRunner", remote.summarization),
    TaskType("translation", _TEXT, _TEXT, "translate a text into another language",
             "text_seq2seq:TranslationRunner", remote.translation),
    TaskType("question-answering", ("text", "text"), _TEXT, "answer a question from a context text",
             "text_encoders:QuestionAnsweringRunner", remote.question_answering,
             input_names=("question", "context")),
    TaskType("conversational", _TEXT, _TEXT, "reply to a message as a chat assistant",
             "text_causal:ConversationalRunner", remote.conversational),
    TaskType("text-generation", _TEXT, _TEXT, "continue or write text from a prompt",
             "text_causal:TextGenerationRunner", remote.text_generation),
    TaskType("text2text-generation", _TEXT, _TEXT, "rewrite text into text (paraphrase, correct, answer)",
             "text_seq2seq:Text2TextRunner", remote.text2text_generation),
    TaskType("sentence-similarity", ("text", "text"), _TEXT, "score how similar two sentences are",
             "text_encoders:SentenceSimilarityRunner", remote.sentence_similarity,
             input_names=("first sentence", "second sentence")),
    TaskType("tabular-classification", _TEXT, _TEXT, "classify the rows of a table (CSV text or file)",
             "text_tabular:TabularClassificationRunner", None, local_models=LocalModels("skops")),
    # vision
    TaskType("image-classification", _IMAGE, _TEXT, "label what an image shows",
             "vision:ImageClassificationRunner", remote.image_classification),
    TaskType("object-detection", _IMAGE, ("image", "text"), "find objects: boxes drawn on the image, and a list",
             "vision:ObjectDetectionRunner", remote.object_detection),
    TaskType("image-segmentation", _IMAGE, ("image", "text"), "split an image into labelled regions (colour overlay)",
             "vision:ImageSegmentationRunner", remote.image_segmentation),
    TaskType("depth-estimation", _IMAGE, _IMAGE, "estimate depth: a depth map image",
             "vision:DepthEstimationRunner", None),
    TaskType("image-to-text", _IMAGE, _TEXT, "describe (caption) an image",
             "vision_language:ImageToTextRunner", remote.image_to_text, remote.caption_by_vlm,
             aliases=("image-captioning",),
             local_models=_transformers("vision-encoder-decoder", "blip", *VLM_MODEL_TYPES)),
    TaskType("visual-question-answering", ("image", "text"), _TEXT, "answer a question about an image",
             "vision_language:VisualQARunner", remote.visual_question_answering, remote.answer_by_vlm,
             input_names=("image", "question"),
             local_models=_transformers("vilt", "blip", *VLM_MODEL_TYPES)),
    TaskType("document-question-answering", ("image", "text"), _TEXT, "answer a question about a document image",
             "vision_language:DocumentQARunner", remote.document_question_answering, remote.document_answer_by_vlm,
             input_names=("document image", "question"),
             local_models=_transformers("vision-encoder-decoder", *VLM_MODEL_TYPES)),
    TaskType("text-to-image", _TEXT, _IMAGE, "generate an image from a description",
             "generation_image:TextToImageRunner", remote.text_to_image,
             local_models=_diffusers("StableDiffusionPipeline", "StableDiffusionXLPipeline")),
    TaskType("image-to-image", _IMAGE, _IMAGE, "transform an image into a new image",
             "generation_image:ImageToImageRunner", remote.image_to_image,
             local_models=_diffusers("StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline",
                                     "StableDiffusionXLPipeline", "StableDiffusionXLImg2ImgPipeline")),
    TaskType("image-editing", ("image", "text"), _IMAGE, "edit an image following an instruction",
             "generation_image:ImageEditingRunner", remote.image_to_image, input_names=("image", "instruction"),
             local_models=_diffusers("StableDiffusionInstructPix2PixPipeline")),
    TaskType("canny-control", _IMAGE, _IMAGE, "extract the edges of an image (canny) as a control image",
             "vision:CannyControlRunner", None, needs_model=False),
    TaskType("depth-control", _IMAGE, _IMAGE, "extract a depth map of an image as a control image",
             "vision:DepthControlRunner", None, models_of="depth-estimation"),
    TaskType("canny-text-to-image", ("text", "image"), _IMAGE,
             "draw a new image from a description following an edge map",
             "generation_image:CannyTextToImageRunner", None, input_names=("description", "edge image"),
             local_models=_CONTROLNET),
    TaskType("depth-text-to-image", ("text", "image"), _IMAGE,
             "draw a new image from a description following a depth map",
             "generation_image:DepthTextToImageRunner", None, input_names=("description", "depth image"),
             local_models=_CONTROLNET),
    # audio and video
    TaskType("automatic-speech-recognition", _AUDIO, _TEXT, "transcribe speech to text",
             "audio:SpeechRecognitionRunner", remote.automatic_speech_recognition,
             aliases=("speech-recognition", "asr")),
    TaskType("text-to-speech", _TEXT, _AUDIO, "speak a text aloud",
             "audio:TextToSpeechRunner", remote.text_to_speech, aliases=("tts",),
             local_models=_transformers("vits", "dia")),
    TaskType("audio-classification", _AUDIO, _TEXT, "label a sound or speech clip",
             "audio:AudioClassificationRunner", remote.audio_classification),
    TaskType("audio-to-audio", _AUDIO, _AUDIO, "transform audio: enhance, separate, denoise",
             "audio:AudioToAudioRunner", remote.audio_to_audio,
             local_models=_transformers("speecht5", architectures=frozenset({"SpeechT5ForSpeechToSpeech"}))),
    TaskType("text-to-video", _TEXT, ("video",), "generate a short video from a description",
             "generation_video:TextToVideoRunner", remote.text_to_video,
             local_models=_diffusers("TextToVideoSDPipeline")),
]}

# HuggingGPT names ControlNet conditions we do not ship; known, so the message is precise.
UNSUPPORTED_TASKS = {
    f"{kind}-{suffix}": f"'{kind}' ControlNet conditioning is not supported; use canny-control/depth-control"
    for kind in ("openpose", "hed", "mlsd", "normal", "scribble", "seg")
    for suffix in ("control", "text-to-image")
}

_ALIASES = {a: t.name for t in TASK_TYPES.values() for a in t.aliases}


def canonical_task(name: str) -> str | None:
    """Map what an LLM wrote ("Image-to-Text", "image_to_text", "sentiment-analysis") to a known name."""
    key = str(name).strip().lower().replace("_", "-").replace(" ", "-")
    if key in TASK_TYPES:
        return key
    return _ALIASES.get(key)


def get(name: str) -> TaskType:
    """The task type of a name (or alias); a TaskError that lists the known task types otherwise."""
    canonical = canonical_task(name)
    if canonical is None:
        raise TaskError(f"unknown task type {str(name)[:60]!r}; the known task types are: {', '.join(TASK_TYPES)}")
    return TASK_TYPES[canonical]


def local_runner(name: str) -> Runner:
    """The local runner of a task type, its module imported at the first call; TaskError when none ships."""
    spec = get(name)
    if spec.runner is None:
        raise TaskError(f"no local runner for task '{spec.name}'; it runs only remotely")
    return _runner_instance(spec.runner)


def batches_locally(name: str) -> bool:
    """Whether the task type's local runner runs several inputs as one batch (False when none ships)."""
    try:
        return local_runner(name).batching
    except TaskError:
        return False


@cache
def _runner_instance(path: str) -> Runner:
    """One instance per runner class (runners are stateless), from its "module:Class" path."""
    module_name, _, class_name = path.partition(":")
    runner: Runner = getattr(importlib.import_module(f"{RUNNER_PACKAGE}.{module_name}"), class_name)()
    return runner
