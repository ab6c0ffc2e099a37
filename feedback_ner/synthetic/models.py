"""Tiny local models: a tokenizer trained on a corpus plus a small random ``*ForTokenClassification``.

Tests, the demo and the benchmarks need real model folders of each architecture family without the Hub. Each
tokenizer is trained with the ``tokenizers`` library through the normaliser and pre-tokeniser of the transformers
class that loads it, and is saved as that class, so a tiny folder handles offsets, special tokens and whitespace the
way a pretrained checkpoint loaded by that class does under the installed transformers:

- ``longformer``: byte-level BPE, ``<s> </s> <pad> <unk> <mask>`` (``RobertaTokenizer``); offsets exclude the
  leading space, and newlines are tokens of their own.
- ``bigbird``: the same byte-level BPE (``RobertaTokenizer`` recorded as ``tokenizer_class``). The real
  ``google/bigbird-roberta-base`` ships a SentencePiece vocabulary (``BigBirdTokenizer``) instead.
- ``deberta-v2``: Unigram with Metaspace, ``[CLS] [SEP] [PAD] [UNK] [MASK]`` (``DebertaV2Tokenizer``); offsets of a
  word's first token include the one whitespace character before it.
- ``bert``: lower-cased WordPiece (``BertTokenizer``); no whitespace in any offset.
- ``modernbert``: byte-level BPE with ``[CLS] [SEP] [PAD] [UNK] [MASK]`` and a ``[CLS] $A [SEP]`` template, saved as
  ``PreTrainedTokenizerFast`` as ``answerdotai/ModernBERT-*`` is; no prefix space (word-split input would need
  ``add_prefix_space=True``; this package tokenises whole essays and maps tokens to words by offsets), newlines are
  tokens. The model alternates sliding-window (128) and global attention (every third layer) like the real one.

Command: ``python -m feedback_ner.tiny --arch longformer --corpus DIR --out DIR [--seed S]``.
"""

from __future__ import annotations

import json
import logging
import string
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
from tokenizers.decoders import ByteLevel as ByteLevelDecoder
from transformers import (
    BertConfig,
    BertForTokenClassification,
    BertTokenizer,
    BigBirdConfig,
    BigBirdForTokenClassification,
    DebertaV2Config,
    DebertaV2ForTokenClassification,
    DebertaV2Tokenizer,
    LongformerConfig,
    LongformerForTokenClassification,
    ModernBertConfig,
    ModernBertForTokenClassification,
    PretrainedConfig,
    PreTrainedModel,
    RobertaTokenizer,
)
from transformers.tokenization_utils_tokenizers import TokenizersBackend

from feedback_ner.errors import FeedbackError
from feedback_ner.labels import ID2LABEL, LABEL2ID, NUM_LABELS
from feedback_ner.texts import essay_files, read_text

logger = logging.getLogger("feedback_ner.synthetic.models")

ARCHS: tuple[str, ...] = ("longformer", "bigbird", "deberta-v2", "bert", "modernbert")
DEFAULT_VOCAB_SIZE = 4096
# Long enough for 4,096-token windows, the longest the package trains or predicts with.
MAX_TOKENS = 4096

# Small enough that a forward+backward pass on 1,024 tokens takes a fraction of a second on 2 CPU cores.
_HIDDEN = 64
_LAYERS = 2
_HEADS = 2
_INTERMEDIATE = 4 * _HIDDEN

_ROBERTA_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")  # RoBERTa's id order: <s>=0, <pad>=1, </s>=2
_DEBERTA_SPECIALS = ("[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]")  # DeBERTa-v3's id order
_BERT_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
_MODERNBERT_SPECIALS = ("[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]")
# Unigram and WordPiece have no byte fallback: seed them with the printable ASCII characters so that text the
# small corpus lacks maps to characters rather than to [UNK] (BERT's normaliser lower-cases them).
_ALPHABET = [c for c in string.printable if not c.isspace()]


@dataclass(frozen=True)
class _Arch:
    """How one architecture family is built: its tokenizer trainer and its model."""

    train_tokenizer: Callable[[list[str], int], TokenizersBackend]
    make_config: Callable[[TokenizersBackend], PretrainedConfig]
    model_class: type[PreTrainedModel]


def _train_backend(
    template: TokenizersBackend, model: models.Model, trainer: trainers.Trainer, texts: list[str]
) -> Tokenizer:
    """Train ``model`` on ``texts`` through the normaliser and pre-tokeniser of ``template``."""
    backend = Tokenizer(model)
    source = template.backend_tokenizer
    if source.normalizer is not None:
        backend.normalizer = source.normalizer
    backend.pre_tokenizer = source.pre_tokenizer
    backend.train_from_iterator(texts, trainer=trainer)
    return backend


