"""Tiny random vision models under the catalog's real ids, each with its processor saved beside it.
The first-ranked models' replicas mirror their real repos (tests/test_replicas.py, tests/tiny/real_repos/).

Processors each model needs: ViT/YOLOS/DETR/SegFormer an image processor; Depth Anything and DPT a
DPT image processor; the ViT-GPT2 captioner an image processor plus a GPT-2 tokenizer; BLIP and ViLT
a combined processor (image processor + BERT tokenizer); Donut a DonutProcessor (image processor +
XLM-R style tokenizer with the DocVQA task tokens). DETR uses a transformers ResNet backbone (no timm).
"""
from __future__ import annotations

from pathlib import Path

from . import builder

SENTENCES = [
    "a cat sitting on a red sofa", "two dogs playing in the park", "a man riding a horse on the beach",
    "what is the total amount", "how many people are in the picture", "the invoice date is 2024",
    "a picture of a blue car", "what colour is the car", "yes no 1 2 3 red blue green",
]
WORDS = sorted({w for s in SENTENCES for w in s.split()})
LABELS = {0: "cat", 1: "dog", 2: "car", 3: "person"}
VQA_ANSWERS = {0: "yes", 1: "no", 2: "2", 3: "red", 4: "cat"}
DOCVQA_TOKENS = ["<s_docvqa>", "<s_question>", "</s_question>", "<s_answer>", "</s_answer>"]


def _seed() -> None:
    """Fixed weights, so what the tiny models output is the same on every run."""
    import torch
    torch.manual_seed(0)


def _tiny_vit(**extra):
    from transformers import ViTConfig
    return ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=64, **extra)


def _bert_tokenizer(extra_tokens=()):
    from transformers import BertTokenizer
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *extra_tokens, *WORDS, "?", ".", ","]
    tokens += [c for c in "abcdefghijklmnopqrstuvwxyz0123456789" if c not in tokens]
    tokens += [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz0123456789"]
    return BertTokenizer(vocab={t: i for i, t in enumerate(tokens)})


def _gpt2_tokenizer():
    import json

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Tokenizer
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(SENTENCES, trainer)
    model = json.loads(tok.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return GPT2Tokenizer(vocab=model["vocab"], merges=merges)


@builder("google/vit-base-patch16-224")
def vit_classifier(snap: Path) -> None:
    _seed()
    from transformers import ViTForImageClassification, ViTImageProcessor
    config = _tiny_vit(id2label=LABELS, label2id={v: k for k, v in LABELS.items()})
    ViTForImageClassification(config).save_pretrained(snap)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(snap)


@builder("hustvl/yolos-tiny")
def yolos(snap: Path) -> None:
    _seed()
    from transformers import YolosConfig, YolosForObjectDetection, YolosImageProcessor
    config = YolosConfig(image_size=[32, 32], patch_size=8, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64, num_detection_tokens=5, id2label=LABELS,
                         label2id={v: k for k, v in LABELS.items()})
    YolosForObjectDetection(config).save_pretrained(snap)
    YolosImageProcessor(size={"shortest_edge": 32, "longest_edge": 64}).save_pretrained(snap)


@builder("facebook/detr-resnet-50")
def detr(snap: Path) -> None:
    _seed()
    from transformers import DetrConfig, DetrForObjectDetection, DetrImageProcessor, ResNetConfig
    backbone = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic",
                            out_features=["stage2"])
    config = DetrConfig(use_timm_backbone=False, backbone_config=backbone, d_model=32, encoder_layers=1,
                        decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64,
                        decoder_ffn_dim=64, num_queries=5, id2label=LABELS, label2id={v: k for k, v in LABELS.items()})
    DetrForObjectDetection(config).save_pretrained(snap)
    DetrImageProcessor(size={"shortest_edge": 32, "longest_edge": 64}).save_pretrained(snap)


@builder("PekingU/rtdetr_r50vd")
def rtdetr(snap: Path) -> None:
    """RT-DETR on its own transformers ResNet backbone (rt_detr_resnet), as the real config says: no timm."""
    _seed()
    from transformers import RTDetrConfig, RTDetrForObjectDetection, RTDetrImageProcessor, RTDetrResNetConfig
    backbone = RTDetrResNetConfig(embedding_size=8, hidden_sizes=[8, 16, 16, 16], depths=[1, 1, 1, 1],
                                  layer_type="basic", out_indices=[2, 3, 4])
    config = RTDetrConfig(backbone_config=backbone, encoder_in_channels=[16, 16, 16], encoder_hidden_dim=16,
                          encoder_ffn_dim=32, encoder_attention_heads=2, d_model=16, decoder_in_channels=[16, 16, 16],
                          decoder_ffn_dim=32, decoder_layers=1, decoder_attention_heads=2, num_queries=10,
                          num_denoising=0, id2label=LABELS, label2id={v: k for k, v in LABELS.items()})
    RTDetrForObjectDetection(config).save_pretrained(snap)
    RTDetrImageProcessor(size={"height": 64, "width": 64}).save_pretrained(snap)


@builder("nvidia/segformer-b0-finetuned-ade-512-512")
def segformer(snap: Path) -> None:
    _seed()
    from transformers import SegformerConfig, SegformerForSemanticSegmentation, SegformerImageProcessor
    labels = {0: "wall", 1: "sky", 2: "floor", 3: "tree"}
    config = SegformerConfig(num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1], hidden_sizes=[16, 32],
                             patch_sizes=[7, 3], strides=[4, 2], num_attention_heads=[1, 2], mlp_ratios=[2, 2],
                             decoder_hidden_size=32, id2label=labels, label2id={v: k for k, v in labels.items()})
    SegformerForSemanticSegmentation(config).save_pretrained(snap)
    SegformerImageProcessor(size={"height": 32, "width": 32}).save_pretrained(snap)


