"""The embedded corpus: Kaggle layout, real class shares and lengths, competition offsets, determinism."""

from __future__ import annotations

import importlib.util
import random
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from feedback_ner.errors import FeedbackError
from feedback_ner.labels import CLASSES, offsets_to_word_indices, parse_predictionstring, split_words
from feedback_ner.sample import main
from feedback_ner.synthetic.corpus import REAL_CLASS_COUNTS, TRAIN_COLUMNS, write_corpus
from feedback_ner.synthetic.essays import generate_essay
from feedback_ner.synthetic.vocabulary import PROMPTS

N_ESSAYS = 2000


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame, dict[str, str]]:
    """A 2,000-essay corpus read back from disk the way a user would read the Kaggle files."""
    out = write_corpus(tmp_path_factory.mktemp("sample_big"), n=N_ESSAYS, seed=0, n_test=10)
    df = pd.read_csv(out / "train.csv")
    texts = {p.stem: p.read_text(encoding="utf-8") for p in (out / "train").glob("*.txt")}
    return out, df, texts


def _words(texts: dict[str, str]) -> np.ndarray:
    return np.array([len(t.split()) for t in texts.values()])


def test_layout_and_columns(big):
    out, df, texts = big
    assert tuple(df.columns) == TRAIN_COLUMNS
    assert len(texts) == N_ESSAYS and set(df["id"]) == set(texts)
    assert all(re.fullmatch(r"[0-9A-F]{12}", i) for i in texts)
    # offsets and discourse ids are floats in the file, like Kaggle's "8.0"
    first = (out / "train.csv").read_text(encoding="utf-8").splitlines()[1].split(",")
    assert re.fullmatch(r"\d{13}\.0", first[1]) and first[2].endswith(".0") and first[3].endswith(".0")
    assert df["discourse_id"].is_unique
    assert set(df["discourse_type"]) == set(CLASSES)
    ordered = df.sort_values(["id", "discourse_start"])
    number = ordered.groupby(["id", "discourse_type"]).cumcount() + 1
    assert (ordered["discourse_type_num"] == ordered["discourse_type"] + " " + number.astype(str)).all()


def test_sample_submission_matches_test_files(big):
    out, _, _ = big
    sub = pd.read_csv(out / "sample_submission.csv")
    assert list(sub.columns) == ["id", "class", "predictionstring"]
    stems = sorted(p.stem for p in (out / "test").glob("*.txt"))
    assert len(stems) == 10 and sorted(sub["id"]) == stems
    assert not set(stems) & {p.stem for p in (out / "train").glob("*.txt")}


def test_class_frequencies_match_the_real_data(big):
    _, df, texts = big
    shares = df["discourse_type"].value_counts(normalize=True)
    real_total = sum(REAL_CLASS_COUNTS.values())
    for cls, count in REAL_CLASS_COUNTS.items():
        real = count / real_total
        assert abs(shares[cls] - real) < max(0.012, 0.15 * real), (cls, shares[cls], real)
    per_essay = len(df) / len(texts)
    assert 8.5 < per_essay < 10.0


def test_length_distribution_has_a_long_tail(big):
    _, _, texts = big
    words = _words(texts)
    assert words.min() <= 200
    assert words.max() >= 2000
    assert 330 <= words.mean() <= 480
    assert np.mean(words * 1.3 > 1024) >= 0.10


@pytest.mark.skipif(importlib.util.find_spec("feedback_ner.tiny") is None, reason="feedback_ner.tiny not there yet")
def test_long_share_with_the_tiny_longformer_tokenizer(big, tiny_models):
    from transformers import AutoTokenizer

    _, _, texts = big
    tokenizer = AutoTokenizer.from_pretrained(tiny_models("longformer"))
    lengths = np.array([len(ids) for ids in tokenizer(list(texts.values()))["input_ids"]])
    share = np.mean(lengths > 1024)
    assert share >= 0.10, f"only {share:.1%} of essays exceed 1,024 tokens"


def test_predictionstring_is_the_competition_rule_on_the_saved_files(big):
    _, df, texts = big
    for row in df.itertuples(index=False):
        text = texts[row.id]
        start, end = int(row.discourse_start), int(row.discourse_end)
        assert (start, end) == (row.discourse_start, row.discourse_end)
        assert row.discourse_text == text[start:end]
        expected = offsets_to_word_indices(text, start, end)
        assert expected and parse_predictionstring(row.predictionstring) == expected, (row.id, start, end)