def _normalized_alphabet(template: TokenizersBackend, texts: list[str]) -> list[str]:
    """The sorted non-space characters of ``texts`` after the normaliser of ``template``."""
    normalizer = template.backend_tokenizer.normalizer
    chars: set[str] = set(_ALPHABET)
    for text in texts:
        chars.update(normalizer.normalize_str(text) if normalizer is not None else text)
    return sorted(c for c in chars if not c.isspace())


def _train_byte_bpe(texts: list[str], vocab_size: int) -> TokenizersBackend:
    """RoBERTa-style byte-level BPE (no prefix space, offsets trimmed of the leading space)."""
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(_ROBERTA_SPECIALS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend = _train_backend(RobertaTokenizer(), models.BPE(), trainer, texts)
    model = json.loads(backend.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return RobertaTokenizer(vocab=model["vocab"], merges=merges, add_prefix_space=False, trim_offsets=True)


def _train_unigram(texts: list[str], vocab_size: int) -> TokenizersBackend:
    """DeBERTa-v2/v3-style SentencePiece Unigram with Metaspace (``▁`` marks a preceding space)."""
    template = DebertaV2Tokenizer()
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size,
        special_tokens=list(_DEBERTA_SPECIALS),
        unk_token="[UNK]",
        initial_alphabet=_normalized_alphabet(template, texts),
        show_progress=False,
    )
    backend = _train_backend(template, models.Unigram(), trainer, texts)
    trained = json.loads(backend.to_str())["model"]["vocab"]
    specials = [(piece, 0.0) for piece in _DEBERTA_SPECIALS]  # DebertaV2Tokenizer finds [UNK] by ("[UNK]", 0.0)
    return DebertaV2Tokenizer(vocab=specials + _stable_pieces(trained), do_lower_case=False, split_by_punct=False)


def _stable_pieces(trained: list[list]) -> list[tuple[str, float]]:
    """The trained Unigram pieces (specials left out) with scores and order that do not vary between runs.

    The trainer sums floats in hash-map order (noise in the last digits) and appends the required characters that
    training dropped with scores ``lowest - k * 1e-4`` in hash-map order; rounding, giving those characters one
    score, and breaking ties by piece makes the same corpus always give the same vocabulary.
    """
    pieces = [(str(p), round(float(s), 6)) for p, s in trained if p not in _DEBERTA_SPECIALS]
    lowest = min(s for _, s in pieces)
    chars = sum(len(p) == 1 for p, _ in pieces)
    tail = lowest + 1e-4 * chars + 1e-6
    pieces = [(p, lowest if len(p) == 1 and s <= tail else s) for p, s in pieces]
    return sorted(pieces, key=lambda x: (-x[1], x[0]))


def _train_wordpiece(texts: list[str], vocab_size: int) -> TokenizersBackend:
    """BERT-style lower-cased WordPiece (``##`` continues a word)."""
    template = BertTokenizer()
    alphabet = _normalized_alphabet(template, texts)
    # The trainer gives ids to "##x" pieces in hash-map order, and ids break ties between equally frequent merges;
    # registering every "##x" up front (as the trainer's special tokens) makes the vocabulary reproducible.
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        special_tokens=list(_BERT_SPECIALS) + [f"##{c}" for c in alphabet],
        continuing_subword_prefix="##",
        initial_alphabet=alphabet,
        show_progress=False,
    )
    backend = _train_backend(template, models.WordPiece(unk_token="[UNK]"), trainer, texts)
    return BertTokenizer(vocab=backend.get_vocab(), do_lower_case=True)


def _train_modernbert_bpe(texts: list[str], vocab_size: int) -> TokenizersBackend:
    """ModernBERT-style byte-level BPE (GPT-NeoX/OLMo pre-tokeniser, no prefix space) with BERT special tokens."""
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(_MODERNBERT_SPECIALS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = ByteLevelDecoder()
    backend.train_from_iterator(texts, trainer=trainer)
    cls_id, sep_id = backend.token_to_id("[CLS]"), backend.token_to_id("[SEP]")
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )
    return TokenizersBackend(
        tokenizer_object=backend, cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]", unk_token="[UNK]",
        mask_token="[MASK]", model_input_names=["input_ids", "attention_mask"],
    )


def _common(tokenizer: TokenizersBackend) -> dict:
    """Config fields every tiny model shares."""
    return {
        "vocab_size": len(tokenizer),
        "hidden_size": _HIDDEN,
        "num_hidden_layers": _LAYERS,
        "num_attention_heads": _HEADS,
        "intermediate_size": _INTERMEDIATE,
        "num_labels": NUM_LABELS,
        "id2label": dict(ID2LABEL),
        "label2id": dict(LABEL2ID),
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.cls_token_id,
        "eos_token_id": tokenizer.sep_token_id,
        "sep_token_id": tokenizer.sep_token_id,
    }


def _longformer_config(tokenizer: TokenizersBackend) -> PretrainedConfig:
    # RoBERTa-style positions start at pad_token_id + 1, hence the +2 (allenai/longformer-base-4096 has 4098).
    return LongformerConfig(
        **_common(tokenizer), max_position_embeddings=MAX_TOKENS + 2, attention_window=64, type_vocab_size=1
    )


