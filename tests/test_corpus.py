"""Loading and validating a Kaggle folder: every bad-input case names file/row/field, or is skipped and counted."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from feedback_ner.corpus import DataError, load_train
from feedback_ner.labels import CLASSES, NUM_LABELS, parse_predictionstring
from feedback_ner.metric import score
from feedback_ner.postprocess import PostprocessConfig, submission_from_probs
from feedback_ner.synthetic.corpus import write_corpus
from feedback_ner.texts import load_texts, normalise_newlines, read_text
from feedback_ner.wordtable import build_word_table

SKIP_HINT = "pass --skip-bad to skip and count such rows"


def copy_corpus(corpus_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the session corpus, to edit."""
    return Path(shutil.copytree(corpus_dir, tmp_path / "data"))


def read_rows(data: Path) -> pd.DataFrame:
    return pd.read_csv(data / "train.csv", dtype=str, keep_default_na=False)


def write_rows(data: Path, df: pd.DataFrame) -> None:
    df.to_csv(data / "train.csv", index=False)


def line_of(df: pd.DataFrame, i: int) -> int:
    """1-based line of row ``i`` of train.csv (header = line 1), counting newlines inside quoted fields."""
    extra = sum(int(v.count("\n")) for col in df.columns for v in df[col].iloc[:i])
    return i + 2 + extra


def edit_row(data: Path, i: int, **values: str) -> tuple[str, int]:
    """Set fields of row ``i``; returns its discourse_id and line number."""
    df = read_rows(data)
    for col, value in values.items():
        df.loc[i, col] = value
    write_rows(data, df)
    return df.loc[i, "discourse_id"], line_of(df, i)


def assert_row_error(data: Path, did: str, line: int, *fragments: str, hint: bool = True) -> None:
    with pytest.raises(DataError) as info:
        load_train(data)
    msg = str(info.value)
    assert "\n" not in msg
    assert str(data / "train.csv") in msg
    assert f"line {line} (discourse_id {did})" in msg
    for fragment in fragments:
        assert fragment in msg
    assert (SKIP_HINT in msg) == hint


def assert_skipped(data: Path, n_rows: int, kind: str, skipped: int) -> pd.DataFrame:
    corpus = load_train(data, skip_bad=True)
    assert corpus.report.count(kind) == skipped
    assert corpus.report.n_rows == n_rows
    assert len(corpus.elements) == corpus.report.n_rows_kept == n_rows - skipped
    assert kind in corpus.report.summary()
    return corpus.elements


@pytest.fixture
def data(corpus_dir: Path, tmp_path: Path) -> Path:
    return copy_corpus(corpus_dir, tmp_path)


def test_clean_corpus_loads_every_row(corpus_dir: Path):
    df = read_rows(corpus_dir)
    corpus = load_train(corpus_dir)
    el = corpus.elements
    assert len(el) == len(df) and corpus.report.n_rows_skipped == 0
    assert not {k for k, i in corpus.report.issues.items() if i.action == "skipped"}
    assert set(corpus.texts) == set(df["id"]) and len(corpus.texts) == corpus.report.n_essays_kept
    assert el["discourse_start"].dtype == np.int64 and el["discourse_end"].dtype == np.int64
    assert el["discourse_id"].tolist() == df["discourse_id"].tolist()
    for ps, words in zip(el["predictionstring"], el["word_indices"]):
        assert list(words) == parse_predictionstring(ps)
    # line numbers point at the rows' own lines (the sample has quoted newlines in discourse_text)
    raw_lines = (corpus_dir / "train.csv").read_text().split("\n")
    for line, essay_id, did in zip(el["line"], el["id"], el["discourse_id"]):
        assert raw_lines[line - 1].startswith(f"{essay_id},{did},")


def test_missing_columns_always_raise_naming_them(data: Path):
    df = read_rows(data).drop(columns=["predictionstring", "discourse_start"])
    write_rows(data, df)
    for skip_bad in (False, True):
        with pytest.raises(DataError) as info:
            load_train(data, skip_bad=skip_bad)
        msg = str(info.value)
        assert str(data / "train.csv") in msg and "discourse_start, predictionstring" in msg


