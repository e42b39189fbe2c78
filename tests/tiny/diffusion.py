"""Tiny random diffusion pipelines (SD 1.5, instruct-pix2pix, ControlNets, text-to-video) under real ids.

Every pipeline makes 32x32 pixel outputs: a 2-block VAE (scale 2) over 16x16 latents, a 2-block UNet with
8/16 channels and a 1-layer CLIP text encoder with a byte-level tokenizer whose files are written here.
"""
from __future__ import annotations

import json
from pathlib import Path

from . import builder

SD_ID = "stable-diffusion-v1-5/stable-diffusion-v1-5"
PIX2PIX_ID = "timbrooks/instruct-pix2pix"
CANNY_ID = "lllyasviel/sd-controlnet-canny"
DEPTH_ID = "lllyasviel/sd-controlnet-depth"
VIDEO_ID = "ali-vilab/text-to-video-ms-1.7b"
IDS = (SD_ID, PIX2PIX_ID, CANNY_ID, DEPTH_ID, VIDEO_ID)

CHANNELS = (8, 16)
GROUPS = 4
# The text width the UNets attend to. Stable Diffusion 1.x (and the SD 1.5 ControlNets and instruct-pix2pix
# built on it) use CLIP ViT-L/14's 768, as the real repos' unet/config.json and ControlNet config.json say
# ("cross_attention_dim": 768); catalog eligibility reads it, so the replicas keep it. The video model has
# its own text encoder and stays tiny.
SD15_TEXT_DIM = 768
CROSS_DIM = 16
LATENT = 16  # latent side; the VAE doubles it: 32 px images


def _byte_chars() -> list[str]:
    """The 256 printable stand-ins byte-level BPE uses for bytes (printable ASCII and Latin-1 kept)."""
    keep = set(range(ord("!"), ord("~") + 1)) | set(range(ord("¡"), ord("¬") + 1)) | set(range(ord("®"), 256))
    chars, extra = {}, 0
    for b in range(256):
        if b in keep:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


def write_clip_tokenizer_files(folder: Path) -> None:
    """vocab.json + merges.txt of a CLIP BPE covering every byte, with a few merges."""
    folder.mkdir(parents=True, exist_ok=True)
    specials = ["<|startoftext|>", "<|endoftext|>"]
    merges = [("t", "h"), ("a", "n"), ("i", "n"), ("e", "r"), ("th", "e</w>"), ("o", "n</w>")]
    tokens = specials + _byte_chars() + [c + "</w>" for c in _byte_chars()] + [a + b for a, b in merges]
    vocab = {tok: i for i, tok in enumerate(dict.fromkeys(tokens))}
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))


def _text_parts(tmp: Path, width: int = SD15_TEXT_DIM):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    write_clip_tokenizer_files(tmp)
    tokenizer = CLIPTokenizer.from_pretrained(str(tmp), model_max_length=32)
    config = CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=width, intermediate_size=32,
                            num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=32,
                            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                            pad_token_id=tokenizer.pad_token_id, projection_dim=width)
    return CLIPTextModel(config).eval(), tokenizer


def _vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(in_channels=3, out_channels=3, block_out_channels=CHANNELS, layers_per_block=1,
                         down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                         latent_channels=4, norm_num_groups=GROUPS, sample_size=2 * LATENT)


def unet_kwargs(in_channels: int = 4) -> dict:
    """UNet2DConditionModel arguments; the ControlNets reuse them so they fit the tiny SD UNet."""
    return dict(sample_size=LATENT, in_channels=in_channels, block_out_channels=CHANNELS, layers_per_block=1,
                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                cross_attention_dim=SD15_TEXT_DIM, attention_head_dim=4, norm_num_groups=GROUPS)


def _unet(in_channels: int = 4):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(out_channels=4, up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
                                **unet_kwargs(in_channels))


def _scheduler():
    from diffusers import DDIMScheduler

    return DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                         clip_sample=False, set_alpha_to_one=False, steps_offset=1)


def _seed():
    import torch

    torch.manual_seed(0)


@builder(SD_ID)
def build_sd(snap: Path) -> None:
    from diffusers import StableDiffusionPipeline

    _seed()
    text_encoder, tokenizer = _text_parts(snap / "_tok")
    pipe = StableDiffusionPipeline(vae=_vae(), text_encoder=text_encoder, tokenizer=tokenizer, unet=_unet(),
                                   scheduler=_scheduler(), safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.save_pretrained(snap)
    _drop(snap / "_tok")


@builder(PIX2PIX_ID)
def build_pix2pix(snap: Path) -> None:
    from diffusers import StableDiffusionInstructPix2PixPipeline

    _seed()
    text_encoder, tokenizer = _text_parts(snap / "_tok")
    pipe = StableDiffusionInstructPix2PixPipeline(
        vae=_vae(), text_encoder=text_encoder, tokenizer=tokenizer, unet=_unet(in_channels=8),
        scheduler=_scheduler(), safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(snap)
    _drop(snap / "_tok")


@builder(CANNY_ID, DEPTH_ID)
def build_controlnet(snap: Path) -> None:
    from diffusers import ControlNetModel

    _seed()
    kwargs = unet_kwargs()
    kwargs.pop("sample_size")
    ControlNetModel(conditioning_embedding_out_channels=CHANNELS, **kwargs).save_pretrained(snap)


@builder(VIDEO_ID)
def build_text_to_video(snap: Path) -> None:
    from diffusers import TextToVideoSDPipeline, UNet3DConditionModel

    _seed()
    text_encoder, tokenizer = _text_parts(snap / "_tok", CROSS_DIM)
    unet = UNet3DConditionModel(sample_size=LATENT, in_channels=4, out_channels=4, block_out_channels=CHANNELS,
                                down_block_types=("DownBlock3D", "CrossAttnDownBlock3D"),
                                up_block_types=("CrossAttnUpBlock3D", "UpBlock3D"), layers_per_block=1,
                                norm_num_groups=GROUPS, cross_attention_dim=CROSS_DIM, attention_head_dim=4)
    pipe = TextToVideoSDPipeline(vae=_vae(), text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                 scheduler=_scheduler())
    pipe.save_pretrained(snap)
    _drop(snap / "_tok")


def _drop(folder: Path) -> None:
    """Give the saved pipeline the real repos' tokenizer layout (vocab.json + merges.txt +
    special_tokens_map.json beside tokenizer_config.json, no tokenizer.json: see tests/tiny/real_repos/),
    then remove the scratch tokenizer folder."""
    import shutil

    tokenizer = folder.parent / "tokenizer"
    if (tokenizer / "tokenizer_config.json").is_file():
        for name in ("vocab.json", "merges.txt"):
            shutil.copy(folder / name, tokenizer / name)
        (tokenizer / "tokenizer.json").unlink(missing_ok=True)
        special = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
                   "unk_token": "<|endoftext|>"}
        (tokenizer / "special_tokens_map.json").write_text(json.dumps(special, indent=2))
    shutil.rmtree(folder, ignore_errors=True)
