"""A tiny random replica of the embedded LLM's default model, Qwen/Qwen2.5-0.5B-Instruct, under its
real id. It is also the catalog's first conversational model, so the conversational runner's tests
load it too.

Kept from the real repository (huggingface.co/Qwen/Qwen2.5-0.5B-Instruct: config.json,
generation_config.json, tokenizer_config.json): the Qwen2ForCausalLM architecture (model_type qwen2,
tied word embeddings, rope_theta 1e6, bfloat16 weights in one model.safetensors); a byte-level BPE
Qwen2Tokenizer in tokenizer.json with Qwen2's NFC normalizer and pre-tokenizer pattern, its 22
added tokens after the vocabulary (no bos token, eos "<|im_end|>", pad "<|endoftext|>") and its chat
template (tools block, default system prompt; transformers 5 saves it as chat_template.jinja); and
generation_config's fields (bos = pad = <|endoftext|>, eos = [<|im_end|>, <|endoftext|>], do_sample,
repetition_penalty 1.1, temperature 0.7, top_p 0.8, top_k 20). What differs: two layers of width 32,
and a vocabulary of ~500 tokens trained on a few sentences and plans (so token ids differ).
"""
from __future__ import annotations

import json
from pathlib import Path

from . import builder

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
            "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
            "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>", "<|fim_prefix|>",
            "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>"]
NOT_SPECIAL = {"<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
               "<|repo_name|>", "<|file_sep|>"}
PRETOKENIZE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
               r"\s*[\r\n]+|\s+(?!\S)|\s+")
DEFAULT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
CHAT_TEMPLATE = (
    "{%- if tools %}\n    {{- '<|im_start|>system\\n' }}\n    {%- if messages[0]['role'] == 'system' %}\n"
    "        {{- messages[0]['content'] }}\n    {%- else %}\n        {{- '" + DEFAULT_SYSTEM + "' }}\n"
    "    {%- endif %}\n    {{- \"\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query."
    "\\n\\nYou are provided with function signatures within <tools></tools> XML tags:\\n<tools>\" }}\n"
    "    {%- for tool in tools %}\n        {{- \"\\n\" }}\n        {{- tool | tojson }}\n    {%- endfor %}\n"
    "    {{- \"\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments "
    "within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\\"name\\\": <function-name>, \\\"arguments\\\": "
    "<args-json-object>}\\n</tool_call><|im_end|>\\n\" }}\n{%- else %}\n"
    "    {%- if messages[0]['role'] == 'system' %}\n"
    "        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n    {%- else %}\n"
    "        {{- '<|im_start|>system\\n" + DEFAULT_SYSTEM + "<|im_end|>\\n' }}\n    {%- endif %}\n{%- endif %}\n"
    "{%- for message in messages %}\n"
    "    {%- if (message.role == \"user\") or (message.role == \"system\" and not loop.first) or "
    "(message.role == \"assistant\" and not message.tool_calls) %}\n"
    "        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}\n"
    "    {%- elif message.role == \"assistant\" %}\n        {{- '<|im_start|>' + message.role }}\n"
    "        {%- if message.content %}\n            {{- '\\n' + message.content }}\n        {%- endif %}\n"
    "        {%- for tool_call in message.tool_calls %}\n            {%- if tool_call.function is defined %}\n"
    "                {%- set tool_call = tool_call.function %}\n            {%- endif %}\n"
    "            {{- '\\n<tool_call>\\n{\"name\": \"' }}\n            {{- tool_call.name }}\n"
    "            {{- '\", \"arguments\": ' }}\n            {{- tool_call.arguments | tojson }}\n"
    "            {{- '}\\n</tool_call>' }}\n        {%- endfor %}\n        {{- '<|im_end|>\\n' }}\n"
    "    {%- elif message.role == \"tool\" %}\n"
    "        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != \"tool\") %}\n"
    "            {{- '<|im_start|>user' }}\n        {%- endif %}\n        {{- '\\n<tool_response>\\n' }}\n"
    "        {{- message.content }}\n        {{- '\\n</tool_response>' }}\n"
    "        {%- if loop.last or (messages[loop.index0 + 1].role != \"tool\") %}\n"
    "            {{- '<|im_end|>\\n' }}\n        {%- endif %}\n    {%- endif %}\n{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n    {{- '<|im_start|>assistant\\n' }}\n{%- endif %}\n"
)
CORPUS = [
    "You are the planner of Jarvis: you turn a request into tasks that AI models run. Reply with JSON only.",
    '[{"task": "image-to-text", "id": 0, "dep": [-1], "args": {"image": "a.jpg"}}, '
    '{"task": "text-to-speech", "id": 1, "dep": [0], "args": {"text": "<GENERATED>-0"}}]',
    '{"0": {"id": "Salesforce/blip-image-captioning-base", "reason": "the most used captioner"}}',
    "Describe example.jpg, then read the description aloud and translate it into French.",
    "Choose one model for each task below, from its candidates. Reply with JSON only.",
    "Below are the request, the tasks Jarvis ran and their results. Answer the user directly.",
    "The quick brown fox jumps over the lazy dog. Hello, how are you? 0 1 2 3 4 5 6 7 8 9",
]


def tokenizer():
    """A Qwen2Tokenizer with Qwen2's pre-tokenizer and special tokens, trained on CORPUS."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import Qwen2Tokenizer

    tok = Tokenizer(models.BPE(byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=1000, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.add_special_tokens([AddedToken(s, special=s not in NOT_SPECIAL, normalized=False) for s in SPECIALS])
    additional = [s for s in SPECIALS[1:14]]
    return Qwen2Tokenizer(tokenizer_object=tok, bos_token=None, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                          unk_token=None, additional_special_tokens=additional, errors="replace",
                          model_max_length=131072, split_special_tokens=False, clean_up_tokenization_spaces=False,
                          chat_template=CHAT_TEMPLATE)


@builder("Qwen/Qwen2.5-0.5B-Instruct")
def qwen25_instruct(snap: Path) -> None:
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    tok = tokenizer()
    endoftext, im_end = tok.convert_tokens_to_ids(["<|endoftext|>", "<|im_end|>"])
    config = Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=32768,
                         max_window_layers=2, rope_theta=1000000.0, rms_norm_eps=1e-6, sliding_window=32768,
                         use_sliding_window=False, tie_word_embeddings=True, bos_token_id=endoftext,
                         eos_token_id=im_end, hidden_act="silu", attention_dropout=0.0)
    model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    model.generation_config = GenerationConfig(bos_token_id=endoftext, pad_token_id=endoftext, do_sample=True,
                                               eos_token_id=[im_end, endoftext], repetition_penalty=1.1,
                                               temperature=0.7, top_p=0.8, top_k=20)
    model.save_pretrained(snap)
    tok.save_pretrained(snap)
    bpe = json.loads((snap / "tokenizer.json").read_text(encoding="utf-8"))["model"]  # the repo's slow-tokenizer files
    (snap / "vocab.json").write_text(json.dumps(bpe["vocab"], ensure_ascii=False), encoding="utf-8")
    merges = [m if isinstance(m, str) else " ".join(m) for m in bpe["merges"]]
    (snap / "merges.txt").write_text("#version: 0.2\n" + "".join(m + "\n" for m in merges), encoding="utf-8")