def test_missing_folder_and_csv(tmp_path: Path):
    with pytest.raises(DataError, match="no train.csv"):
        load_train(tmp_path)
    (tmp_path / "train.csv").write_text("id\n")
    with pytest.raises(DataError, match="no train/ folder"):
        load_train(tmp_path)


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("discourse_start", "abc", "discourse_start='abc' is not a whole number"),
        ("discourse_end", "12.5", "discourse_end='12.5' is not a whole number"),
        ("discourse_start", "", "discourse_start='' is not a whole number"),
    ],
)
def test_non_numeric_offsets(data: Path, field: str, value: str, fragment: str):
    n = len(read_rows(data))
    did, line = edit_row(data, 5, **{field: value})
    assert_row_error(data, did, line, fragment)
    el = assert_skipped(data, n, "bad_offset", 1)
    assert did not in set(el["discourse_id"])


@pytest.mark.parametrize("case", ["negative_start", "end_before_start", "end_past_text"])
def test_out_of_range_offsets(data: Path, case: str):
    df = read_rows(data)
    i = 7
    start, end = int(float(df.loc[i, "discourse_start"])), int(float(df.loc[i, "discourse_end"]))
    length = len(read_text(data / "train" / f"{df.loc[i, 'id']}.txt"))
    values = {
        "negative_start": {"discourse_start": "-1"},
        "end_before_start": {"discourse_end": str(start)},
        "end_past_text": {"discourse_end": f"{length + 1}.0"},
    }[case]
    did, line = edit_row(data, i, **values)
    shown_end = {"end_before_start": start, "end_past_text": length + 1}.get(case, end)
    assert_row_error(data, did, line, f"discourse_end={shown_end}", f"({length} characters", "out of range")
    assert_skipped(data, len(df), "bad_offset", 1)


def test_rows_whose_essay_file_is_missing(data: Path):
    df = read_rows(data)
    essay = df.loc[10, "id"]
    (data / "train" / f"{essay}.txt").unlink()
    first = int(np.flatnonzero(df["id"] == essay)[0])
    assert_row_error(data, df.loc[first, "discourse_id"], line_of(df, first), f"no essay file train/{essay}.txt")
    n_missing = int((df["id"] == essay).sum())
    el = assert_skipped(data, len(df), "missing_essay", n_missing)
    assert essay not in set(el["id"])


def test_essay_without_rows_is_a_counted_warning(data: Path, caplog: pytest.LogCaptureFixture):
    df = read_rows(data)
    essay = df.loc[0, "id"]
    write_rows(data, df[df["id"] != essay])
    with caplog.at_level(logging.WARNING, logger="feedback_ner.corpus"):
        corpus = load_train(data)  # no error without skip_bad: nothing is wrong with the rows
    assert corpus.report.count("essay_without_rows") == 1
    assert essay not in corpus.texts
    assert corpus.report.n_essay_files == len(corpus.texts) + 1
    assert f"train/{essay}.txt" in corpus.report.summary()
    assert any("essay_without_rows" in r.getMessage() for r in caplog.records)


def test_undecodable_essay_names_file_and_byte(data: Path):
    df = read_rows(data)
    essay = df.loc[3, "id"]
    path = data / "train" / f"{essay}.txt"
    raw = path.read_bytes()
    path.write_bytes(raw[:20] + b"\xff" + raw[20:])
    with pytest.raises(DataError) as info:
        load_train(data)
    msg = str(info.value)
    assert str(path) in msg and "byte 20" in msg and "re-save the file as UTF-8" in msg and "--skip-bad" in msg
    corpus = load_train(data, skip_bad=True)
    n_rows = int((df["id"] == essay).sum())
    assert corpus.report.count("undecodable_essay") == 1 and corpus.report.issues["undecodable_essay"].rows == n_rows
    assert corpus.report.n_rows_skipped == n_rows and f"({n_rows} rows)" in corpus.report.summary()
    assert len(corpus.elements) == len(df) - n_rows and essay not in corpus.texts


def test_undecodable_train_csv_names_byte(data: Path):
    raw = (data / "train.csv").read_bytes()
    (data / "train.csv").write_bytes(raw[:100] + b"\xc3\x28" + raw[100:])
    with pytest.raises(DataError, match=r"train\.csv: byte 100: not valid UTF-8.*re-save the file as UTF-8"):
        load_train(data, skip_bad=True)


