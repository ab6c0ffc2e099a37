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


def test_unknown_command_is_a_one_line_error(capsys):
    assert main(["trian"]) == 2
    assert "unknown command 'trian'" in capsys.readouterr().err