@builder("depth-anything/Depth-Anything-V2-Small-hf")
def depth_anything(snap: Path) -> None:
    _seed()
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config, DPTImageProcessor
    backbone = Dinov2Config(image_size=28, patch_size=14, hidden_size=16, num_hidden_layers=4, num_attention_heads=2,
                            mlp_ratio=2, out_indices=[1, 2, 3, 4], reshape_hidden_states=False)
    config = DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=16, neck_hidden_sizes=[8, 8, 16, 16],
                                 fusion_hidden_size=16, head_hidden_size=8)
    DepthAnythingForDepthEstimation(config).save_pretrained(snap)
    DPTImageProcessor(size={"height": 28, "width": 28}, keep_aspect_ratio=True, ensure_multiple_of=14,
                      do_pad=False).save_pretrained(snap)


@builder("Intel/dpt-large")
def dpt(snap: Path) -> None:
    _seed()
    from transformers import DPTConfig, DPTForDepthEstimation, DPTImageProcessor
    config = DPTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                       intermediate_size=64, backbone_out_indices=[0, 1, 2, 3], neck_hidden_sizes=[8, 8, 16, 16],
                       fusion_hidden_size=16, head_hidden_size=8)
    DPTForDepthEstimation(config).save_pretrained(snap)
    DPTImageProcessor(size={"height": 32, "width": 32}, keep_aspect_ratio=False).save_pretrained(snap)


@builder("nlpconnect/vit-gpt2-image-captioning")
def vit_gpt2(snap: Path) -> None:
    _seed()
    from transformers import GPT2Config, VisionEncoderDecoderConfig, VisionEncoderDecoderModel, ViTImageProcessor
    tokenizer = _gpt2_tokenizer()
    eos = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    decoder = GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=1, n_head=2, n_positions=64,
                         bos_token_id=eos, eos_token_id=eos, add_cross_attention=True, is_decoder=True,
                         tie_word_embeddings=False)  # tied, a random decoder repeats its start token = eos
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(_tiny_vit(), decoder)
    config.decoder_start_token_id = eos
    config.pad_token_id = eos
    config.eos_token_id = eos
    model = VisionEncoderDecoderModel(config=config)
    for gen in (model.generation_config,):
        gen.decoder_start_token_id, gen.pad_token_id, gen.eos_token_id, gen.bos_token_id = eos, eos, eos, eos
    model.save_pretrained(snap)
    tokenizer.save_pretrained(snap)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(snap)


