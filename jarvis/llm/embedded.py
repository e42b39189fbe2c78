"""The embedded LLM: a small open instruct model that runs inside Jarvis with transformers, for when
no LLM server is configured (no OpenAI key, no Hugging Face token, no base URL) or llm.backend is
"local".

Its weights live in the local executor's model cache: the same device choice and the same memory
budget as the task models, and one load shared with a `conversational` task on the same model (the
cache key of that runner). The first use downloads them from the Hub; the download's progress
(jarvis.execution.downloads, as for the task models) and the load show as the run's LLM progress
notes, in the web app's steps and on the CLI's stderr. Every call streams: `generate` runs in a thread and hands its text to
a TextIteratorStreamer. A call with an OutputSchema decodes under its grammar (jarvis.llm.constrained),
so a plan or a model choice is valid as generated.

Default model: Qwen/Qwen2.5-0.5B-Instruct (Apache-2.0, 0.49 B parameters: a 1 GB download, about
2 GB in float32 on a CPU). Of the small open instruct models considered (Qwen2.5-0.5B/1.5B-Instruct,
Qwen3-1.7B, SmolLM2-1.7B-Instruct, all Apache-2.0) it needs a third to a quarter of the others'
compute per token, which decides the wait on a 2-core CPU (a free Hugging Face Space), and leaves
most of the default 8 GB model budget to the task models (a 1.5 B model takes 6 GB of it in float32).
Qwen2.5 was trained for JSON output, and the grammar makes every plan valid whatever the model's size;
with more cores and memory, `JARVIS_LLM_MODEL=Qwen/Qwen2.5-1.5B-Instruct` plans better.
"""
from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jarvis.config import Config, LocalConfig
from jarvis.errors import LLMError, ModelSkippedError
from jarvis.execution.downloads import metered
from jarvis.execution.executor import Executor
from jarvis.execution.local import LOAD_LOCK, LocalExecutor, pick_device
from jarvis.execution.local_slots import SlotLimitedExecutor
from jarvis.execution.model_cache import ModelCache
from jarvis.execution.readiness import cached_bytes
from jarvis.llm.backend import NoteKind, OutputSchema, Usage
from jarvis.llm.constrained import ConstrainedDecoder, GrammarLogitsProcessor, tokenizer_for
from jarvis.runners.base import Device
from jarvis.runners.local.loading import first_line
from jarvis.runners.registry import local_runner

log = logging.getLogger(__name__)

DEFAULT_MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
RUNNER_TASK = "conversational"     # whose runner loads it (AutoModelForCausalLM + tokenizer) and keys the cache
DEFAULT_NEW_TOKENS = 1024
HOSTED_HINT = "or use a hosted LLM: set OPENAI_API_KEY, HF_TOKEN or OPENAI_BASE_URL"


def embedded_model(config: Config) -> str:
    """The model the embedded backend runs: llm.model (JARVIS_LLM_MODEL), a Hub id or a local folder."""
    return config.llm.model.strip() or DEFAULT_MODEL


def where_it_runs(config: Config) -> str:
    """Where the embedded LLM runs, without loading torch to find out."""
    device = config.local.device
    return "on this machine (its GPU if it has one, else its CPU)" if device == "auto" else f"on this machine ({device})"


@dataclass
class ModelHome:
    """Where loaded models live: the model cache and the device the local executor uses."""
    cache: ModelCache
    device: Callable[[], Device]


def model_home(executor: Executor, local: LocalConfig) -> ModelHome:
    """The local executor's cache and device, so the LLM counts against the same memory budget; an
    executor that keeps no models here (a fake, a remote one) gets a cache of its own."""
    inner = executor.inner if isinstance(executor, SlotLimitedExecutor) else executor
    if isinstance(inner, LocalExecutor):
        local_executor = inner
        return ModelHome(local_executor.cache, lambda: local_executor.device)
    chosen: list[Device] = []

    def device() -> Device:
        if not chosen:
            chosen.append(pick_device(local.device))
        return chosen[0]
    return ModelHome(ModelCache(int(local.memory_budget_gb * 1024 ** 3), threads=local.threads), device)


