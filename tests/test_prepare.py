"""Word labels, folds, the prepared files, the cache and the CLI on the package's own sample corpus."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from feedback_ner.corpus import load_train
from feedback_ner.labels import O_ID, labels_to_spans, parse_predictionstring, split_words
from feedback_ner.prepare import main, make_parser
from feedback_ner.wordtable import (
    FINGERPRINT_FILE,
    WORDS_FILE,
    assign_folds,
    build_word_table,
    class_counts,
    load_word_table,
    prepare,
    test_word_table,
)

LIST_COLUMNS = ("word_start", "word_end", "labels")


@pytest.fixture(scope="module")
def corpus(corpus_dir: Path):
    return load_train(corpus_dir)


@pytest.fixture(scope="module")
def table(corpus) -> pd.DataFrame:
    return build_word_table(corpus)


def assert_tables_equal(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert list(a.columns) == list(b.columns) and len(a) == len(b)
    for col in a.columns:
        if col in LIST_COLUMNS or col == "word_indices":
            assert all(np.array_equal(x, y) for x, y in zip(a[col], b[col])), col
        else:
            assert a[col].tolist() == b[col].tolist(), col


def test_word_table_labels_round_trip_to_predictionstrings(corpus_dir: Path, corpus, table: pd.DataFrame):
    gt = pd.read_csv(corpus_dir / "train.csv", dtype=str, keep_default_na=False)
    assert table["id"].tolist() == sorted(gt["id"].unique())
    expected: dict[str, list] = {essay: [] for essay in table["id"]}
    for essay, cls, ps in zip(gt["id"], gt["discourse_type"], gt["predictionstring"]):
        expected[essay].append((cls, parse_predictionstring(ps)))
    for row in table.itertuples():
        words = row.text.split()
        assert [row.text[s:e] for s, e in zip(row.word_start, row.word_end)] == words
        assert len(row.labels) == len(words) and row.labels.dtype == np.int64
        assert sorted(labels_to_spans(row.labels)) == sorted(expected[row.id])
    # the sample builds predictionstring from the offsets by the competition rule: no disagreement
    assert corpus.report.count("offsets_disagree") == 0


def test_offsets_disagreeing_with_predictionstring_are_counted_and_predictionstring_wins(
    corpus_dir: Path, tmp_path: Path
):
    data = Path(shutil.copytree(corpus_dir, tmp_path / "data"))
    df = pd.read_csv(data / "train.csv", dtype=str, keep_default_na=False)
    i = 3
    words = parse_predictionstring(df.loc[i, "predictionstring"])
    df.loc[i, "predictionstring"] = " ".join(map(str, words[:-1]))  # drop the last word
    df.to_csv(data / "train.csv", index=False)
    corpus = load_train(data)
    table = build_word_table(corpus)
    assert corpus.report.count("offsets_disagree") == 1
    build_word_table(corpus)  # building again recounts, it does not add up
    assert corpus.report.count("offsets_disagree") == 1
    example = corpus.report.issues["offsets_disagree"].examples[0]
    assert f"discourse_id {df.loc[i, 'discourse_id']}" in example
    assert f"offsets give words {words[0]}-{words[-1]}, predictionstring {words[0]}-{words[-2]}" in example
    labels = table.set_index("id").loc[df.loc[i, "id"], "labels"]
    assert labels[words[-1]] == O_ID and labels[words[-2]] != O_ID


def test_test_word_table_has_no_labels_and_fold_minus_one(corpus_dir: Path):
    texts = {"b": "Hello  world.\nSecond line", "a": ""}
    t = test_word_table(texts)
    assert list(t.columns) == ["id", "text", "word_start", "word_end", "fold"]
    assert t["id"].tolist() == ["b", "a"] and t["fold"].tolist() == [-1, -1]
    _, starts, ends = split_words(texts["b"])
    assert np.array_equal(t.loc[0, "word_start"], starts) and np.array_equal(t.loc[0, "word_end"], ends)
    assert len(t.loc[1, "word_start"]) == 0


def test_folds_deterministic_complete_and_balanced(corpus, table: pd.DataFrame):
    folds = assign_folds(table, corpus.elements, k=5, seed=42)
    assert folds.dtype == np.int64 and len(folds) == len(table)
    assert sorted(set(folds.tolist())) == [0, 1, 2, 3, 4]  # every essay in exactly one of the 5 folds
    assert np.array_equal(folds, assign_folds(table, corpus.elements, k=5, seed=42))
    # row order of the table does not matter: folds follow the ids
    shuffled = table.sample(frac=1.0, random_state=0).reset_index(drop=True)
    by_id = dict(zip(shuffled["id"], assign_folds(shuffled, corpus.elements, k=5, seed=42)))
    assert [by_id[i] for i in table["id"]] == folds.tolist()
    assert not np.array_equal(folds, assign_folds(table, corpus.elements, k=5, seed=7))
    sizes = np.bincount(folds, minlength=5)
    assert sizes.max() - sizes.min() <= 3
    # balance: per-class element totals vary across folds far less than under random splits of the same sizes
    counts = class_counts(table["id"], corpus.elements)

    def spread(f: np.ndarray) -> int:
        totals = np.stack([counts[f == k].sum(axis=0) for k in range(5)])
        return int((totals.max(axis=0) - totals.min(axis=0)).sum())

    rng = np.random.default_rng(0)
    random_spreads = [spread(rng.permutation(folds)) for _ in range(100)]
    assert spread(folds) < np.percentile(random_spreads, 10), (spread(folds), np.median(random_spreads))


def test_folds_reject_bad_k(corpus, table: pd.DataFrame):
    with pytest.raises(ValueError, match="at least 2 folds"):
        assign_folds(table, corpus.elements, k=1)
    with pytest.raises(ValueError, match="only 80 essays"):
        assign_folds(table, corpus.elements, k=81)


def test_prepare_writes_table_folds_and_report(corpus_dir: Path, tmp_path: Path, table: pd.DataFrame, corpus):
    out = prepare(corpus_dir, tmp_path / "prep", k=4, seed=3)
    words = pd.read_parquet(out / WORDS_FILE)
    assert list(words.columns) == ["id", "text", "word_start", "word_end", "labels", "fold"]
    assert_tables_equal(words.drop(columns="fold"), table)
    assert np.array_equal(words["fold"].to_numpy(), assign_folds(table, corpus.elements, k=4, seed=3))
    folds_csv = pd.read_csv(out / "folds.csv", dtype={"id": str})
    assert folds_csv["id"].tolist() == words["id"].tolist() and folds_csv["fold"].tolist() == words["fold"].tolist()
    report = json.loads((out / "prepare_report.json").read_text())
    assert report["load"]["n_rows_kept"] == len(corpus.elements) and report["k"] == 4
    assert sum(f["essays"] for f in report["fold_counts"].values()) == len(table)
    n_claims = int((corpus.elements["discourse_type"] == "Claim").sum())
    assert sum(f["Claim"] for f in report["fold_counts"].values()) == n_claims


def test_cached_reload_returns_the_same_and_skips_work(corpus_dir: Path, tmp_path: Path):
    data = Path(shutil.copytree(corpus_dir, tmp_path / "data"))
    cache = tmp_path / "cache"
    table, elements = load_word_table(data, cache, k=5, seed=42)
    stamps = {name: (cache / name).stat().st_mtime_ns for name in (WORDS_FILE, FINGERPRINT_FILE)}
    again, elements_again = load_word_table(data, cache, k=5, seed=42)
    assert {name: (cache / name).stat().st_mtime_ns for name in stamps} == stamps  # nothing rewritten
    assert_tables_equal(again, table)
    assert_tables_equal(elements_again, elements)
    fresh = load_train(data)
    assert_tables_equal(elements, fresh.elements)
    assert_tables_equal(table.drop(columns="fold"), build_word_table(fresh))
    # another seed, or a touched input, prepares again
    load_word_table(data, cache, k=5, seed=1)
    assert (cache / FINGERPRINT_FILE).stat().st_mtime_ns != stamps[FINGERPRINT_FILE]
    assert json.loads((cache / FINGERPRINT_FILE).read_text())["seed"] == 1
    stamps = {name: (cache / name).stat().st_mtime_ns for name in stamps}
    essay = next((data / "train").glob("*.txt"))
    st = essay.stat()
    os.utime(essay, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    load_word_table(data, cache, k=5, seed=1)
    assert (cache / WORDS_FILE).stat().st_mtime_ns != stamps[WORDS_FILE]


def test_cli_help(capsys: pytest.CaptureFixture):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--data", "--out", "--num-folds", "--seed", "--skip-bad"):
        assert flag in out
    assert "--folds" not in out  # the old name: hidden, it stops with a hint (tests/test_errors_data.py)
    assert make_parser().parse_args(["--data", "d", "--out", "o"]).num_folds == 5


def test_cli_prints_report_and_fold_table(corpus_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    assert main(["--data", str(corpus_dir), "--out", str(tmp_path / "o"), "--num-folds", "3", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    rows = len(pd.read_csv(corpus_dir / "train.csv"))
    assert f"{rows} rows read" in out  # issue 17: the true count, not any count
    assert "3 folds (seed 1)" in out
    header = next(line for line in out.splitlines() if line.lstrip().startswith("essays"))
    assert all(c in header for c in ("Lead", "Claim", "Rebuttal"))
    assert (tmp_path / "o" / WORDS_FILE).is_file()


def test_cli_bad_data_is_one_line_error(corpus_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    data = Path(shutil.copytree(corpus_dir, tmp_path / "data"))
    df = pd.read_csv(data / "train.csv", dtype=str, keep_default_na=False)
    df.loc[2, "discourse_type"] = "Thesis"
    df.to_csv(data / "train.csv", index=False)
    assert main(["--data", str(data), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'Thesis'" in err and "--skip-bad" in err
    assert main(["--data", str(data), "--out", str(tmp_path / "o"), "--skip-bad"]) == 0
    assert "unknown_class" in capsys.readouterr().out