def _blip_parts():
    from transformers import BlipConfig, BlipImageProcessor, BlipProcessor
    tokenizer = _bert_tokenizer(extra_tokens=["[DEC]"])
    tokenizer.bos_token = "[DEC]"
    dec, sep = tokenizer.convert_tokens_to_ids("[DEC]"), tokenizer.convert_tokens_to_ids("[SEP]")
    text = dict(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                intermediate_size=64, max_position_embeddings=64, bos_token_id=dec, sep_token_id=sep,
                pad_token_id=0, eos_token_id=sep, encoder_hidden_size=32)
    vision = dict(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                  intermediate_size=64)
    config = BlipConfig(text_config=text, vision_config=vision, projection_dim=32)
    processor = BlipProcessor(BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer)
    return config, processor, dec, sep


def _save_blip(model, processor, snap: Path, dec: int, sep: int) -> None:
    gen = model.generation_config
    gen.bos_token_id, gen.eos_token_id, gen.pad_token_id, gen.decoder_start_token_id = dec, sep, 0, dec
    model.save_pretrained(snap)
    processor.save_pretrained(snap)


@builder("Salesforce/blip-image-captioning-base")
def blip_caption(snap: Path) -> None:
    _seed()
    from transformers import BlipForConditionalGeneration
    config, processor, dec, sep = _blip_parts()
    _save_blip(BlipForConditionalGeneration(config), processor, snap, dec, sep)


@builder("Salesforce/blip-vqa-base")
def blip_vqa(snap: Path) -> None:
    _seed()
    from transformers import BlipForQuestionAnswering
    config, processor, dec, sep = _blip_parts()
    _save_blip(BlipForQuestionAnswering(config), processor, snap, dec, sep)


@builder("dandelin/vilt-b32-finetuned-vqa")
def vilt(snap: Path) -> None:
    _seed()
    from transformers import ViltConfig, ViltForQuestionAnswering, ViltImageProcessor, ViltProcessor
    tokenizer = _bert_tokenizer()
    config = ViltConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, image_size=32, patch_size=8, max_position_embeddings=40,
                        id2label=VQA_ANSWERS, label2id={v: k for k, v in VQA_ANSWERS.items()})
    ViltForQuestionAnswering(config).save_pretrained(snap)
    ViltProcessor(ViltImageProcessor(size={"shortest_edge": 32}, size_divisor=32), tokenizer).save_pretrained(snap)


@builder("naver-clova-ix/donut-base-finetuned-docvqa")
def donut(snap: Path) -> None:
    _seed()
    from transformers import (
        DonutImageProcessor,
        DonutProcessor,
        DonutSwinConfig,
        MBartConfig,
        VisionEncoderDecoderConfig,
        VisionEncoderDecoderModel,
        XLMRobertaTokenizer,
    )
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    pieces = [f"▁{w}" for w in WORDS] + list("abcdefghijklmnopqrstuvwxyz0123456789?.,") + ["▁"]
    vocab = [(t, 0.0) for t in specials] + [(p, -float(i + 1)) for i, p in enumerate(pieces)]
    tokenizer = XLMRobertaTokenizer(vocab=vocab)
    tokenizer.add_tokens(DOCVQA_TOKENS, special_tokens=True)
    encoder = DonutSwinConfig(image_size=[64, 64], patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[1, 2],
                              window_size=4)
    decoder = MBartConfig(vocab_size=len(tokenizer), d_model=32, decoder_layers=1, encoder_layers=1,
                          decoder_attention_heads=2, encoder_attention_heads=2, decoder_ffn_dim=64,
                          encoder_ffn_dim=64, max_position_embeddings=64, is_decoder=True, add_cross_attention=True,
                          bos_token_id=0, pad_token_id=1, eos_token_id=2, decoder_start_token_id=0)
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder)
    config.decoder_start_token_id, config.pad_token_id, config.eos_token_id = 0, 1, 2
    model = VisionEncoderDecoderModel(config=config)
    gen = model.generation_config
    gen.decoder_start_token_id, gen.pad_token_id, gen.eos_token_id, gen.bos_token_id = 0, 1, 2, 0
    model.save_pretrained(snap)
    image_processor = DonutImageProcessor(size={"height": 64, "width": 64}, do_align_long_axis=False)
    DonutProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(snap)


