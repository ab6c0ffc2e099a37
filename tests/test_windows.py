"""Token windows: the oracle round trip per tokenizer family, window geometry, label variants, caching, collator."""

from __future__ import annotations

import random
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BigBirdConfig, LongformerConfig

from feedback_ner.corpus import load_train
from feedback_ner.labels import (
    B_IDS,
    I_IDS,
    labels_to_spans,
    offsets_to_word_indices,
    split_words,
    to_predictionstring,
)
from feedback_ner.metric import score
from feedback_ner.synthetic.corpus import TRAIN_COLUMNS, write_corpus
from feedback_ner.synthetic.essays import generate_essay
from feedback_ner.tokens import TokenCache
from feedback_ner.windows import (
    IGNORE_INDEX,
    FeedbackCollator,
    newline_token_id,
    pad_multiple_for,
    special_tokens,
    tokenize_windows,
)
from feedback_ner.wordtable import build_word_table, load_word_table, test_word_table

# the local tokenizer families: byte-level BPE, WordPiece, Unigram/Metaspace
FAMILIES = ("longformer", "bert", "deberta-v2")
LONG_WORDS = 2000
BREAK = re.compile(r"[^\S\r\n]*[\r\n]\s*")


@pytest.fixture(scope="module")
def corpus_with_long(corpus_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared corpus plus two generated essays of over 2,000 words (the 80-essay corpus has none)."""
    out = tmp_path_factory.mktemp("corpus_long")
    shutil.copytree(corpus_dir / "train", out / "train")
    rows = pd.read_csv(corpus_dir / "train.csv")
    extra = []
    for k in range(2):
        essay = generate_essay(random.Random(1000 + k), target_words=2300, min_words=LONG_WORDS)
        essay_id = f"L0NG{k:08d}"
        (out / "train" / f"{essay_id}.txt").write_text(essay.text, encoding="utf-8", newline="")
        for j, el in enumerate(essay.elements):
            words = offsets_to_word_indices(essay.text, el.start, el.end)
            extra.append((essay_id, float(9e12 + 100 * k + j), float(el.start), float(el.end),
                          essay.text[el.start : el.end], el.cls, f"{el.cls} {j + 1}", to_predictionstring(words)))
    rows = pd.concat([rows, pd.DataFrame(extra, columns=list(TRAIN_COLUMNS))], ignore_index=True)
    rows.to_csv(out / "train.csv", index=False)
    return out


@pytest.fixture(scope="module")
def table(corpus_with_long: Path) -> pd.DataFrame:
    return build_word_table(load_train(corpus_with_long))


@pytest.fixture(scope="module")
def gt(corpus_with_long: Path) -> pd.DataFrame:
    return pd.read_csv(corpus_with_long / "train.csv")


@pytest.fixture(scope="module")
def mixed_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Issue 12: essays mixing \\n, \\r\\n, \\r, tabs and non-breaking spaces, offsets into the files as stored."""
    return write_corpus(tmp_path_factory.mktemp("mixed"), n=40, seed=11, n_test=0, line_endings="mixed")


@pytest.fixture(scope="module")
def mixed_table(mixed_data: Path) -> pd.DataFrame:
    table = build_word_table(load_train(mixed_data))
    assert sum("\r" in t for t in table["text"]) > 10 and sum("\xa0" in t for t in table["text"]) > 5
    return table


@pytest.fixture(scope="module")
def mixed_gt(mixed_data: Path) -> pd.DataFrame:
    return pd.read_csv(mixed_data / "train.csv")


@pytest.fixture(scope="module")
def tokenizers(tiny_models):
    return {arch: AutoTokenizer.from_pretrained(tiny_models(arch)) for arch in FAMILIES}


def word_labels_from_windows(ds, table: pd.DataFrame) -> list[np.ndarray]:
    """Each word's label from the first labelled token of that word in any window (-1 where none)."""
    out = [np.full(len(s), -1, np.int64) for s in table["word_start"]]
    for row in ds:
        words, labels = np.asarray(row["word_ids"]), np.asarray(row["labels"])
        target = out[row["essay_index"]]
        for w, lab in zip(words, labels):
            if w >= 0 and lab != IGNORE_INDEX and target[w] < 0:
                target[w] = lab
    return out


def spans_frame(table: pd.DataFrame, word_labels: list[np.ndarray]) -> pd.DataFrame:
    rows = [(essay_id, cls, to_predictionstring(words))
            for essay_id, labels in zip(table["id"], word_labels) for cls, words in labels_to_spans(labels)]
    return pd.DataFrame(rows, columns=["id", "class", "predictionstring"])


def content(row: dict, prefix: list[int], suffix: list[int], name: str = "input_ids") -> list[int]:
    values = list(row[name])
    return values[len(prefix) : len(values) - len(suffix)]


def test_fixture_corpus_is_not_trivial(table, gt):
    """The round trip below covers essays over 2,000 words and rows whose offsets fall inside a word."""
    assert table["word_start"].map(len).max() > LONG_WORDS
    texts = dict(zip(table["id"], table["text"]))

    def mid_word(essay_id: str, pos: int) -> bool:
        text = texts[essay_id]
        return 0 < pos < len(text) and not text[pos - 1].isspace() and not text[pos].isspace()

    starts = [mid_word(i, int(s)) for i, s in zip(gt["id"], gt["discourse_start"])]
    ends = [mid_word(i, int(e)) for i, e in zip(gt["id"], gt["discourse_end"])]
    assert sum(starts) > 0 and sum(ends) > 0


@pytest.mark.parametrize("max_length,stride", [(512, 128), (4096, 256)])
@pytest.mark.parametrize("arch", FAMILIES)
def test_oracle_round_trip(arch, max_length, stride, table, gt, tokenizers):
    """Token labels of the windows, taken back to words and decoded, give exactly train.csv's predictionstrings."""
    tok = tokenizers[arch]
    ds = tokenize_windows(table, tok, max_length, stride)
    assert set(ds.column_names) == {"input_ids", "attention_mask", "labels", "word_ids", "essay_index", "length"}
    word_labels = word_labels_from_windows(ds, table)
    # every word of every essay is covered (and labelled) by some window
    assert all((labels >= 0).all() for labels in word_labels)
    assert all(np.array_equal(got, want) for got, want in zip(word_labels, table["labels"]))
    pred = spans_frame(table, word_labels)
    truth = gt.rename(columns={"discourse_type": "class"})[["id", "class", "predictionstring"]]
    assert sorted(map(tuple, pred.to_numpy())) == sorted(map(tuple, truth.to_numpy()))
    assert score(pred, gt).f1 == 1.0
    if max_length == 512:  # the long essays really are split
        assert ds.to_pandas()["essay_index"].value_counts().max() >= 3


@pytest.mark.parametrize("arch", FAMILIES)
def test_oracle_round_trip_on_mixed_line_ends(arch, mixed_table, mixed_gt, tokenizers):
    """Issue 12: with \\r, \\r\\n, tabs and non-breaking spaces in the text every word keeps its tokens and its
    label: windows -> word labels -> spans give train.csv exactly (score 1.0)."""
    ds = tokenize_windows(mixed_table, tokenizers[arch], 512, 128)
    word_labels = word_labels_from_windows(ds, mixed_table)
    assert all(np.array_equal(got, want) for got, want in zip(word_labels, mixed_table["labels"]))
    assert score(spans_frame(mixed_table, word_labels), mixed_gt).f1 == 1.0


@pytest.mark.parametrize("keep_newlines", [False, True])
@pytest.mark.parametrize("arch", FAMILIES)
def test_line_ends_do_not_change_the_windows(arch, keep_newlines, mixed_table, tokenizers):
    """Found by probing: training tokenised essays as stored (a byte-level BPE reads ``\\r\\n`` as other tokens than
    ``\\n``) while ``predict`` read them with ``\\n``, so its probabilities for CRLF essays were not the out-of-fold
    ones. The tokenizer now reads every line end as ``\\n``: the same essay stored with ``\\n``, ``\\r\\n`` or a lone
    ``\\r`` gives the same tokens, word of each token and labels."""
    table = mixed_table[mixed_table["text"].str.contains("\r")].head(12).reset_index(drop=True)
    windows = {}
    for name, line_end in (("lf", "\n"), ("crlf", "\r\n"), ("cr", "\r")):
        texts = [t.replace("\r\n", "\n").replace("\r", "\n").replace("\n", line_end) for t in table["text"]]
        words = [split_words(t) for t in texts]
        variant = table.assign(text=texts, word_start=[w[1] for w in words], word_end=[w[2] for w in words])
        ds = tokenize_windows(variant, tokenizers[arch], 64, 16, keep_newlines=keep_newlines)
        windows[name] = {column: ds[column] for column in ("input_ids", "word_ids", "labels", "essay_index")}
    assert windows["crlf"] == windows["lf"]
    assert windows["cr"] == windows["lf"]


@pytest.mark.parametrize("max_length,stride", [(512, 128), (64, 16), (40, 0)])
@pytest.mark.parametrize("arch", FAMILIES)
def test_windows_tile_the_essay_with_exact_overlap(arch, max_length, stride, table, tokenizers):
    """Windows are [specials + content + specials], at most max_length long, overlap by exactly ``stride`` content
    tokens, and together give back the essay's own tokenisation, the last window ending at the essay's end."""
    tok = tokenizers[arch]
    prefix, suffix = special_tokens(tok)
    n_content = max_length - len(prefix) - len(suffix)
    rows = tokenize_windows(table, tok, max_length, stride).to_list()
    by_essay: dict[int, list[dict]] = {}
    for row in rows:
        by_essay.setdefault(row["essay_index"], []).append(row)
        n = len(row["input_ids"])
        assert n <= max_length and row["attention_mask"] == [1] * n
        head, tail = slice(0, len(prefix)), slice(n - len(suffix), n)
        assert row["input_ids"][head] == prefix and row["input_ids"][tail] == suffix
        assert set(row["labels"][head] + row["labels"][tail]) <= {IGNORE_INDEX}
        assert set(row["word_ids"][head] + row["word_ids"][tail]) <= {-1}
    assert sorted(by_essay) == list(range(len(table)))
    for index, windows in by_essay.items():
        ids = [content(w, prefix, suffix) for w in windows]
        words = [content(w, prefix, suffix, "word_ids") for w in windows]
        for k in range(len(windows) - 1):
            assert len(ids[k]) == n_content
            assert ids[k][len(ids[k]) - stride :] == ids[k + 1][:stride]
            assert words[k][len(words[k]) - stride :] == words[k + 1][:stride]
            assert len(ids[k + 1]) > stride  # no window lies wholly inside its predecessor
        stream = ids[0] + [t for w in ids[1:] for t in w[stride:]]
        assert stream == tok(table["text"][index], add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize("arch", ["longformer", "bert"])
def test_label_all_subtokens(arch, table, tokenizers):
    tok = tokenizers[arch]
    first_only = tokenize_windows(table, tok, 512, 64).to_list()
    every = tokenize_windows(table, tok, 512, 64, label_all_subtokens=True).to_list()
    continuation = {b: I_IDS[c] for c, b in B_IDS.items()}
    n_b_to_i = 0
    for a, b in zip(first_only, every):
        assert a["input_ids"] == b["input_ids"] and a["word_ids"] == b["word_ids"]
        word_labels = table["labels"][a["essay_index"]]
        for pos, w in enumerate(a["word_ids"]):
            if w < 0:
                assert a["labels"][pos] == b["labels"][pos] == IGNORE_INDEX
                continue
            lab = int(word_labels[w])
            if a["labels"][pos] != IGNORE_INDEX:  # the word's first sub-token
                assert a["labels"][pos] == b["labels"][pos] == lab
                assert pos == 0 or a["word_ids"][pos - 1] != w
            else:  # a later sub-token
                assert b["labels"][pos] == continuation.get(lab, lab)
                n_b_to_i += lab in continuation
    assert n_b_to_i > 0  # B-X really became I-X on later sub-tokens


@pytest.mark.parametrize("line_ends", ["lf", "mixed"])
@pytest.mark.parametrize("arch", ["bert", "deberta-v2"])
def test_keep_newlines_marks_each_paragraph_break(arch, line_ends, tokenizers, request):
    """Tokenizers that drop newlines get one marker (word -1, label -100) per paragraph break (``\\n``, ``\\r\\n``
    or ``\\r``: issue 12), before the word that follows it; word labels still round-trip."""
    table, gt = (request.getfixturevalue(n) for n in (("table", "gt") if line_ends == "lf" else ("mixed_table",
                                                                                                  "mixed_gt")))
    tok = tokenizers[arch]
    marker = newline_token_id(tok)
    assert marker is not None and marker != tok.unk_token_id
    plain = tokenize_windows(table, tok, 4096, 0).to_list()
    marked = tokenize_windows(table, tok, 4096, 0, keep_newlines=True).to_list()
    assert len(plain) == len(marked) == len(table)  # one window per essay at 4,096
    total_breaks = 0
    for a, b in zip(plain, marked):
        text = table["text"][b["essay_index"]]
        starts, ends = table["word_start"][b["essay_index"]], table["word_end"][b["essay_index"]]
        n_breaks = len(BREAK.findall(text))
        total_breaks += n_breaks
        at = [i for i, (t, w) in enumerate(zip(b["input_ids"], b["word_ids"])) if t == marker and w == -1]
        assert len(at) - sum(t == marker and w == -1 for t, w in zip(a["input_ids"], a["word_ids"])) == n_breaks
        for i in at:
            assert b["labels"][i] == IGNORE_INDEX
            before = [w for w in b["word_ids"][:i] if w >= 0]
            after = [w for w in b["word_ids"][i + 1 :] if w >= 0]
            gap = text[ends[before[-1]] if before else 0 : starts[after[0]] if after else len(text)]
            assert ("\n" in gap or "\r" in gap) and gap.isspace()
        # take the markers out and the tokens are those of the plain windows
        assert [t for i, t in enumerate(b["input_ids"]) if i not in set(at)] == a["input_ids"]
    assert total_breaks > len(table)
    ds = tokenize_windows(table, tok, 512, 128, keep_newlines=True)
    assert spans_frame(table, word_labels_from_windows(ds, table)).pipe(score, gt).f1 == 1.0


def test_keep_newlines_is_a_no_op_for_byte_level_bpe(table, tokenizers):
    tok = tokenizers["longformer"]
    assert newline_token_id(tok) is None  # "Ċ" tokens already carry the newlines
    a = tokenize_windows(table, tok, 512, 128)
    b = tokenize_windows(table, tok, 512, 128, keep_newlines=True)
    assert a["input_ids"] == b["input_ids"]


def test_unlabelled_table_has_no_labels_column(table, tokenizers):
    texts = dict(zip(table["id"][:5], table["text"][:5]))
    ds = tokenize_windows(test_word_table(texts), tokenizers["bert"], 256, 32)
    assert set(ds.column_names) == {"input_ids", "attention_mask", "word_ids", "essay_index", "length"}
    batch = FeedbackCollator(tokenizers["bert"])([ds[i] for i in range(len(ds))])
    assert "labels" not in batch


def test_cache_is_hit_on_identical_call_and_missed_on_any_change(table, tokenizers, tmp_path):
    tok = tokenizers["longformer"]
    small = table.iloc[:20].reset_index(drop=True)
    first = tokenize_windows(small, tok, 256, 32, cache_dir=tmp_path)
    files = sorted(tmp_path.glob("windows-*.arrow"))
    assert len(files) == 1 and [Path(f["filename"]) for f in first.cache_files] == files
    stamp = files[0].stat().st_mtime_ns
    again = tokenize_windows(small, tok, 256, 32, cache_dir=tmp_path)
    assert sorted(tmp_path.glob("windows-*.arrow")) == files and files[0].stat().st_mtime_ns == stamp
    assert [Path(f["filename"]) for f in again.cache_files] == files
    assert again.to_dict() == first.to_dict()

    changed = small.copy()
    changed.at[3, "labels"] = np.where(changed.at[3, "labels"] == 0, 0, changed.at[3, "labels"] % 14 + 1)
    variants = [
        dict(table=small, tokenizer=tok, max_length=256, stride=16),
        dict(table=small, tokenizer=tok, max_length=128, stride=32),
        dict(table=small, tokenizer=tok, max_length=256, stride=32, label_all_subtokens=True),
        dict(table=small, tokenizer=tokenizers["bert"], max_length=256, stride=32),
        dict(table=small, tokenizer=tokenizers["bert"], max_length=256, stride=32, keep_newlines=True),
        dict(table=changed, tokenizer=tok, max_length=256, stride=32),
    ]
    for n, kwargs in enumerate(variants, start=2):
        tokenize_windows(**kwargs, cache_dir=tmp_path)
        assert len(list(tmp_path.glob("windows-*.arrow"))) == n, kwargs


def test_num_proc_two_gives_the_same_windows(table, tokenizers, tmp_path):
    """Also: special-token strings inside an essay are plain text, in the workers too (regression: the flag that
    says so was lost when the tokenizer was pickled to the workers, so "[SEP]" became the separator there)."""
    tok = tokenizers["bert"]  # WordPiece: "[SEP]" in the text can only become the separator as an added token
    text = "I say [SEP] and [CLS] or <s> here,\n\nthen [PAD] [MASK] end."
    _, starts, ends = split_words(text)
    odd = pd.DataFrame({"id": ["ODD"], "text": [text], "word_start": [starts], "word_end": [ends],
                        "labels": [np.zeros(len(starts), np.int64)]})
    both = pd.concat([table, odd], ignore_index=True)
    one = tokenize_windows(both, tok, 256, 64, num_proc=1)
    two = tokenize_windows(both, tok, 256, 64, num_proc=2, cache_dir=tmp_path)
    assert one.to_dict() == two.to_dict()
    assert len(list(tmp_path.glob("windows-*_of_00002.arrow"))) == 2
    cached = tokenize_windows(both, tok, 256, 64, num_proc=2, cache_dir=tmp_path)
    assert cached.to_dict() == one.to_dict()
    prefix, suffix = special_tokens(tok)
    last = two.to_list()[-1]
    assert last["essay_index"] == len(table)
    assert not set(content(last, prefix, suffix)) & set(tok.all_special_ids)


def test_bad_arguments_and_rows_fail_with_a_clear_message(table, tokenizers):
    tok = tokenizers["bert"]
    with pytest.raises(ValueError, match=r"stride=.* must be >= 0 and below max_length-2=62 for max_length=64"):
        tokenize_windows(table, tok, 64, 62)
    with pytest.raises(ValueError, match="max_length must be an integer above the 2 special tokens"):
        tokenize_windows(table, tok, 2, 0)
    bad = table.iloc[:3].copy()
    bad.at[1, "labels"] = bad.at[1, "labels"][:-1]
    with pytest.raises(ValueError, match=rf"row 1 \(id {bad['id'][1]}\): \d+ labels for \d+ words"):
        tokenize_windows(bad, tok, 64, 8)
    bad = table.iloc[:3].copy()
    bad.at[2, "word_end"] = bad.at[2, "word_end"] + 10_000
    with pytest.raises(ValueError, match=r"row 2 .*word 0 has offsets"):
        tokenize_windows(bad, tok, 64, 8)
    with pytest.raises(ValueError, match=r"missing column\(s\) \['word_end'\]"):
        tokenize_windows(table.drop(columns=["word_end"]), tok, 64, 8)


def test_collator_pads_every_column_with_its_own_value(table, tokenizers):
    tok = tokenizers["deberta-v2"]
    ds = tokenize_windows(table.iloc[:6].reset_index(drop=True), tok, 128, 16)
    features = [ds[i] for i in range(len(ds))]
    lengths = [len(f["input_ids"]) for f in features]
    assert len(set(lengths)) > 1  # some windows are shorter, so padding happens
    batch = FeedbackCollator(tok)(features)
    assert set(batch) == {"input_ids", "attention_mask", "labels", "word_ids", "essay_index"}
    assert all(t.dtype == torch.long for t in batch.values())
    assert batch["input_ids"].shape == (len(features), max(lengths))
    for i, (f, n) in enumerate(zip(features, lengths)):
        for name, pad in (("input_ids", tok.pad_token_id), ("attention_mask", 0), ("labels", -100), ("word_ids", -1)):
            assert batch[name][i, :n].tolist() == list(f[name])
            assert (batch[name][i, n:] == pad).all()
    assert batch["essay_index"].tolist() == [f["essay_index"] for f in features]
    padded = FeedbackCollator(tok, pad_to_multiple_of=48)(features[:3])
    assert padded["input_ids"].shape[1] % 48 == 0 and padded["input_ids"].shape[1] >= max(lengths[:3])


def test_pad_multiple_for_each_architecture():
    assert pad_multiple_for(LongformerConfig(attention_window=64)) == 64
    assert pad_multiple_for(LongformerConfig(attention_window=[32, 128], num_hidden_layers=2)) == 128
    assert pad_multiple_for(BigBirdConfig(attention_type="block_sparse", block_size=16)) == 16
    assert pad_multiple_for(BigBirdConfig(attention_type="original_full")) is None
    assert pad_multiple_for(BertConfig()) is None


def test_one_token_cache_serves_several_calls(table, tokenizers):
    """The folds of a run (or sweep trials of other lengths) share one cache: only new essays get encoded, and the
    windows are those of a call with a private cache."""
    tok = tokenizers["deberta-v2"]
    with TokenCache(tok) as tokens:
        tokenize_windows(table.iloc[:30].reset_index(drop=True), tok, 128, 16, token_cache=tokens)
        assert len(tokens) == 30
        shared = tokenize_windows(table.iloc[10:40].reset_index(drop=True), tok, 256, 32, token_cache=tokens)
        assert len(tokens) == 40
    private = tokenize_windows(table.iloc[10:40].reset_index(drop=True), tok, 256, 32)
    assert shared.to_dict() == private.to_dict()
    with pytest.raises(ValueError, match="another tokenizer"):
        tokenize_windows(table.iloc[:3], tokenizers["bert"], 64, 8, token_cache=TokenCache(tok))


def test_essays_are_tokenised_while_the_word_table_is_built(corpus_dir, tokenizers, tmp_path):
    tok = tokenizers["longformer"]
    with TokenCache(tok) as tokens:
        table, _ = load_word_table(corpus_dir, tmp_path / "prepared", token_cache=tokens)
        assert all(text in tokens for text in table["text"])  # queued by the loader, before any window is cut
        windows = tokenize_windows(table, tok, 128, 16, token_cache=tokens)
    assert windows.to_dict() == tokenize_windows(table, tok, 128, 16).to_dict()