def test_some_offsets_are_imperfect_like_the_real_data(big):
    _, df, texts = big
    mid_start = off_by_one = whitespace = 0
    for essay_id, group in df.groupby("id", sort=False):
        text = texts[essay_id]
        _, w_start, w_end = split_words(text)
        for start, end, ps in zip(group["discourse_start"].astype(int), group["discourse_end"].astype(int),
                                  group["predictionstring"]):
            mid_start += start > 0 and not text[start - 1].isspace() and not text[start].isspace()
            whitespace += text[start].isspace() or text[end - 1].isspace()
            # the words the span touches differ from the competition's words when it starts mid-word
            touched = np.flatnonzero((w_end > start) & (w_start < end)).tolist()
            off_by_one += touched != parse_predictionstring(ps)
    n = len(df)
    assert mid_start > 0 and whitespace > 0 and off_by_one > 0
    assert 0.01 < (mid_start + whitespace) / n < 0.08


def test_no_overlapping_or_empty_predictionstrings(big):
    _, df, _ = big
    for essay_id, group in df.groupby("id", sort=False):
        spans = [parse_predictionstring(p) for p in group.sort_values("discourse_start")["predictionstring"]]
        assert all(spans), essay_id
        for a, b in zip(spans, spans[1:]):
            assert a[-1] < b[0], essay_id


def test_essay_structure(big):
    _, df, _ = big
    for essay_id, group in df.groupby("id", sort=False):
        types = list(group.sort_values("discourse_start")["discourse_type"])
        if "Lead" in types:
            assert types.index("Lead") == 0 and types.count("Lead") == 1, essay_id
        if "Rebuttal" in types:
            assert "Counterclaim" in types[: types.index("Rebuttal")], essay_id
    first_types = df.sort_values("discourse_start").groupby("id")["discourse_type"].first()
    assert 0.5 < (first_types == "Lead").mean() < 0.7


def test_text_has_paragraphs_noise_and_unannotated_words(big):
    _, df, texts = big
    values = list(texts.values())
    assert np.mean(["\n\n" in t for t in values]) > 0.5
    assert any(" \n\n" in t for t in values) and any(re.search(r"\S\n\S", t) for t in values)
    assert 0.05 < np.mean([bool(re.search(r"[.?] [a-z]", t)) for t in values]) < 0.6  # lowercase sentence starts
    assert any(re.search(r"\bi (think|believe)\b", t) for t in values)
    assert any(re.search(r"\b(dont|doesnt|cant)\b", t) for t in values)
    assert any(re.search(r"\b(becuase|poeple|belive|alot)\b", t) for t in values)
    labelled = df["predictionstring"].str.split().str.len().sum()
    assert 0.03 < 1 - labelled / sum(len(t.split()) for t in values) < 0.2  # words labelled O


def test_each_prompt_has_its_own_vocabulary():
    for i, prompt in enumerate(PROMPTS):
        text = generate_essay(random.Random(i), 400, prompt).text.lower()
        own = sum(phrase.lower() in text for phrase in prompt.topic + prompt.nouns + prompt.people)
        assert own >= 3, prompt.name
    assert len({p.name for p in PROMPTS}) == len(PROMPTS) >= 15


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a = write_corpus(tmp_path / "a", n=60, seed=7, n_test=3)
    b = write_corpus(tmp_path / "b", n=60, seed=7, n_test=3)
    c = write_corpus(tmp_path / "c", n=60, seed=8, n_test=3)

    def files(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    assert files(a) == files(b)
    assert (a / "train.csv").read_bytes() != (c / "train.csv").read_bytes()
    assert set(files(a)) != set(files(c))  # different essay ids


def test_cli_writes_and_summarises(tmp_path, capsys):
    main(["--out", str(tmp_path / "cli"), "--n", "30", "--seed", "3", "--n-test", "2"])
    printed = capsys.readouterr().out
    assert "essays: 30 train + 2 test" in printed and "Claim" in printed and "1024 tokens" in printed
    assert len(list((tmp_path / "cli" / "train").glob("*.txt"))) == 30


def test_refuses_a_folder_holding_another_corpus(tmp_path):
    write_corpus(tmp_path, n=5, seed=1, n_test=1)
    write_corpus(tmp_path, n=5, seed=1, n_test=1)  # the same corpus again is fine
    with pytest.raises(FeedbackError, match="another corpus"):
        write_corpus(tmp_path, n=5, seed=2, n_test=1)


def test_bad_sizes_are_refused(tmp_path):
    with pytest.raises(ValueError, match="n >= 1"):
        write_corpus(tmp_path / "zero", n=0)
    assert main(["--out", str(tmp_path), "--n", "0"]) == 2
