"""Issue 16: ModernBERT (tiny, local), the attn_implementation field and the padding-free option's refusal."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import run_cli, small_config
from test_windows import spans_frame, word_labels_from_windows
from transformers import AutoConfig, AutoModelForTokenClassification, AutoTokenizer

from feedback_ner.config import parse_config
from feedback_ner.corpus import load_train
from feedback_ner.errors import FeedbackError
from feedback_ner.metric import score
from feedback_ner.modeling import build_model, flash_available, pack_inputs
from feedback_ner.tokens import Encoder
from feedback_ner.windows import tokenize_windows
from feedback_ner.wordtable import build_word_table


@pytest.fixture(scope="module")
def modernbert(tiny_models):
    return tiny_models("modernbert")


def test_tiny_modernbert_reloads_with_the_auto_classes(modernbert):
    """``tiny --arch modernbert``: a ModernBERT folder that the Auto classes load, byte-level offsets path on."""
    config = AutoConfig.from_pretrained(modernbert)
    assert config.model_type == "modernbert" and config.global_attn_every_n_layers == 3
    model = AutoModelForTokenClassification.from_pretrained(modernbert)
    assert type(model).__name__ == "ModernBertForTokenClassification"
    tokenizer = AutoTokenizer.from_pretrained(modernbert)
    assert Encoder(tokenizer).byte_lengths is not None  # plain byte-level BPE: offsets from the token bytes


@pytest.mark.parametrize("max_length,stride", [(512, 128), (2048, 256)])
def test_oracle_round_trip_with_the_modernbert_tokenizer(modernbert, corpus_dir, max_length, stride):
    """Window labels taken back to words and decoded give train.csv's predictionstrings exactly (F1 1.0)."""
    table = build_word_table(load_train(corpus_dir))
    gt = pd.read_csv(corpus_dir / "train.csv")
    ds = tokenize_windows(table, AutoTokenizer.from_pretrained(modernbert), max_length, stride)
    word_labels = word_labels_from_windows(ds, table)
    assert all(np.array_equal(got, want) for got, want in zip(word_labels, table["labels"]))
    assert score(spans_frame(table, word_labels), gt).f1 == 1.0


def test_attn_implementation_reaches_the_model(modernbert):
    """``auto`` leaves the choice to transformers (sdpa for ModernBERT without flash-attn); eager is passed on."""
    assert build_model(str(modernbert)).config._attn_implementation == ("flash_attention_2" if flash_available()
                                                                         else "sdpa")
    assert build_model(str(modernbert), attn_implementation="eager").config._attn_implementation == "eager"


def test_pack_inputs_lays_windows_end_to_end():
    """Padding-free layout: real tokens only, positions restarting per window, labels kept."""
    inputs = {
        "input_ids": torch.tensor([[5, 6, 7], [8, 9, 0]]),
        "attention_mask": torch.tensor([[1, 1, 1], [1, 1, 0]]),
        "labels": torch.tensor([[-100, 1, 2], [-100, 3, -100]]),
    }
    packed = pack_inputs(inputs)
    assert packed["input_ids"].tolist() == [[5, 6, 7, 8, 9]]
    assert packed["position_ids"].tolist() == [[0, 1, 2, 0, 1]]
    assert packed["labels"].tolist() == [[-100, 1, 2, -100, 3]]
    assert "attention_mask" not in packed


@pytest.mark.skipif(flash_available(), reason="flash attention is available here: packing is allowed")
def test_packed_without_flash_attention_is_a_one_line_error(corpus_dir, modernbert, tmp_path):
    """Issue 16: packed batches are correct only with flash attention; without it the config is refused with a
    FeedbackError (one line from every command decorated with ``cli.command``) before any work."""
    with pytest.raises(FeedbackError, match="packed=True needs flash attention") as err:
        parse_config(None, overrides=small_config(corpus_dir, modernbert, tmp_path / "run", packed=True))
    message = str(err.value)
    assert "\n" not in message and "packed=False" in message and "attn_implementation=auto" in message


def test_demo_config_trains_tiny_modernbert_for_a_fold(corpus_dir, modernbert, tmp_path):
    """The demo's k-fold training runs ModernBERT end to end for one fold and keeps a reloadable best checkpoint."""
    out = tmp_path / "run"
    path = tmp_path / "mb.yaml"
    path.write_text(yaml.safe_dump(small_config(corpus_dir, modernbert, out, folds=[0], max_length=256, stride=32)))
    done = run_cli("feedback_ner.train", "--config", str(path))
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((out / "fold_0" / "metrics.json").read_text())
    assert 0.0 <= metrics["eval_f1"] <= 1.0
    model = AutoModelForTokenClassification.from_pretrained(out / "fold_0" / "model")
    assert type(model).__name__ == "ModernBertForTokenClassification"
