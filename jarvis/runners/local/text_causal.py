"""Decoder-only text runners: text-generation and conversational (a chat model with its chat
template). Both share one cached load per model (family "causal-lm"): AutoModelForCausalLM +
tokenizer; the prompt is cut to leave room in the context window for the generated tokens."""
from __future__ import annotations

from typing import Any

from jarvis.runners.base import Device, RunContext, Runner, TaskInputs, TaskOutputs
from jarvis.runners.local.loading import cancel_criteria
from jarvis.runners.local.text_support import TextModel, load_parts, text_input, truncate_ids

PROMPT_ECHO_CHARS = 2000  # text-generation repeats the prompt before its continuation up to this size
_GAP = " … "


class _CausalRunner(Runner):
    """Shared load and generate for the decoder-only task types."""
    family = "causal-lm"

    def load(self, model_id: str, device: Device) -> TextModel:
        from transformers import AutoModelForCausalLM
        loaded = load_parts(model_id, self.task, AutoModelForCausalLM.from_pretrained, device)
        tok = loaded.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        loaded.extra["pad_token_id"] = pad
        return loaded

    @staticmethod
    def budget(loaded: TextModel, ctx: RunContext) -> tuple[int, int]:
        """(prompt tokens allowed, new tokens): prompt + new tokens fit the model's window."""
        new = ctx.options.new_tokens("text")
        if loaded.max_tokens - new < 8:
            new = max(1, loaded.max_tokens // 2)
        return max(1, min(loaded.max_tokens - new, ctx.options.max_input_tokens)), new

    @staticmethod
    def generate(loaded: TextModel, ids: list[int], new: int, ctx: RunContext) -> tuple[str, int]:
        """Decoded continuation of `ids` (new tokens only) and how many tokens it has; a cancelled run
        stops at the next token."""
        import torch
        input_ids = torch.tensor([ids], device=loaded.device.name)
        kwargs: dict[str, Any] = {"max_new_tokens": new, "attention_mask": torch.ones_like(input_ids),
                                  "stopping_criteria": cancel_criteria(ctx)}
        if loaded.extra.get("pad_token_id") is not None:
            kwargs["pad_token_id"] = loaded.extra["pad_token_id"]
        with torch.no_grad():
            out = loaded.model.generate(input_ids=input_ids, **kwargs)
        fresh = out[0, len(ids):]
        return loaded.tokenizer.decode(fresh, skip_special_tokens=True).strip(), int(fresh.shape[-1])


class TextGenerationRunner(_CausalRunner):
    """Writes text from a prompt. An instruct model (its tokenizer has a chat template) gets the prompt
    as an instruction and the output is what it writes; a base model continues the prompt, and the
    output is prompt + continuation (the continuation alone when the prompt is long). A prompt longer
    than the window keeps its end; detail holds the new text by itself."""
    task = "text-generation"

    def run(self, loaded: TextModel, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        prompt = str(inputs.first("text"))
        tok = loaded.tokenizer
        limit, new = self.budget(loaded, ctx)
        if prompt.strip() and getattr(tok, "chat_template", None):
            ids, cut = truncate_ids(ConversationalRunner._prompt_ids(tok, prompt, True), limit, keep="end")
            written, n_new = self.generate(loaded, ids, new, ctx)
            return TaskOutputs(text=written or "(the model generated nothing)",
                               detail={"continuation": written, "prompt_included": False, "chat_template": True,
                                       "prompt_tokens": len(ids), "new_tokens": n_new, "truncated": cut})
        if not prompt.strip():
            prompt = tok.bos_token or tok.eos_token or " "
        ids = loaded.tokenizer(prompt, add_special_tokens=True)["input_ids"]
        if not ids:
            ids = [loaded.tokenizer.eos_token_id or 0]
        ids, cut = truncate_ids(ids, limit, keep="end")
        continuation, n_new = self.generate(loaded, ids, new, ctx)
        echo = len(prompt) <= PROMPT_ECHO_CHARS
        if echo:
            joiner = "" if not continuation or prompt.endswith((" ", "\n")) else " "
            text = prompt + joiner + continuation
        else:
            text = continuation
        return TaskOutputs(text=text or "(the model generated nothing)",
                           detail={"continuation": continuation, "prompt_included": echo, "chat_template": False,
                                   "prompt_tokens": len(ids), "new_tokens": n_new, "truncated": cut})


class ConversationalRunner(_CausalRunner):
    """Replies to a message with a chat model, through the model's own chat template. A message
    longer than the window keeps its start and end (instructions often sit at either)."""
    task = "conversational"

    def run(self, loaded: TextModel, inputs: TaskInputs, ctx: RunContext) -> TaskOutputs:
        message = text_input(inputs, "message")
        tok = loaded.tokenizer
        limit, new = self.budget(loaded, ctx)
        templated = bool(getattr(tok, "chat_template", None))
        overhead = len(self._prompt_ids(tok, "", templated)) + len(tok(_GAP, add_special_tokens=False)["input_ids"])
        room = max(4, limit - overhead)
        body = tok(message, add_special_tokens=False)["input_ids"]
        cut = len(body) > room
        if cut:
            head = room // 4
            message = tok.decode(body[:head]) + _GAP + tok.decode(body[-(room - head):])
        ids = self._prompt_ids(tok, message, templated)
        ids, cut_again = truncate_ids(ids, limit, keep="end")
        reply, n_new = self.generate(loaded, ids, new, ctx)
        if not templated:
            reply = reply.split("\nUser:")[0].strip()
        return TaskOutputs(text=reply or "(the model replied with nothing)",
                           detail={"reply": reply, "chat_template": templated, "prompt_tokens": len(ids),
                                   "new_tokens": n_new, "truncated": cut or cut_again})

    @staticmethod
    def _prompt_ids(tok: Any, message: str, templated: bool) -> list[int]:
        """Token ids of the chat prompt ending where the assistant's reply starts."""
        if templated:
            ids = tok.apply_chat_template([{"role": "user", "content": message}], add_generation_prompt=True,
                                          tokenize=True, return_dict=False)
            if isinstance(ids, dict) or hasattr(ids, "keys"):
                ids = ids["input_ids"]
            return list(ids[0] if ids and isinstance(ids[0], list) else ids)
        return tok(f"User: {message}\nAssistant:", add_special_tokens=True)["input_ids"]
