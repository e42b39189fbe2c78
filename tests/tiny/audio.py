"""Tiny random audio models under the real Hub ids the catalog ranks first: Whisper and wav2vec2 CTC
(speech recognition), Dia with its DAC codec and MMS-TTS / VITS (text-to-speech), AST and wav2vec2 keyword spotting (audio
classification), SpeechT5 voice conversion plus its HiFi-GAN vocoder (audio-to-audio)."""
from __future__ import annotations

import json
from pathlib import Path

from . import builder

WHISPER_LANGUAGES = ("en", "fr", "de", "es")
KS_LABELS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "_silence_", "_unknown_")


def _byte_vocab() -> dict[str, int]:
    """The 256 byte-level symbols of GPT-2 style BPE: any text encodes, no merges needed."""
    from tokenizers.pre_tokenizers import ByteLevel
    return {ch: i for i, ch in enumerate(sorted(ByteLevel.alphabet()))}


@builder("openai/whisper-tiny")
def whisper(snap: Path, mel_bins: int = 80) -> None:
    """Whisper with its special tokens and the generation-config fields generate() reads."""
    import torch
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizer,
    )
    vocab = _byte_vocab()
    specials = (["<|endoftext|>", "<|startoftranscript|>"] + [f"<|{c}|>" for c in WHISPER_LANGUAGES]
                + ["<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nospeech|>",
                   "<|notimestamps|>"])
    for token in specials:
        vocab[token] = len(vocab)
    tokenizer = WhisperTokenizer(vocab=dict(vocab), merges=[])
    tokenizer.add_special_tokens({"additional_special_tokens": specials[1:]})
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in specials}
    assert ids["<|notimestamps|>"] == len(vocab) - 1, ids
    eot, sot = ids["<|endoftext|>"], ids["<|startoftranscript|>"]
    # random weights would emit arbitrary bytes; keep transcripts to letters and spaces so they
    # can feed the next task (text-to-speech needs speakable characters)
    speakable = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") | {"\u0120"}
    suppress = [i for tok, i in _byte_vocab().items() if tok not in speakable]
    torch.manual_seed(0)
    config = WhisperConfig(
        vocab_size=len(vocab), num_mel_bins=mel_bins, d_model=16, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
        max_source_positions=1500, max_target_positions=48, pad_token_id=eot, bos_token_id=eot,
        eos_token_id=eot, decoder_start_token_id=sot, suppress_tokens=[], begin_suppress_tokens=[eot])
    model = WhisperForConditionalGeneration(config).eval()
    gen = GenerationConfig(
        decoder_start_token_id=sot, bos_token_id=eot, eos_token_id=eot, pad_token_id=eot,
        max_length=48, suppress_tokens=suppress, begin_suppress_tokens=[eot], is_multilingual=True,
        lang_to_id={f"<|{c}|>": ids[f"<|{c}|>"] for c in WHISPER_LANGUAGES},
        task_to_id={"translate": ids["<|translate|>"], "transcribe": ids["<|transcribe|>"]},
        no_timestamps_token_id=ids["<|notimestamps|>"], prev_sot_token_id=ids["<|startofprev|>"],
        alignment_heads=[[0, 0], [0, 1]], return_timestamps=False)
    model.generation_config = gen
    model.save_pretrained(snap)
    WhisperProcessor(feature_extractor=WhisperFeatureExtractor(feature_size=mel_bins),
                     tokenizer=tokenizer).save_pretrained(snap)


@builder("openai/whisper-large-v3-turbo")
def whisper_turbo(snap: Path) -> None:
    """large-v3-turbo's replica: 128 mel bins, and the tokenizer files its repo ships beside tokenizer.json
    (vocab.json, merges.txt, added_tokens.json, special_tokens_map.json, normalizer.json)."""
    from transformers import WhisperFeatureExtractor, WhisperTokenizer
    whisper(snap, mel_bins=128)
    WhisperFeatureExtractor(feature_size=128).save_pretrained(snap)   # preprocessor_config.json, as the repo has
    tokenizer = WhisperTokenizer.from_pretrained(str(snap))
    added = {t: i for t, i in tokenizer.get_vocab().items() if t.startswith("<|")}
    base = {t: i for t, i in tokenizer.get_vocab().items() if t not in added}
    (snap / "vocab.json").write_text(json.dumps(base, ensure_ascii=False))
    (snap / "merges.txt").write_text("#version: 0.2\n")
    (snap / "added_tokens.json").write_text(json.dumps(added))
    (snap / "normalizer.json").write_text(json.dumps({}))
    end = "<|endoftext|>"
    (snap / "special_tokens_map.json").write_text(json.dumps({
        "bos_token": end, "eos_token": end, "pad_token": end, "unk_token": end,
        "additional_special_tokens": sorted(t for t in added if t != end)}))


