"""Tiny text models under the real Hub ids the catalog ranks first, for the text runners' tests.

Tokenizers are trained on a few sentences (WordPiece, byte-level BPE, Unigram, SentencePiece for
Marian); models are random 1-2 layer configs; tabular models are scikit-learn saved with skops.
"""
from __future__ import annotations

import json
from pathlib import Path

from . import builder

SENTENCES = [
    "Hugging Face is a company based in New York City and Paris.",
    "My name is Clara and I live in Berkeley, California.",
    "The quick brown fox jumps over the lazy dog.",
    "What is the capital of France? Paris is the capital of France.",
    "This movie was wonderful, I loved every minute of it.",
    "The weather today is terrible and I feel sad.",
    "Translate English to German: the house is wonderful.",
    "Summarize: the cat sat on the mat while the dog slept by the fire.",
    "Le chat est sur la table. La maison est grande et belle.",
    "Das Haus ist wunderbar. Der Hund schläft.",
    "El perro duerme en la casa. 我爱巴黎。",
    "Hello, how are you? I am fine, thank you very much!",
    "Numbers 0 1 2 3 4 5 6 7 8 9 and symbols - , . ; : ' \" ( ) ? !",
]
NER_LABELS = ["O", "B-MISC", "I-MISC", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]


def _seed() -> None:
    import torch
    torch.manual_seed(0)


# -- tokenizers ---------------------------------------------------------------

def _wordpiece(lowercase: bool):
    """A BERT WordPiece tokenizer trained on SENTENCES."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertTokenizer

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(SENTENCES, trainers.WordPieceTrainer(vocab_size=300, special_tokens=specials))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    tok.decoder = decoders.WordPiece()
    return BertTokenizer(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                         sep_token="[SEP]", mask_token="[MASK]", do_lower_case=lowercase, model_max_length=64)


def _byte_bpe(specials: list[str], cls_name: str, bart: bool = False, **kwargs):
    """A byte-level BPE tokenizer (GPT-2, BART style) trained on SENTENCES."""
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(SENTENCES, trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    if bart:
        tok.post_processor = processors.RobertaProcessing(("</s>", tok.token_to_id("</s>")),
                                                          ("<s>", tok.token_to_id("<s>")))
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return getattr(transformers, cls_name)(tokenizer_object=tok, **kwargs)


def _save_wordpiece(tokenizer, snap: Path) -> None:
    """The tokenizer as BERT-family repos ship it: tokenizer.json and tokenizer_config.json, plus the
    vocab.txt and special_tokens_map.json that transformers 5 no longer writes itself."""
    tokenizer.save_pretrained(snap)
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    (snap / "vocab.txt").write_text("".join(token + "\n" for token, _ in vocab), encoding="utf-8")
    (snap / "special_tokens_map.json").write_text(json.dumps(
        {k: getattr(tokenizer, k) for k in ("cls_token", "mask_token", "pad_token", "sep_token", "unk_token")}))


# -- encoders -----------------------------------------------------------------

def _bert_config(cls_name: str, tokenizer, **kwargs):
    import transformers
    return getattr(transformers, cls_name)(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64, pad_token_id=0, **kwargs)


@builder("dslim/bert-base-NER")
def ner(snap: Path) -> None:
    from transformers import BertForTokenClassification
    _seed()
    tokenizer = _wordpiece(lowercase=False)
    config = _bert_config("BertConfig", tokenizer, id2label=dict(enumerate(NER_LABELS)),
                          label2id={label: i for i, label in enumerate(NER_LABELS)})
    BertForTokenClassification(config).save_pretrained(snap)
    _save_wordpiece(tokenizer, snap)


def _distilbert_config(tokenizer, **kwargs):
    from transformers import DistilBertConfig
    return DistilBertConfig(vocab_size=len(tokenizer), dim=32, n_layers=1, n_heads=2, hidden_dim=64,
                            max_position_embeddings=64, pad_token_id=0, **kwargs)


@builder("distilbert/distilbert-base-uncased-finetuned-sst-2-english")
def sst2(snap: Path) -> None:
    from transformers import DistilBertForSequenceClassification
    _seed()
    tokenizer = _wordpiece(lowercase=True)
    config = _distilbert_config(tokenizer, id2label={0: "NEGATIVE", 1: "POSITIVE"},
                                label2id={"NEGATIVE": 0, "POSITIVE": 1})
    DistilBertForSequenceClassification(config).save_pretrained(snap)
    _save_wordpiece(tokenizer, snap)


@builder("distilbert/distilbert-base-cased-distilled-squad")
def squad(snap: Path) -> None:
    from transformers import DistilBertForQuestionAnswering
    _seed()
    tokenizer = _wordpiece(lowercase=False)
    DistilBertForQuestionAnswering(_distilbert_config(tokenizer)).save_pretrained(snap)
    _save_wordpiece(tokenizer, snap)


def _sentence_transformers_files(snap: Path, max_seq_length: int) -> None:
    """sentence-transformers' modules beside a 32-wide encoder: the Transformer, mean pooling, Normalize."""
    (snap / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]))
    (snap / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": max_seq_length,
                                                                "do_lower_case": False}))
    (snap / "1_Pooling").mkdir(exist_ok=True)
    (snap / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": 32, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True}))


@builder("sentence-transformers/all-MiniLM-L6-v2")
def minilm(snap: Path) -> None:
    from transformers import BertModel
    _seed()
    tokenizer = _wordpiece(lowercase=True)
    BertModel(_bert_config("BertConfig", tokenizer)).save_pretrained(snap)
    tokenizer.save_pretrained(snap)
    _sentence_transformers_files(snap, max_seq_length=32)


# -- decoders and seq2seq -----------------------------------------------------

@builder("openai-community/gpt2")
def gpt2(snap: Path) -> None:
    from transformers import GPT2Config, GPT2LMHeadModel
    _seed()
    tokenizer = _byte_bpe(["<|endoftext|>"], "GPT2Tokenizer", bos_token="<|endoftext|>",
                          eos_token="<|endoftext|>", unk_token="<|endoftext|>", model_max_length=64)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=64, n_embd=32, n_layer=1, n_head=2,
                        bos_token_id=0, eos_token_id=0)
    GPT2LMHeadModel(config).save_pretrained(snap)
    tokenizer.save_pretrained(snap)


