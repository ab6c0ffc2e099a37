"""A user's mistakes on inspect, runs and lengths (issue 15, conventions of issue 12): one line, exit code 2."""

from __future__ import annotations

import pytest
from conftest import assert_one_line_error, run_cli


def cases(tmp, corpus_dir):
    (tmp / "empty").mkdir(exist_ok=True)
    (tmp / "bad.csv").write_text("id,label\nx,y\n")
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
    ]


@pytest.mark.parametrize("index", range(9))
def test_one_line_errors(tmp_path, corpus_dir, index):
    command, args, needles = cases(tmp_path, corpus_dir)[index]
    done = run_cli(f"feedback_ner.{command}", *args)
    assert_one_line_error(done, command, *needles)