def test_duplicate_discourse_ids_keep_the_first(data: Path):
    df = read_rows(data)
    first_did = df.loc[2, "discourse_id"]
    did, line = edit_row(data, 9, discourse_id=first_did)
    assert_row_error(data, did, line, f"discourse_id '{first_did}' already used on line {line_of(df, 2)}")
    el = assert_skipped(data, len(df), "duplicate_discourse_id", 1)
    kept = el[el["discourse_id"] == first_did]
    assert len(kept) == 1 and kept["line"].iloc[0] == line_of(df, 2)


def test_unknown_class_names_value_and_allowed_classes(data: Path):
    n = len(read_rows(data))
    did, line = edit_row(data, 4, discourse_type="Claimz")
    assert_row_error(data, did, line, "discourse_type 'Claimz' is not a class", "use one of: " + ", ".join(CLASSES))
    assert_skipped(data, n, "unknown_class", 1)


@pytest.mark.parametrize("value", ["", "3 4 x", "1.5 2", "-1 0"])
def test_bad_predictionstring(data: Path, value: str):
    n = len(read_rows(data))
    did, line = edit_row(data, 6, predictionstring=value)
    assert_row_error(data, did, line, f"predictionstring {value!r} is empty or not space-separated word indices")
    assert_skipped(data, n, "bad_predictionstring", 1)


def test_irregular_spacing_in_predictionstring_is_accepted(data: Path):
    df = read_rows(data)
    words = parse_predictionstring(df.loc[6, "predictionstring"])
    edit_row(data, 6, predictionstring="  " + "\t ".join(map(str, words)) + " ")
    corpus = load_train(data)
    assert list(corpus.elements.loc[6, "word_indices"]) == words


def test_word_index_beyond_essay(data: Path):
    df = read_rows(data)
    n_words = len(read_text(data / "train" / f"{df.loc[8, 'id']}.txt").split())
    did, line = edit_row(data, 8, predictionstring=f"{n_words - 1} {n_words}")
    assert_row_error(data, did, line, f"word index {n_words} but train/{df.loc[8, 'id']}.txt has {n_words} words")
    assert_skipped(data, len(df), "word_index_out_of_range", 1)


def test_overlapping_elements_are_a_counted_warning_both_kept(data: Path):
    df = read_rows(data)
    essay = df.loc[0, "id"]
    rows = np.flatnonzero(df["id"] == essay)
    a, b = int(rows[0]), int(rows[1])
    merged = sorted(
        set(parse_predictionstring(df.loc[a, "predictionstring"]))
        | {parse_predictionstring(df.loc[b, "predictionstring"])[0]}
    )
    edit_row(data, a, predictionstring=" ".join(map(str, merged)))
    corpus = load_train(data)  # a warning, not an error
    assert len(corpus.elements) == len(df)
    assert corpus.report.count("overlapping_elements") == 2
    example = corpus.report.issues["overlapping_elements"].examples[0]
    assert f"line {line_of(df, a)}" in example and f"line {line_of(df, b)}" in example and "share 1 words" in example


def test_skip_bad_keeps_every_valid_row_and_counts_each_kind(data: Path):
    df = read_rows(data)
    df.loc[1, "discourse_type"] = "Nope"
    df.loc[2, "discourse_start"] = "x"
    df.loc[3, "predictionstring"] = ""
    df.loc[4, "discourse_id"] = df.loc[0, "discourse_id"]
    df.loc[5, "predictionstring"] = "99999"
    write_rows(data, df)
    corpus = load_train(data, skip_bad=True)
    report = corpus.report
    counts = {k: report.count(k) for k in report.issues if report.issues[k].action == "skipped"}
    assert counts == {
        "unknown_class": 1,
        "bad_offset": 1,
        "bad_predictionstring": 1,
        "duplicate_discourse_id": 1,
        "word_index_out_of_range": 1,
    }
    kept = [d for i, d in enumerate(df["discourse_id"]) if i not in (1, 2, 3, 4, 5)]
    assert corpus.elements["discourse_id"].tolist() == kept
    assert report.n_rows_skipped == 5
    as_dict = report.to_dict()
    assert as_dict["n_rows_kept"] == len(kept) and as_dict["issues"]["bad_offset"]["count"] == 1
    # without skip_bad the first problem in check order raises
    with pytest.raises(DataError, match="already used"):
        load_train(data)