def _wav2vec2_config(**extra):
    from transformers import Wav2Vec2Config
    return Wav2Vec2Config(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
        classifier_proj_size=16, mask_time_prob=0.0, **extra)


def _wav2vec2_extractor():
    from transformers import Wav2Vec2FeatureExtractor
    return Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0,
                                    do_normalize=True, return_attention_mask=False)


@builder("facebook/wav2vec2-base-960h")
def wav2vec2_ctc(snap: Path) -> None:
    """wav2vec2 CTC with a character vocab.json (upper-case letters, apostrophe, '|' as space)."""
    import torch
    from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2ForCTC, Wav2Vec2Processor
    chars = ["<pad>", "<s>", "</s>", "<unk>", "|", "'"] + [chr(c) for c in range(ord("A"), ord("Z") + 1)]
    vocab_file = snap / "vocab.json"
    vocab_file.write_text(json.dumps({c: i for i, c in enumerate(chars)}))
    tokenizer = Wav2Vec2CTCTokenizer(str(vocab_file), word_delimiter_token="|")
    torch.manual_seed(0)
    model = Wav2Vec2ForCTC(_wav2vec2_config(vocab_size=len(chars), pad_token_id=0)).eval()
    model.save_pretrained(snap)
    Wav2Vec2Processor(feature_extractor=_wav2vec2_extractor(), tokenizer=tokenizer).save_pretrained(snap)


@builder("superb/wav2vec2-base-superb-ks")
def wav2vec2_keywords(snap: Path) -> None:
    """wav2vec2 sequence classification over the Speech Commands keywords."""
    import torch
    from transformers import Wav2Vec2ForSequenceClassification
    torch.manual_seed(0)
    config = _wav2vec2_config(id2label=dict(enumerate(KS_LABELS)), label2id={name: i for i, name in enumerate(KS_LABELS)})
    Wav2Vec2ForSequenceClassification(config).eval().save_pretrained(snap)
    _wav2vec2_extractor().save_pretrained(snap)


@builder("MIT/ast-finetuned-audioset-10-10-0.4593")
def ast(snap: Path) -> None:
    """Audio Spectrogram Transformer with few mel bins and a short max_length."""
    import torch
    from transformers import ASTConfig, ASTFeatureExtractor, ASTForAudioClassification
    labels = ("Speech", "Music", "Dog", "Silence", "Sine wave")
    torch.manual_seed(0)
    config = ASTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                       num_mel_bins=16, max_length=64, patch_size=16, frequency_stride=16, time_stride=16,
                       id2label=dict(enumerate(labels)), label2id={name: i for i, name in enumerate(labels)})
    ASTForAudioClassification(config).eval().save_pretrained(snap)
    ASTFeatureExtractor(num_mel_bins=16, max_length=64, sampling_rate=16000).save_pretrained(snap)


@builder("facebook/mms-tts-eng")
def mms_tts(snap: Path) -> None:
    """VITS whose character vocabulary covers letters, digits, space and common punctuation."""
    import torch
    from transformers import VitsConfig, VitsModel, VitsTokenizer
    chars = ["_"] + list("abcdefghijklmnopqrstuvwxyz0123456789 .,!?'-:;")
    vocab_file = snap / "vocab.json"
    vocab_file.write_text(json.dumps({c: i for i, c in enumerate(chars)}))
    tokenizer = VitsTokenizer(str(vocab_file), pad_token="_", unk_token="_", language="eng",
                              add_blank=True, normalize=True, phonemize=False)
    torch.manual_seed(0)
    config = VitsConfig(
        vocab_size=len(chars), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, ffn_dim=32,
        flow_size=16, spectrogram_bins=33, upsample_initial_channel=16, upsample_rates=(8, 8, 4),
        upsample_kernel_sizes=(16, 16, 8), resblock_kernel_sizes=(3,), resblock_dilation_sizes=((1, 3),),
        depth_separable_num_layers=1, duration_predictor_num_flows=1, duration_predictor_filter_channels=16,
        prior_encoder_num_flows=1, prior_encoder_num_wavenet_layers=1, posterior_encoder_num_wavenet_layers=1,
        sampling_rate=16000)
    VitsModel(config).eval().save_pretrained(snap)
    tokenizer.save_pretrained(snap)


DIA_DELAYS = [0, 8, 9, 10, 11, 12, 13, 14, 15]   # the real repo's delay pattern: 9 DAC codebooks


