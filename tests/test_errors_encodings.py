"""Files in other encodings are read alike by every command, or refused in one line.

Found by probing from outside: ``score``/``tune``/``ensemble --gt`` refused a UTF-16 ``train.csv`` (and one whose
header reads ``id, discourse_id, ...``) that ``prepare`` and ``train`` had accepted; an essay saved as UTF-16
without a byte-order mark is valid UTF-8 too and was read as text with a NUL after every letter (its words drifted).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from conftest import assert_one_line_error, run_cli

from feedback_ner.errors import DataError
from feedback_ner.score import main as score_main
from feedback_ner.texts import load_texts


def _variant(corpus_dir: Path, tmp: Path, how: str) -> Path:
    text = (corpus_dir / "train.csv").read_text(encoding="utf-8")
    path = tmp / f"{how}.csv"
    if how == "utf16":
        path.write_bytes(text.encode("utf-16"))
    elif how == "utf8-bom":
        path.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode("utf-8"))
    else:  # "spaced-header"
        head, rest = text.split("\n", 1)
        path.write_text(head.replace(",", ", ") + "\n" + rest, encoding="utf-8")
    return path


@pytest.mark.parametrize("how", ["utf16", "utf8-bom", "spaced-header"])
def test_score_reads_every_train_csv_that_training_reads(corpus_dir: Path, tmp_path: Path, how: str, capsys):
    gt = pd.read_csv(corpus_dir / "train.csv", dtype=str, keep_default_na=False)
    pred = tmp_path / "self.csv"
    gt.rename(columns={"discourse_type": "class"})[["id", "class", "predictionstring"]].to_csv(pred, index=False)
    assert score_main(["--gt", str(_variant(corpus_dir, tmp_path, how)), "--pred", str(pred)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1].split()
    assert last[:2] == ["macro", "F1"] and last[-1] == "1.0000"


def test_an_essay_in_utf16_without_a_byte_order_mark_is_refused(bert_run: Path, tmp_path: Path):
    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "A.txt").write_bytes("Students should have a say in what they learn.".encode("utf-16-le"))
    with pytest.raises(DataError, match=r"A\.txt: 46 of its 92 bytes are NUL: UTF-16 or UTF-32 without a byte-order"):
        load_texts(folder)
    done = run_cli("feedback_ner.predict", "--model", str(bert_run), "--texts", str(folder), "--out",
                   str(tmp_path / "s.csv"), timeout=300)
    assert_one_line_error(done, "predict", "A.txt", "bytes are NUL", "re-save the file as UTF-8")


def test_a_header_naming_a_column_twice_is_one_line(corpus_dir: Path, tmp_path: Path, capsys):
    gt = pd.read_csv(corpus_dir / "train.csv", dtype=str, keep_default_na=False)
    pred = gt.rename(columns={"discourse_type": "class"})[["id", "class", "predictionstring"]]
    pred.assign(**{" class": pred["class"]}).to_csv(tmp_path / "sub.csv", index=False)
    assert score_main(["--gt", str(corpus_dir / "train.csv"), "--pred", str(tmp_path / "sub.csv")]) == 2
    assert "column(s) class given twice (spaces aside); keep one" in capsys.readouterr().err


def test_a_submission_in_other_digits_is_refused_as_the_ground_truth_is(corpus_dir: Path, tmp_path: Path, capsys):
    """'٣٤ 5' (Arabic-Indic digits) was read as words 34 and 5 in a submission and refused in the ground truth."""
    gt = pd.read_csv(corpus_dir / "train.csv", dtype=str, keep_default_na=False)
    pred = gt.rename(columns={"discourse_type": "class"})[["id", "class", "predictionstring"]].copy()
    pred.loc[3, "predictionstring"] = "\u0663\u0664 5"
    pred.to_csv(tmp_path / "sub.csv", index=False)
    assert score_main(["--gt", str(corpus_dir / "train.csv"), "--pred", str(tmp_path / "sub.csv")]) == 2
    err = capsys.readouterr().err
    assert "row 4" in err and "is not word indices" in err and len(err.strip().splitlines()) == 1