@builder("facebook/bart-large-cnn")
def bart(snap: Path) -> None:
    from transformers import BartConfig, BartForConditionalGeneration, GenerationConfig
    _seed()
    tokenizer = _byte_bpe(["<s>", "<pad>", "</s>", "<unk>", "<mask>"], "BartTokenizer", bart=True,
                          bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
                          mask_token="<mask>", sep_token="</s>", cls_token="<s>")
    config = BartConfig(vocab_size=len(tokenizer), d_model=32, encoder_layers=1, decoder_layers=1,
                        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64,
                        decoder_ffn_dim=64, max_position_embeddings=64, bos_token_id=0, pad_token_id=1,
                        eos_token_id=2, decoder_start_token_id=2, forced_bos_token_id=0)
    model = BartForConditionalGeneration(config)
    model.generation_config = GenerationConfig(bos_token_id=0, pad_token_id=1, eos_token_id=2,
                                               decoder_start_token_id=2, forced_bos_token_id=0,
                                               forced_eos_token_id=2, num_beams=2, min_length=5,
                                               max_length=40, no_repeat_ngram_size=3, length_penalty=2.0)
    model.save_pretrained(snap)
    tokenizer.save_pretrained(snap)
    bpe = json.loads((snap / "tokenizer.json").read_text(encoding="utf-8"))["model"]  # the repo's vocab.json/merges.txt
    (snap / "vocab.json").write_text(json.dumps(bpe["vocab"], ensure_ascii=False), encoding="utf-8")
    merges = [m if isinstance(m, str) else " ".join(m) for m in bpe["merges"]]
    (snap / "merges.txt").write_text("#version: 0.2\n" + "".join(m + "\n" for m in merges), encoding="utf-8")