@builder("nari-labs/Dia-1.6B-0626")
def dia(snap: Path) -> None:
    """Dia as the real repo ships it: the byte tokenizer with [S1]/[S2] (tokenizer_config.json,
    special_tokens_map.json), DiaFeatureExtractor (preprocessor_config.json), sharded safetensors with
    their index, the sampling generation_config, and audio_tokenizer_config.json naming the DAC repo."""
    import torch
    from transformers import (
        DiaConfig,
        DiaDecoderConfig,
        DiaEncoderConfig,
        DiaFeatureExtractor,
        DiaForConditionalGeneration,
        DiaTokenizer,
        GenerationConfig,
    )
    torch.manual_seed(0)
    config = DiaConfig(
        encoder_config=DiaEncoderConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                        num_attention_heads=2, num_key_value_heads=2, head_dim=8, vocab_size=256),
        decoder_config=DiaDecoderConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                        num_attention_heads=2, num_key_value_heads=1, head_dim=8,
                                        cross_num_attention_heads=2, cross_num_key_value_heads=2, cross_head_dim=8,
                                        cross_hidden_size=16, num_channels=len(DIA_DELAYS), vocab_size=1028),
        delay_pattern=DIA_DELAYS, architectures=["DiaForConditionalGeneration"])
    model = DiaForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(
        bos_token_id=1026, eos_token_id=1024, pad_token_id=1025, do_sample=True, guidance_scale=3.0,
        max_length=3072, temperature=1.8, top_k=45, top_p=0.95)
    model.save_pretrained(snap, max_shard_size="700KB")    # two shards and an index, as the real repo
    DiaTokenizer().save_pretrained(snap)
    pad = {"content": "<pad>", "lstrip": False, "normalized": True, "rstrip": False, "single_word": False}
    (snap / "special_tokens_map.json").write_text(json.dumps({"pad_token": pad, "unk_token": pad}, indent=2))
    extractor = DiaFeatureExtractor(feature_size=1, sampling_rate=44100, hop_length=512)
    extractor.save_pretrained(snap)
    settings = json.loads((snap / "preprocessor_config.json").read_text())
    settings["processor_class"] = "DiaProcessor"   # the real file names its processor (243 bytes)
    (snap / "preprocessor_config.json").write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")
    (snap / "audio_tokenizer_config.json").write_text(json.dumps(
        {"audio_tokenizer_class": "DacModel", "audio_tokenizer_name_or_path": "descript/dac_44khz"}, indent=2))


@builder("descript/dac_44khz")
def dac_44khz(snap: Path) -> None:
    """The DAC codec Dia decodes through: 9 codebooks of 1024 codes, 512 samples per frame at 44.1 kHz."""
    import torch
    from transformers import DacConfig, DacFeatureExtractor, DacModel
    torch.manual_seed(0)
    config = DacConfig(encoder_hidden_size=2, downsampling_ratios=[2, 4, 8, 8], decoder_hidden_size=16,
                       n_codebooks=9, codebook_size=1024, codebook_dim=8, sampling_rate=44100)
    DacModel(config).eval().save_pretrained(snap)
    DacFeatureExtractor(feature_size=1, sampling_rate=44100, hop_length=512).save_pretrained(snap)


@builder("microsoft/speecht5_vc")
def speecht5_vc(snap: Path) -> None:
    """SpeechT5 speech-to-speech; only the feature extractor is needed to feed it audio."""
    import torch
    from transformers import SpeechT5Config, SpeechT5FeatureExtractor, SpeechT5ForSpeechToSpeech
    torch.manual_seed(0)
    config = SpeechT5Config(
        vocab_size=32, hidden_size=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, conv_dim=(16,) * 7,
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, speech_decoder_prenet_units=16,
        speech_decoder_postnet_units=16, speech_decoder_postnet_layers=2, speaker_embedding_dim=24,
        num_mel_bins=80, reduction_factor=2, mask_time_prob=0.0)
    SpeechT5ForSpeechToSpeech(config).eval().save_pretrained(snap)
    SpeechT5FeatureExtractor(sampling_rate=16000, num_mel_bins=80).save_pretrained(snap)


@builder("microsoft/speecht5_hifigan")
def speecht5_hifigan(snap: Path) -> None:
    """HiFi-GAN vocoder: 80 mel bins in, 256 samples out per frame at 16 kHz."""
    import torch
    from transformers import SpeechT5HifiGan, SpeechT5HifiGanConfig
    torch.manual_seed(0)
    config = SpeechT5HifiGanConfig(model_in_dim=80, sampling_rate=16000, upsample_initial_channel=16,
                                   upsample_rates=(4, 4, 4, 4), upsample_kernel_sizes=(8, 8, 8, 8),
                                   resblock_kernel_sizes=(3,), resblock_dilation_sizes=((1, 3),))
    SpeechT5HifiGan(config).eval().save_pretrained(snap)
