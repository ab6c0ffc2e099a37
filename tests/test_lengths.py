"""The max_length advisor (issue 15): its window counts are the windows tokenize_windows cuts."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import run_cli
from transformers import AutoTokenizer

from feedback_ner.texts import load_texts
from feedback_ner.tokenlengths import length_quantiles, summary, token_lengths
from feedback_ner.windows import tokenize_windows
from feedback_ner.wordtable import test_word_table as word_table


@pytest.mark.parametrize("arch,max_length,stride,keep_newlines", [
    ("bert", 128, 32, False), ("bert", 256, 64, True), ("longformer", 200, 50, False), ("longformer", 512, 128, False),
])
def test_window_counts_agree_with_tokenize_windows(corpus_dir, tiny_models, arch, max_length, stride, keep_newlines):
    tokenizer = AutoTokenizer.from_pretrained(tiny_models(arch))
    texts = load_texts(corpus_dir / "train")
    tl = token_lengths(arch, tokenizer, texts, keep_newlines=keep_newlines)
    ds = tokenize_windows(word_table(texts), tokenizer, max_length, stride, keep_newlines=keep_newlines)
    cut = np.bincount(np.asarray(ds["essay_index"]), minlength=len(texts))
    np.testing.assert_array_equal(tl.windows(max_length, stride), cut)
    # the lengths of the windows it cuts: the padding share is measured on them
    window_lengths = np.array([len(x) for x in ds["input_ids"]])
    assert tl.padding_share(max_length, stride) == pytest.approx(1 - window_lengths.sum() / (len(ds) * max_length))
    row = summary([tl], [max_length], stride).iloc[0]
    assert row["windows"] == len(ds)
    assert row["coverage"] == pytest.approx(float((cut == 1).mean()))  # fits in one window


def test_quantiles_cover_their_share(corpus_dir, tiny_models):
    tokenizer = AutoTokenizer.from_pretrained(tiny_models("bert"))
    tl = token_lengths("bert", tokenizer, load_texts(corpus_dir / "train"))
    q = length_quantiles([tl]).iloc[0]
    for share in (90, 95, 99):
        assert (tl.total <= q[f"covers_{share}%"]).mean() >= share / 100
        assert (tl.total < q[f"covers_{share}%"]).mean() < share / 100


def test_lengths_command(corpus_dir, tiny_models, tmp_path):
    png = tmp_path / "lengths.png"
    done = run_cli("feedback_ner.lengths", "--data", str(corpus_dir), "--model", str(tiny_models("bert")),
                   str(tiny_models("longformer")), "--png", str(png), "--lengths", "256", "512", "1024")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "covers_95%" in done.stdout and "padding_share" in done.stdout
    # one row in the quantile table and one per length in the cost table
    assert done.stdout.count("\nbert ") == 4 and done.stdout.count("\nlongformer ") == 4
    assert png.is_file() and png.stat().st_size > 5_000