@builder("google/flan-t5-base")
def flan_t5(snap: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import GenerationConfig, T5Config, T5ForConditionalGeneration, T5Tokenizer
    _seed()
    trainer_tok = Tokenizer(models.Unigram())
    trainer_tok.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer_tok.train_from_iterator(SENTENCES, trainers.UnigramTrainer(
        vocab_size=250, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>"))
    vocab = json.loads(trainer_tok.to_str())["model"]["vocab"]
    tokenizer = T5Tokenizer(vocab=[tuple(v) for v in vocab], extra_ids=0)
    config = T5Config(vocab_size=len(tokenizer), d_model=32, d_kv=16, d_ff=64, num_layers=1,
                      num_decoder_layers=1, num_heads=2, relative_attention_num_buckets=8,
                      pad_token_id=0, eos_token_id=1, decoder_start_token_id=0, feed_forward_proj="gated-gelu",
                      tie_word_embeddings=False)
    model = T5ForConditionalGeneration(config)
    model.generation_config = GenerationConfig(pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    model.save_pretrained(snap)
    tokenizer.save_pretrained(snap)


@builder("Helsinki-NLP/opus-mt-en-fr", "Helsinki-NLP/opus-mt-en-de", "Helsinki-NLP/opus-mt-en-es",
         "Helsinki-NLP/opus-mt-mul-en")
def marian(snap: Path, targets: tuple[str, ...] = ()) -> None:
    import io

    import sentencepiece as spm
    from transformers import MarianConfig, MarianMTModel, MarianTokenizer
    _seed()
    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(SENTENCES * 4), model_writer=buffer, vocab_size=120,
                                   model_type="unigram", character_coverage=1.0, minloglevel=2,
                                   pad_id=-1, bos_id=-1, eos_id=1, unk_id=2, hard_vocab_limit=False)
    (snap / "source.spm").write_bytes(buffer.getvalue())
    (snap / "target.spm").write_bytes(buffer.getvalue())
    processor = spm.SentencePieceProcessor(model_proto=buffer.getvalue())
    pieces = [processor.id_to_piece(i) for i in range(processor.get_piece_size())]
    vocab = {"</s>": 0, "<unk>": 1}
    for piece in pieces:
        vocab.setdefault(piece, len(vocab))
    for token in targets:
        vocab.setdefault(token, len(vocab))
    vocab["<pad>"] = len(vocab)
    (snap / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    tokenizer = MarianTokenizer(str(snap / "source.spm"), str(snap / "target.spm"), str(snap / "vocab.json"),
                                model_max_length=512)
    tokenizer.save_pretrained(snap)
    pad = vocab["<pad>"]
    config = MarianConfig(vocab_size=len(vocab), d_model=32, encoder_layers=1, decoder_layers=1,
                          encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64,
                          decoder_ffn_dim=64, max_position_embeddings=64, pad_token_id=pad, eos_token_id=0,
                          decoder_start_token_id=pad, forced_eos_token_id=0, bad_words_ids=[[pad]])
    model = MarianMTModel(config)
    model.save_pretrained(snap)


@builder("Helsinki-NLP/opus-mt-en-zh")
def marian_en_zh(snap: Path) -> None:
    """opus-mt-en-zh is multi-target: its vocabulary holds the >>cmn_Hans<< style tokens it must be given."""
    marian(snap, targets=(">>cmn_Hans<<", ">>cmn_Hant<<", ">>yue_Hant<<", ">>zho_Hans<<"))


@builder("facebook/nllb-200-distilled-600M")
def nllb(snap: Path) -> None:
    """NLLB-200 as its repo ships it: M2M100ForConditionalGeneration (model_type m2m_100) in
    pytorch_model.bin, a SentencePiece BPE model plus its fast tokenizer.json with the 202 FLORES-200
    language codes as special tokens (src_lang eng_Latn), special_tokens_map.json and the repo's
    generation_config fields."""
    import io

    import sentencepiece as spm
    import torch
    from transformers import GenerationConfig, M2M100Config, M2M100ForConditionalGeneration, NllbTokenizer
    from transformers.models.nllb.tokenization_nllb import FAIRSEQ_LANGUAGE_CODES
    _seed()
    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(SENTENCES * 4), model_writer=buffer, vocab_size=200,
                                   model_type="bpe", character_coverage=1.0, minloglevel=2, hard_vocab_limit=False)
    (snap / "sentencepiece.bpe.model").write_bytes(buffer.getvalue())
    codes = list(FAIRSEQ_LANGUAGE_CODES)
    tokenizer = NllbTokenizer.from_pretrained(str(snap), extra_special_tokens=codes, src_lang="eng_Latn",
                                              model_max_length=1024)
    tokenizer.save_pretrained(snap)
    specials = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "sep_token": "</s>",
                "pad_token": "<pad>", "cls_token": "<s>", "mask_token": "<mask>", "additional_special_tokens": codes}
    (snap / "special_tokens_map.json").write_text(json.dumps(specials))
    config = M2M100Config(vocab_size=len(tokenizer), d_model=32, encoder_layers=1, decoder_layers=1,
                          encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64,
                          decoder_ffn_dim=64, max_position_embeddings=1024, scale_embedding=True, bos_token_id=0,
                          pad_token_id=1, eos_token_id=2, decoder_start_token_id=2, tokenizer_class="NllbTokenizer",
                          architectures=["M2M100ForConditionalGeneration"])
    model = M2M100ForConditionalGeneration(config).eval()
    config.save_pretrained(snap)
    GenerationConfig(bos_token_id=0, pad_token_id=1, eos_token_id=2, decoder_start_token_id=2,
                     max_length=200).save_pretrained(snap)
    torch.save(model.state_dict(), snap / "pytorch_model.bin")


# -- tabular (scikit-learn + skops) -------------------------------------------

WINE_COLUMNS = ["fixed_acidity", "volatile_acidity", "alcohol"]


def _tabular_config(snap: Path, filename: str, fmt: str | None) -> None:
    sklearn = {"columns": WINE_COLUMNS, "model": {"file": filename}, "task": "tabular-classification",
               "example_input": {c: [1.0, 2.0] for c in WINE_COLUMNS}}
    if fmt:
        sklearn["model_format"] = fmt
    (snap / "config.json").write_text(json.dumps({"sklearn": sklearn}))


def _wine_model():
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    rng = np.random.default_rng(0)
    features = rng.normal(size=(60, len(WINE_COLUMNS)))
    labels = np.where(features[:, 2] > 0.3, 7, np.where(features[:, 0] > 0, 6, 5))
    import pandas as pd
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=200)).fit(
        pd.DataFrame(features, columns=WINE_COLUMNS), labels)


