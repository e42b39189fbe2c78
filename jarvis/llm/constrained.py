"""Decoding under an OutputSchema with llguidance: which next tokens keep the answer valid.

llguidance matches the answer's bytes against a Lark grammar and gives, at each step, the mask of
tokens that keep it inside the grammar (tens of microseconds; the model's forward pass takes tens of
milliseconds). When the schema's checkpoint moves (a plan's task object closed), the grammar is
built again for the rest, with the settled text as its literal start, and the new matcher is fed
every token so far: the token that closed the object may already hold the start of what follows.

llguidance was chosen over xgrammar: a 3 MB wheel with no dependencies, where xgrammar 0.2.x
requires triton on Linux x86-64 (a ~1 GB install a CPU build of torch never uses); both compute a
mask in microseconds here, and llguidance's Lark grammars take the rebuilt prefix directly.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np

from jarvis.errors import LLMError
from jarvis.llm.backend import OutputSchema

log = logging.getLogger(__name__)


def tokenizer_for(hf_tokenizer: Any, vocab_size: int, eos_ids: list[int]) -> Any:
    """llguidance's view of a Hugging Face fast tokenizer (about a second to build: cache it)."""
    import llguidance.hf
    try:
        return llguidance.hf.from_tokenizer(hf_tokenizer, n_vocab=vocab_size, eos_token=eos_ids)
    except ValueError as exc:
        raise LLMError(f"constrained decoding needs a fast (Rust) tokenizer: {exc}; choose another llm.model") from None


class ConstrainedDecoder:
    """The allowed next tokens of an answer under `schema`, given the tokens so far. `budget` is the
    answer's token limit: the grammar's literals shrink so that the answer always closes within it."""

    def __init__(self, tokenizer: Any, schema: OutputSchema, budget: int):
        import llguidance
        self._ll = llguidance
        self._tokenizer = tokenizer
        self.schema = schema
        self.budget = budget
        self.tokens: list[int] = []
        self._bytes = b""
        self._done = ""
        self.error = ""
        self._matcher = self._build("")

    def _build(self, done: str) -> Any:
        grammar = self._ll.LLMatcher.grammar_from_lark(self.schema.grammar(done, self.budget - len(self.tokens)))
        matcher = self._ll.LLMatcher(self._tokenizer, grammar, log_level=0)
        if matcher.is_error():
            raise LLMError(f"the {self.schema.name} grammar did not compile ({matcher.get_error()[:300]}); "
                           "this is a bug in Jarvis: please report it")
        return matcher

    def text(self) -> str:
        return self._bytes.decode("utf-8", errors="replace")

    def advance(self, token: int) -> None:
        """Take the token the model chose."""
        self.tokens.append(token)
        if not self._matcher.consume_token(token):
            self.error = self._matcher.get_error()[:300]
            log.warning("constrained decoding of the %s left its grammar: %s", self.schema.name, self.error)
            return
        piece = self._tokenizer.decode_bytes([token])
        self._bytes += piece
        if b"}" not in piece:
            return
        text = self.text()
        end = self.schema.checkpoint(text)
        if end <= len(self._done):
            return
        done = text[:end]
        matcher = self._build(done)
        if not matcher.consume_tokens(self.tokens):
            log.warning("the %s grammar rebuilt after %d characters refused the text so far (%s); going on "
                        "with the previous one", self.schema.name, end, matcher.get_error()[:200])
            return
        self._done, self._matcher = done, matcher

    def finished(self) -> bool:
        """The answer is complete: only the end-of-text token may follow."""
        return bool(self._matcher.is_stopped())

    def allowed(self, vocab_size: int) -> np.ndarray:
        """A boolean mask over the model's vocabulary; with the grammar lost, only end-of-text."""
        if self.error:
            mask = np.zeros(vocab_size, dtype=bool)
            mask[[t for t in self._tokenizer.eos_tokens if t < vocab_size]] = True
            return mask
        bits = np.unpackbits(np.frombuffer(self._matcher.compute_bitmask(), dtype=np.uint8), bitorder="little")
        mask = np.zeros(vocab_size, dtype=bool)
        n = min(vocab_size, bits.size)
        mask[:n] = bits[:n].astype(bool)
        return mask


class GrammarLogitsProcessor:
    """A transformers logits processor (batch of one) that sets every token outside the grammar to -inf.
    Custom processors run before sampling's warpers, so top-k and top-p only see allowed tokens."""

    def __init__(self, decoder: ConstrainedDecoder, prompt_tokens: int):
        self.decoder = decoder
        self.prompt_tokens = prompt_tokens

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch
        if input_ids.shape[1] > self.prompt_tokens:
            self.decoder.advance(int(input_ids[0, -1]))
        allowed = torch.from_numpy(self.decoder.allowed(scores.shape[-1])).to(scores.device)
        return scores.masked_fill(~allowed, float("-inf"))
