"""Unusual inputs found by probing the commands from outside: each is one clear line (exit 2) or just works.

Scoring files (``score``, ``tune``), ``rescore`` and ``inspect`` reading train.csv as ``train`` does (validated, the
run's ``skip_bad``), a cached word table repeating what it skipped, line numbers after a blank line, whitespace that
tokenizers drop, and folders of essays holding other things.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import assert_one_line_error, run_cli

from feedback_ner.labels import word_offsets
from feedback_ner.texts import load_texts, read_text
from feedback_ner.tokens import Encoder, plain_spaces
from feedback_ner.windows import token_word_ids
from feedback_ner.wordtable import load_word_table


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, corpus_dir: Path) -> dict[str, Path]:
    """Ground truths and submissions with one mistake each, written from the sample corpus's train.csv."""
    root = tmp_path_factory.mktemp("inputs")
    gt = pd.read_csv(corpus_dir / "train.csv", dtype=str, keep_default_na=False)
    sub = gt[["id", "discourse_type", "predictionstring"]].rename(columns={"discourse_type": "class"})
    out = {"gt": corpus_dir / "train.csv"}

    def write(name: str, frame: pd.DataFrame) -> None:
        out[name] = root / f"{name}.csv"
        frame.to_csv(out[name], index=False)

    write("sub", sub)
    write("sub_bad_ps", sub.assign(predictionstring=["1 2 x"] + sub["predictionstring"].tolist()[1:]))
    write("sub_negative", sub.assign(predictionstring=["-1 0"] + sub["predictionstring"].tolist()[1:]))
    write("gt_header_only", gt.iloc[:0])
    write("gt_unknown", gt.assign(discourse_type=gt["discourse_type"].where(gt.index != 3, "Hook")))
    write("gt_lower", gt.assign(discourse_type=gt["discourse_type"].str.lower()))
    write("gt_empty_ps", gt.assign(predictionstring=gt["predictionstring"].where(gt.index != 5, "")))
    out["empty"] = root / "empty.csv"
    out["empty"].write_text("")
    for name, frame in (("sub_cut", sub), ("gt_cut", gt.assign(discourse_text="one line"))):
        lines = frame.to_csv(index=False).splitlines(keepends=True)  # one line per row
        lines[2] = ",".join(lines[2].split(",")[:2]) + "\n"  # line 3 cut short after two fields
        out[name] = root / f"{name}.csv"
        out[name].write_text("".join(lines))
    return out


SCORE_CASES = [
    ("gt", "sub_bad_ps", ["--pred", "sub_bad_ps.csv", "row 1 (id ", "'1 2 x'"]),
    ("gt", "sub_negative", ["--pred", "sub_negative.csv", "row 1 (id ", "'-1 0'"]),
    ("gt_header_only", "sub", ["--gt", "gt_header_only.csv", "no rows"]),
    ("gt_unknown", "sub", ["--gt", "gt_unknown.csv", "row 4 (id ", "'Hook' is not a class", "(1 of "]),
    ("gt_lower", "sub", ["--gt", "gt_lower.csv", "row 1 (id ", "'lead' is not a class", "case matters"]),
    ("gt_empty_ps", "sub", ["--gt", "gt_empty_ps.csv", "row 6 (id ", "predictionstring '' is empty"]),
    ("sub_bad_ps", "sub", ["--gt", "sub_bad_ps.csv", "row 1 (id ", "'1 2 x'"]),
    # a cut line read as empty fields: a predictionstring "" (a false positive) or a class "" ("not a class")
    ("gt", "sub_cut", ["--pred", "sub_cut.csv", "line 3: only 2 of the 3 fields", "ends before predictionstring"]),
    ("gt_cut", "sub", ["--gt", "gt_cut.csv", "line 3: only 2 of the 8 fields", "ends before discourse_start"]),
]


@pytest.mark.parametrize(("gt", "pred", "needles"), SCORE_CASES, ids=[f"{g}-{p}" for g, p, _ in SCORE_CASES])
def test_score_names_the_file_and_row(files, gt, pred, needles):
    """A ground truth or submission that would make the score wrong (an extra macro class, an element that can
    never match) or that is not word indices: one line naming the option, the file, the row and the value."""
    done = run_cli("feedback_ner.score", "--gt", str(files[gt]), "--pred", str(files[pred]), timeout=300)
    assert_one_line_error(done, "score", *needles)