def _skops_builder(filename: str):
    """A builder saving the wine model in skops' safe format as `filename`, config.json naming it."""
    def build(snap: Path) -> None:
        import skops.io
        skops.io.dump(_wine_model(), snap / filename)
        _tabular_config(snap, filename, "skops")
    return build


builder("scikit-learn/tabular-playground")(_skops_builder("skops-model.skops"))
# the real BenjaminB repo ships config.json and model.skops
builder("BenjaminB/test-skops-card-creator-02")(_skops_builder("model.skops"))


@builder("julien-c/wine-quality")
def tabular_pickle(snap: Path) -> None:
    import joblib
    joblib.dump(_wine_model(), snap / "sklearn_model.joblib")
    _tabular_config(snap, "sklearn_model.joblib", None)


@builder("intfloat/multilingual-e5-small")
def multilingual_e5(snap: Path) -> None:
    """multilingual-e5-small as its repo ships it: a BertModel whose config and tokenizer_config name
    XLMRobertaTokenizer (a SentencePiece model plus tokenizer.json), sentence-transformers modules with
    mean pooling, weights in model.safetensors."""
    import io

    import sentencepiece as spm
    from transformers import BertModel, XLMRobertaTokenizer
    _seed()
    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(SENTENCES * 4), model_writer=buffer, vocab_size=220,
                                   model_type="unigram", character_coverage=1.0, minloglevel=2, hard_vocab_limit=False)
    (snap / "sentencepiece.bpe.model").write_bytes(buffer.getvalue())
    tokenizer = XLMRobertaTokenizer.from_pretrained(str(snap), model_max_length=512)
    tokenizer.save_pretrained(snap)
    (snap / "special_tokens_map.json").write_text(json.dumps({
        "bos_token": "<s>", "cls_token": "<s>", "eos_token": "</s>", "mask_token": "<mask>", "pad_token": "<pad>",
        "sep_token": "</s>", "unk_token": "<unk>"}))
    config = _bert_config("BertConfig", tokenizer, tokenizer_class="XLMRobertaTokenizer",
                          architectures=["BertModel"])
    config.pad_token_id = tokenizer.pad_token_id
    BertModel(config).save_pretrained(snap)
    _sentence_transformers_files(snap, max_seq_length=512)