def test_line_numbers_count_quoted_newlines(data: Path):
    df = read_rows(data)
    df.loc[0, "discourse_text"] = "first line\nsecond line\nthird"
    write_rows(data, df)
    did, line = edit_row(data, 3, discourse_type="Other")
    assert line == line_of(df, 3) and line_of(df, 3) >= 3 + 2 + 2
    assert_row_error(data, did, line, "'Other'")


NEWLINE_VARIANTS: dict[str, Callable[[str], bytes]] = {
    "bom": lambda t: "\ufeff".encode() + t.encode(),
    "crlf": lambda t: t.replace("\n", "\r\n").encode(),
    "lone_cr": lambda t: t.replace("\n", "\r").encode(),
    "bom_crlf_csv_too": lambda t: "\ufeff".encode() + t.replace("\n", "\r\n").encode(),
}


@pytest.mark.parametrize("variant", list(NEWLINE_VARIANTS))
def test_bom_and_newline_variants_give_the_same_text_and_words(corpus_dir: Path, data: Path, variant: str):
    """Issue 12: offsets computed on ``\\n`` text while the files have ``\\r\\n`` or ``\\r`` line ends: the loader
    finds that the offsets only agree with the text read with ``\\r`` as ``\\n``, uses that one and counts it."""
    reference = load_train(corpus_dir)
    encode = NEWLINE_VARIANTS[variant]
    for path in (data / "train").glob("*.txt"):
        path.write_bytes(encode(path.read_bytes().decode("utf-8")))
    if variant == "bom_crlf_csv_too":
        csv_path = data / "train.csv"
        csv_path.write_bytes(encode(csv_path.read_text(encoding="utf-8")))
    corpus = load_train(data)
    assert {k: normalise_newlines(v) for k, v in corpus.texts.items()} == reference.texts
    assert corpus.report.n_rows_kept == reference.report.n_rows_kept
    assert corpus.elements["line"].tolist() == reference.elements["line"].tolist()
    # where a file is kept as stored, its offsets agree with it too (e.g. every element before the first line end)
    for row in corpus.elements.itertuples():
        got = corpus.texts[row.id][row.discourse_start : row.discourse_end]
        assert got.split() == reference.texts[row.id][row.discourse_start : row.discourse_end].split()
    normalised = corpus.report.count("offsets_on_normalised_newlines")
    if variant == "bom":
        assert normalised == 0
    else:
        with_cr = [p.stem for p in (data / "train").glob("*.txt") if b"\r" in p.read_bytes()]
        assert normalised == sum("\r" not in corpus.texts[k] for k in with_cr if k in corpus.texts)
        if variant == "lone_cr":  # one character for one: the offsets fit both readings, the file is kept as stored
            assert normalised == 0 and len(with_cr) > len(corpus.texts) // 2
        else:
            assert normalised > len(corpus.texts) // 2
    texts = load_texts(data / "train")
    assert all(texts[k].split() == reference.texts[k].split() for k in reference.texts)
    if variant != "bom":  # read as stored
        assert sum("\r" in t for t in texts.values()) > len(texts) // 2