class _Watch:
    """A stopping criterion: stops generation when `stop` is set (the caller stopped reading) and
    counts the tokens generated so far."""

    def __init__(self, prompt_tokens: int):
        self.prompt_tokens = prompt_tokens
        self.generated = 0
        self.stop = threading.Event()

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch
        self.generated = int(input_ids.shape[1]) - self.prompt_tokens
        return torch.full((input_ids.shape[0],), self.stop.is_set(), dtype=torch.bool, device=input_ids.device)


class EmbeddedLLM:
    """The LLM backend that runs a model in this process. Cheap to build (one per run); the loaded
    model stays in the shared cache."""

    def __init__(self, config: Config, home: ModelHome):
        self.model_id = embedded_model(config)
        self.temperature = config.llm.temperature
        self._home = home

    def complete(self, messages: list[dict[str, Any]], usage: Usage, *, max_tokens: int | None = None,
                 temperature: float | None = None, schema: OutputSchema | None = None) -> str:
        """The whole answer (streamed underneath, like every call)."""
        chosen = self.temperature if temperature is None else temperature
        return "".join(self._generate(messages, usage, max_tokens, chosen, schema))

    def stream(self, messages: list[dict[str, Any]], usage: Usage, *, max_tokens: int | None = None,
               schema: OutputSchema | None = None) -> Iterator[str]:
        """The answer as text deltas, as the model writes them."""
        yield from self._generate(messages, usage, max_tokens, self.temperature, schema)

    # -- loading ------------------------------------------------------------------------------------
    def _loaded(self, usage: Usage) -> AbstractContextManager[Any]:
        """The loaded model (a TextModel), held for the with-block: calls to it take turns. A load
        notes what it does (`usage.note`): where it loads and its time (milestones), and a download's
        progress (each line outdating the one before)."""
        runner = local_runner(RUNNER_TASK)
        device = self._home.device()
        model_id = self.model_id
        key = runner.cache_key(model_id)
        # what the Hub cache holds of it, looked up only when it is not loaded already (every call asks)
        size = cached_bytes(model_id) if key not in self._home.cache else None

        def say(line: str, kind: NoteKind = "milestone") -> None:
            log.info("embedded LLM: %s", line)
            usage.note(line, kind, source=model_id)

        def load() -> Any:
            held = size if size is not None else cached_bytes(model_id)   # unloaded since the look: look again
            where = "downloading it first (one time)" if held is None and not Path(model_id).is_dir() \
                else "from the local cache"
            say(f"loading {model_id} on {device.name}, {where}")
            try:
                # one load at a time, the task models' included; a download's progress when it downloads
                with LOAD_LOCK, metered(model_id, held, lambda line: say(line, "progress")):
                    started = time.perf_counter()
                    loaded = runner.load(model_id, device)
                say(f"loaded {model_id} in {time.perf_counter() - started:.1f} s")
                return loaded
            except Exception as exc:
                raise LLMError(f"the embedded LLM {model_id} could not be loaded ({first_line(exc)}): it is "
                               "downloaded from the Hugging Face Hub at first use, so check the network, or set "
                               f"llm.model (JARVIS_LLM_MODEL) to an instruct model's Hub id or folder; {HOSTED_HINT}") from exc
        return self._home.cache.using(key, load, size or 0)

    @staticmethod
    def _grammar_tokenizer(loaded: Any) -> Any:
        """llguidance's tokenizer for the loaded model, built once and kept beside it."""
        if "llguidance" not in loaded.extra:
            config = loaded.model.generation_config
            eos = config.eos_token_id if isinstance(config.eos_token_id, list) else [config.eos_token_id]
            eos_ids = [int(i) for i in [*eos, loaded.tokenizer.eos_token_id] if i is not None]
            vocab = max(len(loaded.tokenizer), int(loaded.model.get_output_embeddings().weight.shape[0]))
            loaded.extra["llguidance"] = tokenizer_for(loaded.tokenizer, vocab, list(dict.fromkeys(eos_ids)))
        return loaded.extra["llguidance"]

    # -- generating -----------------------------------------------------------------------------------
    def _prompt(self, loaded: Any, messages: list[dict[str, Any]]) -> Any:
        tokenizer = loaded.tokenizer
        if not getattr(tokenizer, "chat_template", None):
            raise LLMError(f"{self.model_id} has no chat template, so it cannot be the embedded LLM: set llm.model "
                           f"(JARVIS_LLM_MODEL) to an instruct (chat) model; {HOSTED_HINT}")
        chat = [{"role": str(m.get("role", "user")), "content": str(m.get("content") or "")} for m in messages]
        encoded = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=True, return_dict=True,
                                                return_tensors="pt", enable_thinking=False)
        return encoded["input_ids"].to(loaded.device.name)

    @staticmethod
    def _settings(loaded: Any, new_tokens: int, temperature: float, constrained: bool) -> Any:
        """The model's generation config with this call's length and sampling."""
        settings = copy.deepcopy(loaded.model.generation_config)
        settings.max_new_tokens, settings.max_length = new_tokens, None
        if temperature > 0:
            settings.do_sample, settings.temperature = True, temperature
        else:   # greedy; the sampling fields at transformers' defaults (None would be refilled from the model's)
            settings.do_sample, settings.temperature, settings.top_p, settings.top_k = False, 1.0, 1.0, 50
        if constrained:   # the grammar decides what repeats: a penalty would only push the model off its choice
            settings.repetition_penalty = 1.0
        if settings.pad_token_id is None:
            settings.pad_token_id = loaded.extra.get("pad_token_id")
        return settings

    def _generate(self, messages: list[dict[str, Any]], usage: Usage, max_tokens: int | None, temperature: float,
                  schema: OutputSchema | None) -> Iterator[str]:
        from transformers import LogitsProcessorList, StoppingCriteriaList, TextIteratorStreamer
        with ExitStack() as stack:
            try:
                loaded = stack.enter_context(self._loaded(usage))
            except ModelSkippedError as exc:
                raise LLMError(f"the embedded LLM is not loaded again yet: {exc}; {HOSTED_HINT}") from None
            input_ids = self._prompt(loaded, messages)
            prompt_tokens = int(input_ids.shape[1])
            room = loaded.max_tokens - prompt_tokens
            if room < 16:
                raise LLMError(f"the conversation ({prompt_tokens} tokens) is longer than {self.model_id} reads at "
                               f"once ({loaded.max_tokens}): start a new chat, or use a model with a longer context")
            new_tokens = min(max_tokens or DEFAULT_NEW_TOKENS, room)
            processors = []
            if schema is not None:
                decoder = ConstrainedDecoder(self._grammar_tokenizer(loaded), schema, new_tokens)
                processors.append(GrammarLogitsProcessor(decoder, prompt_tokens))
            streamer = TextIteratorStreamer(loaded.tokenizer, skip_prompt=True, skip_special_tokens=True)
            watch = _Watch(prompt_tokens)
            failed: list[BaseException] = []

            def work() -> None:
                try:
                    loaded.model.generate(input_ids=input_ids, attention_mask=input_ids.new_ones(input_ids.shape),
                                          generation_config=self._settings(loaded, new_tokens, temperature,
                                                                           schema is not None),
                                          logits_processor=LogitsProcessorList(processors),
                                          stopping_criteria=StoppingCriteriaList([watch]), streamer=streamer)
                except BaseException as exc:   # handed to the reading thread, which raises it as an LLMError
                    failed.append(exc)
                    streamer.end()
            thread = threading.Thread(target=work, name="embedded-llm", daemon=True)
            thread.start()
            try:
                for text in streamer:
                    if text:
                        yield text
            finally:
                watch.stop.set()     # the reader stopped early (cancelled): generation ends at the next token
                thread.join()
                usage.add(prompt_tokens, watch.generated)
            if failed:
                log.error("the embedded LLM failed", exc_info=failed[0])
                raise LLMError(f"the embedded LLM {self.model_id} failed while writing ({first_line(failed[0])}); "
                               f"try again, {HOSTED_HINT}")