# SmolVLM-256M-Instruct: an Idefics3 model whose repo keeps the processor in the older file layout
# (preprocessor_config.json, a two-key processor_config.json, chat_template.json, special_tokens_map.json,
# added_tokens.json, vocab.json + merges.txt beside tokenizer.json); transformers 5's save_pretrained writes
# another layout, so the builder writes the real one (tests/tiny/real_repos/HuggingFaceTB--SmolVLM-256M-Instruct.json).
SMOLVLM_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}"
    "{% if message['content'][0]['type'] == 'image' %}{{ ':' }}{% else %}{{ ': ' }}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{ line['text'] }}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}")
SMOLVLM_SPECIAL = {"bos_token": "<|im_start|>", "eos_token": "<end_of_utterance>", "pad_token": "<|im_end|>",
                   "unk_token": "<|endoftext|>"}
IMAGE_TOKENS = ["<fake_token_around_image>", "<image>", "<end_of_utterance>"]


def _smolvlm_tokenizer(snap: Path):
    """A byte-level BPE trained on the test sentences, with SmolVLM's special and image-layout tokens."""
    import json

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(SENTENCES + ["User: Assistant: Describe this image. Answer the question"], trainer)
    tok.model.save(str(snap))  # vocab.json, merges.txt
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, additional_special_tokens=IMAGE_TOKENS,
                                        **SMOLVLM_SPECIAL)
    layout = ["<global-img>"] + [f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)]
    tokenizer.add_tokens(layout)
    special = {k: {"content": v, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False}
               for k, v in SMOLVLM_SPECIAL.items()}
    (snap / "special_tokens_map.json").write_text(json.dumps({"additional_special_tokens": IMAGE_TOKENS, **special},
                                                             indent=2))
    added = {t: tokenizer.convert_tokens_to_ids(t) for t in IMAGE_TOKENS + layout}
    (snap / "added_tokens.json").write_text(json.dumps(added, indent=2))
    return tokenizer


@builder("HuggingFaceTB/SmolVLM-256M-Instruct")
def smolvlm(snap: Path) -> None:
    import json

    _seed()
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3ImageProcessor
    tokenizer = _smolvlm_tokenizer(snap)
    tokenizer.save_pretrained(snap)
    ids = {k: tokenizer.convert_tokens_to_ids(v) for k, v in SMOLVLM_SPECIAL.items()}
    text = dict(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
                pad_token_id=ids["pad_token"], bos_token_id=ids["bos_token"], eos_token_id=ids["eos_token"])
    vision = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=32,
                  patch_size=8)
    config = Idefics3Config(vision_config=vision, text_config=text, scale_factor=2, pad_token_id=ids["pad_token"],
                            image_token_id=tokenizer.convert_tokens_to_ids("<image>"))
    model = Idefics3ForConditionalGeneration(config)
    gen = model.generation_config
    gen.bos_token_id, gen.eos_token_id, gen.pad_token_id = ids["bos_token"], ids["eos_token"], ids["pad_token"]
    model.save_pretrained(snap)
    # 32 px tiles of 4x4 patches, merged 2x2: 4 image tokens per tile (the real model: 512 px, 64 tokens)
    Idefics3ImageProcessor(size={"longest_edge": 64}, max_image_size={"longest_edge": 32}).save_pretrained(snap)
    (snap / "processor_config.json").write_text(json.dumps({"image_seq_len": 4, "processor_class": "Idefics3Processor"}))
    (snap / "chat_template.json").write_text(json.dumps({"chat_template": SMOLVLM_TEMPLATE}))
