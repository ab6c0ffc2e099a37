"""A user's mistakes on inspect, runs and lengths (issue 15, conventions of issue 12): one line, exit code 2."""

from __future__ import annotations

import pytest
from conftest import assert_one_line_error, run_cli


def cases(tmp, corpus_dir):
    (tmp / "empty").mkdir(exist_ok=True)
    (tmp / "bad.csv").write_text("id,label\nx,y\n")
    _user_files(tmp, corpus_dir)
    return [
        ("inspect", [str(tmp / "nope")], ["nope", "run folder"]),
        ("inspect", [str(tmp / "empty")], ["empty", "oof.npz"]),
        ("inspect", [str(tmp / "bad.csv"), "--data", str(corpus_dir)], ["bad.csv", "predictionstring"]),
        ("inspect", [str(tmp / "empty"), "--max-essays", "0"], ["--max-essays 0"]),
        ("runs", [str(tmp / "nope")], ["nope", "no such folder"]),
        ("runs", [str(tmp / "empty")], ["no run", "cv.csv"]),
        ("lengths", ["--data", str(tmp / "empty"), "--model", "x"], ["empty", ".txt"]),
        ("lengths", ["--data", str(corpus_dir), "--model", str(tmp / "no-model")], ["--model", "no-model"]),
        ("lengths", ["--data", str(corpus_dir), "--model", "x", "--lengths", "8"], ["--lengths 8"]),
        # found by probing (2026-12-01): outputs written over the user's files, a CSV measured as one essay, an image
        # format from the name (a traceback), a missing --data accepted
        ("inspect", [str(tmp / "empty"), "--csv", str(tmp / "train.csv")], ["--csv", "train.csv", "not a CSV table"]),
        ("inspect", [str(tmp / "empty"), "--out", str(tmp / "notes.txt")], ["--out", "notes.txt", "not a HTML page"]),
        ("runs", [str(tmp / "empty"), "--csv", str(tmp / "train.csv")], ["--csv", "train.csv", "not a CSV table"]),
        ("runs", [str(tmp / "empty"), "--png", str(tmp / "table.txt")], ["--png", "table.txt", "ending in .png"]),
        ("runs", [str(tmp / "empty"), "--png", str(tmp / "old.png")], ["--png", "old.png", "not a PNG"]),
        ("runs", [str(tmp / "empty"), "--data", str(tmp / "nope")], ["--data", "nope", "train.csv"]),
        ("lengths", ["--data", str(corpus_dir), "--model", "x", "--png", str(tmp / "h.txt")], ["--png", ".png"]),
        ("lengths", ["--data", str(tmp / "train.csv"), "--model", "x"], ["train.csv", "not an essay file"]),
        ("inspect", [str(tmp / "empty"), "--out", str(tmp / "page.png")], ["--out", "page.png", "ending in .html"]),
        ("inspect", [str(tmp / "other.csv"), "--data", str(corpus_dir), "--out", str(tmp / "p.html")],
         ["other.csv", "none of its 1 essays is in", "is --data the corpus"]),
        # found by probing (2026-12-01, later): any PNG counted as the command's own chart (a run's cv.png), any
        # JSON object as tune's post-processing (a model's config.json)
        ("runs", [str(tmp / "empty"), "--png", str(tmp / "cv.png")], ["--png", "cv.png", "not a PNG"]),
        ("lengths", ["--data", str(corpus_dir), "--model", "x", "--png", str(tmp / "cv.png")], ["cv.png", "not a PNG"]),
        ("tune", ["--oof", str(tmp / "empty" / "oof.npz"), "--gt", str(tmp / "train.csv"), "--out",
                  str(tmp / "config.json")], ["--out", "config.json", "not a json file this command wrote"]),
    ]


def _user_files(tmp, corpus_dir) -> list[str]:
    (tmp / "train.csv").write_bytes((corpus_dir / "train.csv").read_bytes())
    (tmp / "notes.txt").write_text("my notes\n")
    (tmp / "old.png").write_text("not an image of ours\n")
    (tmp / "other.csv").write_text("id,class,predictionstring\nnot_an_essay,Claim,1 2 3\n")
    (tmp / "config.json").write_text('{"model_type": "bert"}\n')
    if not (tmp / "cv.png").exists():  # a chart of the package's own, of another command (train's CV chart)
        import pandas as pd

        from feedback_ner.report import bar_chart

        bar_chart(pd.DataFrame({"fold_0": [0.5]}, index=["Claim"]), tmp / "cv.png", title="CV F1")
    return ["train.csv", "notes.txt", "old.png"]


@pytest.mark.parametrize("index", range(22))
def test_one_line_errors(tmp_path, corpus_dir, index):
    command, args, needles = cases(tmp_path, corpus_dir)[index]
    done = run_cli(f"feedback_ner.{command}", *args)
    assert_one_line_error(done, command, *needles)
