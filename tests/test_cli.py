"""`feedback-ner --help` and every subcommand's `--help` (issue 2)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from feedback_ner.cli import COMMANDS, main


def test_console_script_lists_every_command():
    exe = shutil.which("feedback-ner") or str(__import__("pathlib").Path(sys.executable).with_name("feedback-ner"))
    done = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    for name in COMMANDS:
        assert f"  {name} " in done.stdout


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_subcommand_has_help(name, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([name, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "usage:" in out and "--help" in out


def test_python_dash_m_entry_point_works():
    done = subprocess.run(
        [sys.executable, "-m", "feedback_ner.train", "--help"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and "--config" in done.stdout
    # python -m feedback_ner <command>: the console script's dispatcher (was "No module named feedback_ner.__main__")
    done = subprocess.run([sys.executable, "-m", "feedback_ner", "score", "--help"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and "--only-predicted-essays" in done.stdout


def test_unknown_command_is_a_one_line_error(capsys):
    assert main(["trian"]) == 2
    assert "unknown command 'trian'" in capsys.readouterr().err


def test_command_wrapper_turns_a_user_error_into_one_line(capsys):
    """Issue 12: a FeedbackError is one line and exit 2; any other exception is a bug and propagates."""
    from feedback_ner.cli import command
    from feedback_ner.errors import FeedbackError

    @command("demo-cmd")
    def bad(argv):
        raise FeedbackError("x.yaml: field 'lr': not a number; write e.g. 2e-5")

    assert bad([]) == 2
    err = capsys.readouterr().err
    assert err == "feedback-ner demo-cmd: error: x.yaml: field 'lr': not a number; write e.g. 2e-5\n"

    @command("demo-cmd")
    def bug(argv):
        raise KeyError("bug")

    with pytest.raises(KeyError):
        bug([])


def test_argument_parser_errors_are_one_line(capsys):
    from feedback_ner.cli import ArgumentParser

    parser = ArgumentParser(prog="feedback-ner x")
    parser.add_argument("--n", type=int)
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args(["--n", "abc"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("feedback-ner x: error: argument --n: invalid int value: 'abc'")


def test_ctrl_c_is_one_line_and_exit_130(capsys):
    """Ctrl-C in a command prints one line (train's says a re-run resumes), not a KeyboardInterrupt traceback."""
    from feedback_ner.cli import command

    @command("train")
    def interrupted(argv=None):  # noqa: ANN001, ANN202
        raise KeyboardInterrupt

    assert interrupted([]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["feedback-ner train: interrupted; the same command resumes where it stopped"]


def test_an_option_is_given_once():
    """Found by probing (and the review): the last of two --folds, --config or --nested/--no-nested won silently."""
    from feedback_ner.cli import repeated_option

    assert repeated_option(["--folds", "0", "--folds", "1"]) == "--folds"
    assert repeated_option(["--lr=1", "--lr", "2"]) == "--lr"
    assert repeated_option(["--nested", "--no-nested"]) == "--no-nested"
    assert repeated_option(["--skip_bad", "true", "--no_skip_bad"]) == "--no_skip_bad"
    assert repeated_option(["--model", "a", "b", "--texts", "t", "--", "--model"]) is None
    assert repeated_option(["--no-texts", "--out", "x"]) is None