def _bigbird_config(tokenizer: TokenizersBackend) -> PretrainedConfig:
    # Block-sparse needs inputs longer than (5 + 2 * num_random_blocks) * block_size = 144 tokens, else it falls
    # back to full attention (with a warning), as the real checkpoints do below 704 tokens.
    return BigBirdConfig(
        **_common(tokenizer),
        max_position_embeddings=MAX_TOKENS,
        attention_type="block_sparse",
        block_size=16,
        num_random_blocks=2,
        tokenizer_class="RobertaTokenizer",
    )


def _deberta_config(tokenizer: TokenizersBackend) -> PretrainedConfig:
    # DeBERTa-v3 settings: relative positions only (no absolute embedding), so any length fits.
    return DebertaV2Config(
        **_common(tokenizer),
        max_position_embeddings=MAX_TOKENS,
        relative_attention=True,
        position_buckets=256,
        max_relative_positions=-1,
        pos_att_type=["p2c", "c2p"],
        norm_rel_ebd="layer_norm",
        share_att_key=True,
        position_biased_input=False,
        type_vocab_size=0,
        layer_norm_eps=1e-7,
    )


def _bert_config(tokenizer: TokenizersBackend) -> PretrainedConfig:
    return BertConfig(**_common(tokenizer), max_position_embeddings=MAX_TOKENS)


def _modernbert_config(tokenizer: TokenizersBackend) -> PretrainedConfig:
    # Three layers: two with 128-token sliding-window attention, the third global, as in ModernBERT-base/large.
    common = _common(tokenizer)
    common.update(num_hidden_layers=3, cls_token_id=tokenizer.cls_token_id)
    return ModernBertConfig(
        **common, max_position_embeddings=MAX_TOKENS, local_attention=128, global_attn_every_n_layers=3,
        attn_implementation="sdpa",
    )


_ARCHS: dict[str, _Arch] = {
    "longformer": _Arch(_train_byte_bpe, _longformer_config, LongformerForTokenClassification),
    "bigbird": _Arch(_train_byte_bpe, _bigbird_config, BigBirdForTokenClassification),
    "deberta-v2": _Arch(_train_unigram, _deberta_config, DebertaV2ForTokenClassification),
    "bert": _Arch(_train_wordpiece, _bert_config, BertForTokenClassification),
    "modernbert": _Arch(_train_modernbert_bpe, _modernbert_config, ModernBertForTokenClassification),
}


def corpus_files(corpus_dir: Path) -> list[Path]:
    """The essay files of a Kaggle-layout folder (``train/*.txt`` and ``test/*.txt``), sorted."""
    corpus_dir = Path(corpus_dir)
    files = [f for part in ("train", "test") if (corpus_dir / part).is_dir() for f in essay_files(corpus_dir / part)]
    if not files:
        raise FeedbackError(
            f"{corpus_dir}: no essays found in train/*.txt or test/*.txt; point --corpus at a Kaggle-layout folder "
            "(e.g. one written by `python -m feedback_ner.sample`)"
        )
    return files


def _read_texts(files: list[Path]) -> list[str]:
    """The essays as stored, read as training and prediction read them (:func:`texts.read_text`: a byte-order mark
    dropped or naming UTF-16/32; no newline translation: the tokenizer learns the line ends the corpus has)."""
    return [read_text(path) for path in files]


def build_tiny(arch: str, corpus_dir: Path, out_dir: Path, seed: int = 0, vocab_size: int = DEFAULT_VOCAB_SIZE) -> Path:
    """Train a tokenizer on the corpus texts and save it with a small random token classifier in ``out_dir``.

    The same ``arch``, corpus, ``seed`` and ``vocab_size`` give the same tokenizer and identical weights. The folder
    loads offline with ``AutoTokenizer`` / ``AutoModelForTokenClassification.from_pretrained(out_dir)``.
    """
    if arch not in _ARCHS:
        raise FeedbackError(f"unknown arch {arch!r}; choose one of: {', '.join(ARCHS)}")
    if vocab_size < 256 + len(_ROBERTA_SPECIALS):
        raise FeedbackError(f"--vocab-size {vocab_size} is too small; byte-level BPE needs at least 261 (use ~4096)")
    spec = _ARCHS[arch]
    files = corpus_files(corpus_dir)
    tokenizer = spec.train_tokenizer(_read_texts(files), vocab_size)
    tokenizer.model_max_length = MAX_TOKENS
    config = spec.make_config(tokenizer)
    torch.manual_seed(seed)
    model = spec.model_class(config)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(out_dir)
    model.save_pretrained(out_dir)
    n_params = sum(p.numel() for p in model.parameters())
    logger.info("tiny %s: %d essays, vocab %d, %d parameters", arch, len(files), len(tokenizer), n_params)
    return out_dir
