"""Tiny local models: they reload offline as the right classes, tokenise with usable offsets, train and reproduce."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForTokenClassification, AutoTokenizer

from feedback_ner.cli import main as cli_main
from feedback_ner.errors import FeedbackError
from feedback_ner.labels import ID2LABEL, LABEL2ID, NUM_LABELS, split_words
from feedback_ner.synthetic.models import ARCHS, build_tiny
from feedback_ner.tiny import main

EXPECTED = {
    # arch: (tokenizer class, model class, first special, last special)
    "longformer": ("RobertaTokenizer", "LongformerForTokenClassification", "<s>", "</s>"),
    "bigbird": ("RobertaTokenizer", "BigBirdForTokenClassification", "<s>", "</s>"),
    "deberta-v2": ("DebertaV2Tokenizer", "DebertaV2ForTokenClassification", "[CLS]", "[SEP]"),
    "bert": ("BertTokenizer", "BertForTokenClassification", "[CLS]", "[SEP]"),
    "modernbert": ("TokenizersBackend", "ModernBertForTokenClassification", "[CLS]", "[SEP]"),
}


def _essays(corpus_dir: Path, n: int = 5) -> list[str]:
    return [p.read_text(encoding="utf-8") for p in sorted((corpus_dir / "train").glob("*.txt"))[:n]]


@pytest.mark.parametrize("arch", ARCHS)
def test_reloads_as_the_family_classes(tiny_models, arch: str) -> None:
    folder = tiny_models(arch)
    tok_class, model_class, first, last = EXPECTED[arch]
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForTokenClassification.from_pretrained(folder)
    assert tokenizer.is_fast
    assert type(tokenizer).__name__ == tok_class
    assert type(model).__name__ == model_class
    assert model.config.num_labels == NUM_LABELS
    assert model.config.id2label == ID2LABEL
    assert model.config.label2id == LABEL2ID
    assert model.config.vocab_size == len(tokenizer)
    assert model.config.pad_token_id == tokenizer.pad_token_id
    assert 1000 < len(tokenizer) <= 4096 + 5
    tokens = tokenizer.convert_ids_to_tokens(tokenizer("students should write")["input_ids"])
    assert (tokens[0], tokens[-1]) == (first, last)
    assert tokenizer.unk_token not in tokens
    if arch == "bigbird":
        assert model.config.attention_type == "block_sparse"


@pytest.mark.parametrize("arch", ARCHS)
def test_tokens_stay_inside_words_and_cover_them(tiny_models, corpus_dir: Path, arch: str) -> None:
    """What the word alignment relies on: a token's text (whitespace aside) lies in one word; words are covered."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_models(arch))
    for text in _essays(corpus_dir) + ["Hello  world\n\nfoo", " Leading\tand trailing \n"]:
        words, starts, ends = split_words(text)
        enc = tokenizer(text, return_offsets_mapping=True)
        covered = [False] * len(text)
        for token_id, (s, e) in zip(enc["input_ids"], enc["offset_mapping"]):
            if token_id in tokenizer.all_special_ids or s == e:
                continue
            piece = text[s:e]
            s += len(piece) - len(piece.lstrip())  # DeBERTa-v2 offsets include the preceding whitespace character
            e -= len(piece) - len(piece.rstrip())
            if s >= e:
                continue  # a whitespace-only token (byte-level BPE newlines): it belongs to no word
            word = int(np.searchsorted(starts, s, side="right")) - 1  # the last word starting at or before s
            assert word >= 0 and e <= ends[word], f"{arch}: token {piece!r} at {s}:{e} is not inside one word"
            covered[s:e] = [True] * (e - s)
        for w, s, e in zip(words, starts, ends):
            assert all(covered[s:e]), f"{arch}: word {w!r} at {s}:{e} not covered by tokens"


@pytest.fixture
def one_thread():
    """Torch on one thread: two threads spin-wait badly when other processes share the 2 cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("arch", ARCHS)
def test_trains_on_a_long_sequence(tiny_models, corpus_dir: Path, arch: str, one_thread) -> None:
    folder = tiny_models(arch)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForTokenClassification.from_pretrained(folder)
    text = "\n\n".join(_essays(corpus_dir, 40))
    ids = tokenizer(text, truncation=True, max_length=1500)["input_ids"]
    assert len(ids) == 1500, "the sample corpus is too short for a 1,500-token input"
    input_ids = torch.tensor([ids])
    labels = torch.randint(0, NUM_LABELS, input_ids.shape, generator=torch.Generator().manual_seed(0))
    labels[0, 0] = -100
    model.train()
    out = model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), labels=labels)
    assert out.logits.shape == (1, 1500, NUM_LABELS)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    grads = {name: p.grad for name, p in model.named_parameters() if p.requires_grad}
    assert all(g is None or torch.isfinite(g).all() for g in grads.values())
    assert grads["classifier.weight"].abs().sum() > 0
    embeddings = [g for name, g in grads.items() if "word_embeddings" in name or "tok_embeddings" in name]
    assert embeddings and embeddings[0].abs().sum() > 0


@pytest.mark.parametrize("arch", ARCHS)
def test_same_seed_same_model(tiny_models, corpus_dir: Path, tmp_path: Path, arch: str) -> None:
    reference = tiny_models(arch)  # built with seed 0
    again = build_tiny(arch, corpus_dir, tmp_path / "again", seed=0)
    other = build_tiny(arch, corpus_dir, tmp_path / "other", seed=1)
    assert (again / "tokenizer.json").read_bytes() == (reference / "tokenizer.json").read_bytes()
    ref_weights, same, different = (load_file(d / "model.safetensors") for d in (reference, again, other))
    assert ref_weights.keys() == same.keys()
    assert all(torch.equal(ref_weights[k], same[k]) for k in ref_weights)
    assert not all(torch.equal(ref_weights[k], different[k]) for k in ref_weights)


@pytest.mark.parametrize("entry", ["module", "feedback-ner"])
def test_cli_help(entry: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"]) if entry == "module" else cli_main(["tiny", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--arch", "--corpus", "--out", "--seed", "--vocab-size", "deberta-v2"):
        assert flag in out


def test_cli_builds_a_folder(corpus_dir: Path, tmp_path: Path, capsys) -> None:
    assert main(["--arch", "bert", "--corpus", str(corpus_dir), "--out", str(tmp_path / "m"), "--seed", "3"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "m")
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= {
        p.name for p in (tmp_path / "m").iterdir()
    }


def test_cli_empty_corpus_is_a_clear_error(tmp_path: Path, capsys) -> None:
    assert main(["--arch", "bert", "--corpus", str(tmp_path), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path) in err and "train/*.txt" in err
    assert not (tmp_path / "m").exists()


def test_unknown_arch_is_rejected(corpus_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(FeedbackError, match="unknown arch 'gpt2'.*longformer"):
        build_tiny("gpt2", corpus_dir, tmp_path / "m")