def test_score_still_scores_a_clean_pair(files):
    done = run_cli("feedback_ner.score", "--gt", str(files["gt"]), "--pred", str(files["sub"]), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "macro F1   " in done.stdout and done.stdout.rstrip().endswith("1.0000")


@pytest.mark.parametrize("gt", ["empty", "gt_unknown"])
def test_tune_checks_its_ground_truth(files, bert_run: Path, tmp_path: Path, gt):
    done = run_cli("feedback_ner.tune", "--oof", str(bert_run / "oof.npz"), "--gt", str(files[gt]), "--out",
                   str(tmp_path / "pp.json"), "--trials", "2", "--rounds", "1", "--no-cross-fit", timeout=300)
    assert_one_line_error(done, "tune", "--gt", files[gt].name)
    assert not (tmp_path / "pp.json").exists()


@pytest.fixture(scope="module")
def beyond_corpus(tmp_path_factory: pytest.TempPathFactory, corpus_dir: Path) -> Path:
    """The sample corpus with one row whose predictionstring runs past its essay's words (line 2)."""
    out = Path(shutil.copytree(corpus_dir, tmp_path_factory.mktemp("beyond") / "corpus"))
    df = pd.read_csv(out / "train.csv", dtype=str, keep_default_na=False)
    df.loc[0, "predictionstring"] = "99998 99999"
    df.to_csv(out / "train.csv", index=False)
    return out


def test_rescore_reads_train_csv_as_train_does(bert_run: Path, beyond_corpus: Path, tmp_path: Path):
    """A bad row was a silent unmatchable element (or a traceback for an empty one); now the one-line error of
    ``train``, and ``--skip-bad`` skips and counts it."""
    args = ["--oof", str(bert_run / "oof.npz"), "--data", str(beyond_corpus), "--out", str(tmp_path / "r"),
            "--tune-trials", "2", "--no-nested"]
    done = run_cli("feedback_ner.rescore", *args, timeout=600)
    assert_one_line_error(done, "rescore", "train.csv", "line 2", "99999", "--skip-bad")
    done = run_cli("feedback_ner.rescore", *args, "--skip-bad", timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "skipped 1 rows (word_index_out_of_range)" in done.stderr


def test_inspect_reads_the_data_with_the_runs_skip_bad(bert_run: Path, beyond_corpus: Path, tmp_path: Path):
    """A run trained with ``skip_bad`` is inspected with it (its data had a bad row); ``--no-skip-bad`` refuses."""
    run = Path(shutil.copytree(bert_run, tmp_path / "run"))
    config = yaml.safe_load((run / "config.yaml").read_text())
    config.update(data_dir=str(beyond_corpus), skip_bad=True)
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    done = run_cli("feedback_ner.inspect", str(run), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "skipped 1 rows (word_index_out_of_range)" in done.stderr
    done = run_cli("feedback_ner.inspect", str(run), "--no-skip-bad", "--out", str(tmp_path / "x.html"))
    assert_one_line_error(done, "inspect", "line 2", "99999", "--skip-bad")


def test_a_cached_word_table_repeats_what_it_skipped(beyond_corpus: Path, tmp_path: Path, caplog):
    """Reusing a prepared word table used to say only "reusing": the skipped row went unreported."""
    caplog.set_level(logging.INFO, logger="feedback_ner")
    load_word_table(beyond_corpus, tmp_path / "cache", k=2, skip_bad=True)
    caplog.clear()
    load_word_table(beyond_corpus, tmp_path / "cache", k=2, skip_bad=True)
    assert "reusing the prepared word table" in caplog.text
    assert "skipped 1 rows (word_index_out_of_range)" in caplog.text


def test_a_blank_line_inside_train_csv_keeps_line_numbers(corpus_dir: Path, tmp_path: Path):
    """One blank line in the middle was taken for a final blank line: every later row was named one line early."""
    data = Path(shutil.copytree(corpus_dir, tmp_path / "corpus"))
    df = pd.read_csv(data / "train.csv", dtype=str, keep_default_na=False)
    df["discourse_text"] = "one line"  # one line per row, so that line numbers are easy to count here
    df.loc[4, "discourse_type"] = "Hook"  # data row 5: line 6, line 7 after the blank line
    lines = df.to_csv(index=False).splitlines(keepends=True)
    lines.insert(3, "\n")  # after data rows 1 and 2
    (data / "train.csv").write_text("".join(lines))
    done = run_cli("feedback_ner.prepare", "--data", str(data), "--out", str(tmp_path / "out"), timeout=300)
    assert_one_line_error(done, "prepare", "line 7 ", "'Hook'")


def test_a_train_csv_line_cut_short_is_named_or_skipped_and_counted(corpus_dir: Path, tmp_path: Path):
    """Found reading the code: a row cut short (pandas reads its missing fields as empty) was refused as
    "discourse_type '' is not a class", or skipped as such. Empty fields with every comma in place are not cut."""
    data = Path(shutil.copytree(corpus_dir, tmp_path / "corpus"))
    df = pd.read_csv(data / "train.csv", dtype=str, keep_default_na=False)
    df["discourse_text"] = "one line"
    df["discourse_type_num"] = ""  # an empty last-but-one field: a full row all the same
    lines = df.to_csv(index=False).splitlines(keepends=True)
    lines[4] = ",".join(lines[4].split(",")[:4]) + "\n"  # data row 4, line 5: id, discourse_id, start, end
    (data / "train.csv").write_text("".join(lines))
    done = run_cli("feedback_ner.prepare", "--data", str(data), "--out", str(tmp_path / "out"), timeout=300)
    assert_one_line_error(done, "prepare", "train.csv", f"line 5 (discourse_id {df['discourse_id'][3]})",
                          "only 4 of the 8 fields", "ends before discourse_text", "--skip-bad")
    from feedback_ner.corpus import load_train

    corpus = load_train(data, skip_bad=True)
    assert corpus.report.issues["short_row"].count == 1 and corpus.report.n_rows_kept == len(df) - 1
    assert set(corpus.report.issues) <= {"short_row", "overlapping_elements", "offsets_disagree"}


ODD_SPACES = "\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u2028\u2029\u3000"


@pytest.mark.parametrize("arch", ["bert", "longformer", "deberta-v2", "modernbert"])
def test_every_word_gets_a_token_whatever_whitespace_separates_it(tiny_models, arch):
    """``str.split()`` splits at these characters; BERT's cleaner drops some ("s\\x85a" -> "sa", so word "a" had no
    token and was always predicted O) and keeps others inside a word. Each becomes a space before tokenising."""
    from transformers import AutoTokenizer

    text = "Start " + " ".join(f"th{c}e" for c in ODD_SPACES) + " end."  # "the" is one token: word "e" had none
    assert plain_spaces(text).split() == text.split() and len(plain_spaces(text)) == len(text)
    tokens = Encoder(AutoTokenizer.from_pretrained(tiny_models(arch))).encode([text])
    starts, ends = word_offsets(text)
    words = token_word_ids(starts, ends, tokens.starts.astype("int64"), tokens.ends.astype("int64"))
    assert set(words[words >= 0].tolist()) == set(range(len(text.split())))


def test_essay_folders_leave_out_what_is_not_an_essay(tmp_path: Path, caplog):
    """A subfolder or a broken link named ``*.txt`` was a traceback; other files were left out without a word; an
    upper-case ``.TXT`` essay was not read."""
    (tmp_path / "A1.txt").write_text("one essay\n")
    (tmp_path / "B2.TXT").write_text("another essay\n")
    (tmp_path / "odd.txt").mkdir()
    (tmp_path / "readme.md").write_text("notes\n")
    os.symlink(tmp_path / "gone", tmp_path / "broken.txt")
    with caplog.at_level(logging.WARNING, logger="feedback_ner"):
        texts = load_texts(tmp_path)
    assert texts == {"A1": "one essay\n", "B2": "another essay\n"}
    assert "3 entries are not .txt essay files and are left out (broken.txt, odd.txt/, readme.md)" in caplog.text
    assert read_text(tmp_path / "B2.TXT") == "another essay\n"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32"])
def test_essays_with_a_unicode_byte_order_mark_are_read(tmp_path: Path, encoding: str):
    """A UTF-16/32 file says its encoding in its byte-order mark: read it (the mark is not text); a Latin-1 file
    says nothing and stays a one-line error."""
    text = "Caf\u00e9 essays\u2019 words\r\nsecond line \u00fc"
    raw = text.encode(encoding)
    if encoding == "utf-16-be":
        raw = b"\xfe\xff" + raw
    (tmp_path / "A.txt").write_bytes(raw)
    assert read_text(tmp_path / "A.txt") == text
    (tmp_path / "B.txt").write_bytes("caf\u00e9".encode("latin-1"))
    with pytest.raises(ValueError, match="B.txt: byte 3: not valid UTF-8"):
        read_text(tmp_path / "B.txt")


def test_a_utf16_corpus_trains_like_its_utf8_copy(corpus_dir: Path, tmp_path: Path):
    """train.csv and essays saved as UTF-16: the same validated rows and texts."""
    from feedback_ner.corpus import load_train

    data = Path(shutil.copytree(corpus_dir, tmp_path / "corpus"))
    for path in [data / "train.csv", *sorted((data / "train").glob("*.txt"))[:5]]:
        path.write_bytes(path.read_bytes().decode("utf-8").encode("utf-16"))
    a, b = load_train(corpus_dir), load_train(data)
    assert a.texts == b.texts
    pd.testing.assert_frame_equal(a.elements.drop(columns="word_indices"), b.elements.drop(columns="word_indices"))


def test_predictionstrings_in_another_order_agree_with_their_offsets(corpus_dir: Path, tmp_path: Path):
    """"5 3 4" (or "3 3 4") names the words offsets give as 3-5 (3-4): no disagreement to report."""
    from feedback_ner.corpus import load_train
    from feedback_ner.wordtable import build_word_table

    def disagreements(data: Path) -> int:
        corpus = load_train(data)
        build_word_table(corpus)
        return corpus.report.count("offsets_disagree")

    data = Path(shutil.copytree(corpus_dir, tmp_path / "corpus"))
    df = pd.read_csv(data / "train.csv", dtype=str, keep_default_na=False)
    words = df["predictionstring"].str.split()
    df["predictionstring"] = [" ".join(w[::-1] if i % 2 else w[:1] + w) for i, w in enumerate(words)]
    df.to_csv(data / "train.csv", index=False)
    assert disagreements(data) == disagreements(corpus_dir)


def test_the_word_table_cache_sees_every_essay_file_load_train_reads(corpus_dir: Path, tmp_path: Path):
    """An upper-case .TXT essay is read by load_train: adding or editing one must make the cached table stale."""
    from feedback_ner.wordtable import fingerprint

    data = Path(shutil.copytree(corpus_dir, tmp_path / "corpus"))
    before = fingerprint(data, 5, 42, False)
    (data / "train" / "EXTRA.TXT").write_text("an essay with an upper-case extension\n")
    assert fingerprint(data, 5, 42, False) != before


def test_the_word_table_cache_sees_a_train_csv_edit_that_keeps_its_size_and_time(corpus_dir: Path, tmp_path: Path):
    """Found probing from outside: the cache was keyed on train.csv's size and mtime, so labels edited to words of
    the same length and the time kept (``cp -p``, ``rsync -a``, ``touch -r``, an unpacked archive) trained and were
    scored on the old labels, "inputs unchanged"."""
    from feedback_ner.wordtable import load_word_table

    data = Path(shutil.copytree(corpus_dir, tmp_path / "corpus"))
    csv = data / "train.csv"
    _, elements = load_word_table(data, tmp_path / "cache")
    text, stat = csv.read_text(), csv.stat()
    edited = text.replace(",Position,Position", ",Evidence,Position", 3)  # two class names of 8 characters
    assert edited != text and len(edited) == len(text)
    csv.write_text(edited)
    os.utime(csv, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert csv.stat().st_size == stat.st_size and csv.stat().st_mtime_ns == stat.st_mtime_ns
    _, again = load_word_table(data, tmp_path / "cache")
    counts = again["discourse_type"].value_counts()
    assert counts["Evidence"] == elements["discourse_type"].value_counts()["Evidence"] + 3


def test_a_line_of_commas_alone_is_named_an_empty_row_on_its_own_line(corpus_dir: Path, tmp_path: Path):
    """Found probing from outside: a spreadsheet's ",,,,,,," row after a blank line was refused as "id: no essay file
    train/.txt", and every row after it was named one line early (the line walk skipped the row pandas keeps)."""
    data = Path(shutil.copytree(corpus_dir, tmp_path / "corpus"))
    df = pd.read_csv(data / "train.csv", dtype=str, keep_default_na=False)
    df["discourse_text"] = "one line"
    df.loc[6, "discourse_type"] = "Hook"  # data row 7: line 8, line 11 after the three lines below
    lines = df.to_csv(index=False).splitlines(keepends=True)
    lines[3:3] = ["\n", ",,,,,,,\n", "   \n"]  # blank, commas alone (line 5), whitespace only
    (data / "train.csv").write_text("".join(lines))
    done = run_cli("feedback_ner.prepare", "--data", str(data), "--out", str(tmp_path / "out"), timeout=300)
    assert_one_line_error(done, "prepare", "line 5: every field is empty", "delete the line")
    from feedback_ner.corpus import load_train

    report = load_train(data, skip_bad=True).report
    assert report.issues["empty_row"].count == 1 and report.issues["unknown_class"].count == 1
    assert report.issues["unknown_class"].examples[0].startswith("line 11 ")


def test_two_files_of_one_essay_in_a_texts_folder_are_both_named(tmp_path: Path):
    """Found probing from outside: a.txt and a.TXT in --texts were refused naming one of them, "given twice; pass
    each essay once" (nothing was passed twice: a folder was given)."""
    from feedback_ner.errors import DataError

    (tmp_path / "a.txt").write_text("an essay\n")
    (tmp_path / "a.TXT").write_text("an essay\n")
    (tmp_path / "b.txt").write_text("another essay\n")
    with pytest.raises(DataError, match=r"a.TXT and a.txt: two files for essay 'a' .*; keep one"):
        load_texts(tmp_path)