@pytest.mark.parametrize("normalised_offsets", [False, True], ids=["offsets_as_stored", "offsets_normalised"])
@pytest.mark.parametrize("with_discourse_text", [True, False], ids=["discourse_text", "no_discourse_text"])
def test_mixed_line_ends_oracle_round_trip_scores_one(tmp_path: Path, normalised_offsets: bool,
                                                      with_discourse_text: bool):
    """Issue 12: essays mixing \\n, \\r\\n, \\r, tabs and non-breaking spaces load without a skipped or
    disagreeing row whichever convention the offsets use, and ground-truth word labels -> one-hot probabilities ->
    decode -> metric scores 1.0."""
    data = write_corpus(tmp_path / "mixed", n=60, seed=5, n_test=2, line_endings="mixed",
                        normalised_offsets=normalised_offsets)
    raw = {p.stem: p.read_bytes().decode("utf-8") for p in (data / "train").glob("*.txt")}
    assert sum("\r\n" in t for t in raw.values()) > 5 and sum("\r" in t.replace("\r\n", "") for t in raw.values()) > 5
    assert sum("\t" in t for t in raw.values()) > 5 and sum("\xa0" in t for t in raw.values()) > 5
    if not with_discourse_text:
        gt = pd.read_csv(data / "train.csv", dtype=str, keep_default_na=False)
        gt.drop(columns=["discourse_text"]).to_csv(data / "train.csv", index=False)
    corpus = load_train(data)
    assert corpus.report.n_rows_kept == corpus.report.n_rows
    normalised = [k for k, t in corpus.texts.items() if t != raw[k]]
    assert corpus.report.count("offsets_on_normalised_newlines") == len(normalised)
    if normalised_offsets:  # files with "\r\n" before an element's end; lone "\r"s alone change no offset
        assert len(normalised) > 10 and all(corpus.texts[k] == normalise_newlines(raw[k]) for k in normalised)
    else:
        assert normalised == []
    table = build_word_table(corpus)
    assert corpus.report.count("offsets_disagree") == 0  # the offsets give the words of predictionstring
    eye = np.eye(NUM_LABELS, dtype=np.float32)
    probs = {essay_id: eye[labels] for essay_id, labels in zip(table["id"], table["labels"])}
    sub = submission_from_probs(probs, PostprocessConfig.zeros())
    gt = pd.read_csv(data / "train.csv")
    assert len(sub) == len(gt)
    assert score(sub, gt).f1 == 1.0


def test_load_texts_dir_files_and_errors(corpus_dir: Path, tmp_path: Path):
    texts = load_texts(corpus_dir / "test")
    files = sorted((corpus_dir / "test").glob("*.txt"))
    assert list(texts) == sorted(p.stem for p in files) and len(texts) == len(files)
    assert load_texts(files[:2]) == {p.stem: texts[p.stem] for p in files[:2]}
    assert load_texts(files[0]) == {files[0].stem: texts[files[0].stem]}
    with pytest.raises(DataError, match="no .txt essay files"):
        load_texts(tmp_path)
    with pytest.raises(DataError, match="no such file or folder"):
        load_texts(tmp_path / "nope")


def test_malformed_csv_is_one_line_error(data: Path):
    lines = (data / "train.csv").read_text().split("\n")
    lines[4] = lines[4] + ",extra,fields"
    (data / "train.csv").write_text("\n".join(lines))
    with pytest.raises(DataError) as info:
        load_train(data, skip_bad=True)
    msg = str(info.value)
    assert "\n" not in msg and str(data / "train.csv") in msg and "not a readable CSV" in msg and "line 5" in msg


def test_essays_one_folder_down_are_named(corpus_dir: Path, tmp_path: Path):
    """Found by probing: essays unzipped into train/train/ gave "no essay file train/<id>.txt (178 more such rows)"
    for row 1, not that train/ holds no essay at all, nor where they are."""
    data = tmp_path / "data"
    (data / "train").mkdir(parents=True)
    shutil.copy(corpus_dir / "train.csv", data / "train.csv")
    shutil.copytree(corpus_dir / "train", data / "train" / "train")
    with pytest.raises(DataError, match=r"train: no .txt essay files; they are in .*train/train: move them up"):
        load_train(data)


def test_an_id_with_spaces_around_it_is_shown_quoted(corpus_dir: Path, tmp_path: Path):
    """Found by probing: "no essay file train/ 025B8A9A021E .txt": the spaces were hard to see."""
    data = Path(shutil.copytree(corpus_dir, tmp_path / "data", ignore=shutil.ignore_patterns(".cache*")))
    rows = pd.read_csv(data / "train.csv", dtype=str, keep_default_na=False)
    first = rows["id"].iat[0]
    rows.loc[0, "id"] = f" {first} "
    rows.to_csv(data / "train.csv", index=False)
    with pytest.raises(DataError, match=f"no essay file train/' {first} '.txt"):
        load_train(data)
