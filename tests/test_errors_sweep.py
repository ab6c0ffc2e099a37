"""Bad input for the sweep command (issue 12): one line `feedback-ner sweep: error: ...`, exit code 2, no traceback.

The table runs in this process through the console script's dispatcher (`feedback_ner.cli.main(["sweep", ...])`,
what `feedback-ner sweep` runs): a subprocess per case would spend most of its time importing torch. One case also
runs as a real subprocess (`python -m feedback_ner.sweep`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
import yaml
from conftest import assert_one_line_error, run_cli, small_config

from feedback_ner import cli
from feedback_ner.config import parse_config
from feedback_ner.search import load_space
from feedback_ner.study import STUDY_ATTR, study_stamp

SPACE = "learning_rate: {type: float, low: 1.0e-3, high: 5.0e-3, log: true}\n"

# (case id, what replaces the defaults: {"space": text, "config": text, "args": [...]}, needles in the error line)
CASES = [
    ("space-missing", {"args": ["--space", "{tmp}/nothere.yaml"]}, ["nothere.yaml", "search-space file not found"]),
    ("space-not-yaml", {"space": "learning_rate: {type: float"}, ["space.yaml", "not valid YAML"]),
    ("space-empty", {"space": ""}, ["space.yaml", "an empty file"]),
    ("space-unknown-field", {"space": "learning_rat: {type: float, low: 0.1, high: 0.2}\n"},
     ["space.yaml", "learning_rat", "Did you mean 'learning_rate'"]),
    ("space-not-sweepable", {"space": "data_dir: {type: categorical, choices: [a, b]}\n"},
     ["space.yaml", "data_dir", "cannot be swept"]),
    ("space-low-above-high", {"space": "learning_rate: {type: float, low: 1.0, high: 0.5}\n"},
     ["space.yaml", "learning_rate", "low=1.0 must be smaller than high=0.5"]),
    ("space-draws-bad-value", {"space": "max_length: {type: categorical, choices: [16, 128]}\n"},
     ["space.yaml", "max_length=16", "stride=16"]),
    ("space-bad-head", {"space": "head: {type: categorical, choices: [linear, cnn]}\n"},
     ["space.yaml", "head='cnn'"]),
    ("space-float-for-a-whole-number", {"space": "per_device_train_batch_size: {type: float, low: 1, high: 4}\n"},
     ["space.yaml", "per_device_train_batch_size is a whole-number field", "type: int"]),
    ("space-eval-window-below-stride", {"space": "eval_max_length: {type: int, low: 10, high: 64}\n"},
     ["space.yaml", "eval_max_length=10"]),
    ("config-missing", {"args": ["--config", "{tmp}/nothere-config.yaml"]}, ["nothere-config.yaml", "not found"]),
    ("config-unknown-field", {"config": "learn_rate: 0.1\n"}, ["base.yaml", "learn_rate", "learning_rate"]),
    ("unknown-flag", {"args": ["--learning_ratee", "1"]}, ["--learning_ratee"]),
    ("n-trials-zero", {"args": ["--n-trials", "0"]}, ["--n-trials 0"]),
    ("n-trials-not-int", {"args": ["--n-trials", "abc"]}, ["--n-trials", "abc"]),
    ("fold-out-of-range", {"args": ["--folds", "5"]}, ["--folds [5]", "num_folds=2"]),
    ("storage-not-a-url", {"args": ["--storage", "notaurl"]}, ["--storage notaurl", "not a storage URL"]),
    ("storage-unknown-dialect", {"args": ["--storage", "foo://host/db"]}, ["foo://host/db", "not a storage URL"]),
    ("postgres-no-driver", {"args": ["--storage", "postgresql://u@localhost/db"], "no_driver": True},
     ["postgresql://u@localhost/db", "no PostgreSQL driver", "pip install -e .[postgres]"]),
    ("postgres-unreachable", {"args": ["--storage", "postgresql://u:secret@/db?host={tmp}/no-server&port=5"]},
     ["--storage postgresql://u:***@/db", "cannot open the database"]),
    ("sqlite-folder-unwritable", {"args": ["--storage", "sqlite:////proc/no/such.db"]},
     ["sqlite:////proc/no/such.db"]),
    ("data-missing", {"args": ["--data_dir", "{tmp}/no-data"]}, ["data_dir=", "no-data", "folder not found"]),
    ("study-of-another-space", {"study": True, "args": ["--study", "s", "--storage", "sqlite:///{tmp}/other.db"]},
     ["space.yaml", "learning_rate", "study 's'", "another --study"]),
    ("model-missing", {"args": ["--model_name_or_path", "{tmp}/no-model"]}, ["no-model", "folder not found"]),
    # probe B item 14: a bad pinned value is the space file's, not the config's
    ("space-pin-bad-value", {"space": SPACE + "num_train_epochs: abc\n"},
     ["space.yaml: field 'num_train_epochs': 'abc' is not a number"]),
    # probe B item 13: the study was made with max_length 64 (in its stamp); this run has the config's 128
    ("study-of-other-settings", {"stamp": ["--max_length", "64"],
                                 "args": ["--study", "s", "--storage", "sqlite:///{tmp}/stamped.db"]},
     ["study 's'", "(max_length 64 -> 128)", "another --study", "optuna delete-study --study-name s"]),
]


def sweep_cli(argv: list[str], capsys: pytest.CaptureFixture) -> SimpleNamespace:
    """`feedback-ner sweep ARGV` in this process: its exit code and stderr, like a finished subprocess."""
    try:
        code = cli.main(["sweep", *argv])
    except SystemExit as e:  # argparse errors exit
        code = e.code
    return SimpleNamespace(returncode=code, stderr=capsys.readouterr().err)


@pytest.fixture
def base_args(tmp_path, corpus_dir, tiny_models) -> list[str]:
    config = tmp_path / "base.yaml"
    config.write_text(yaml.safe_dump(small_config(corpus_dir, tiny_models("bert"), tmp_path / "run", stride=16)))
    (tmp_path / "space.yaml").write_text(SPACE)
    return ["--config", str(config), "--space", str(tmp_path / "space.yaml"), "--out", str(tmp_path / "out")]


def _override(base: list[str], extra: list[str]) -> list[str]:
    """``base`` with ``extra`` on top: an option already in ``base`` takes the new value (an option may be given
    once), any other is appended."""
    out = list(base)
    for i, token in enumerate(extra):
        if token.startswith("--") and token in out and i + 1 < len(extra):
            out[out.index(token) + 1] = extra[i + 1]
        elif not (i > 0 and extra[i - 1].startswith("--") and extra[i - 1] in base):
            out.append(token)
    return out


@pytest.mark.parametrize("case, change, needles", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line(case, change, needles, base_args, tmp_path, capsys, monkeypatch):
    if "space" in change:
        (tmp_path / "space.yaml").write_text(change["space"])
    if "config" in change:
        (tmp_path / "base.yaml").write_text(change["config"])
    if change.get("no_driver"):
        for module in ("psycopg2", "psycopg"):  # None in sys.modules makes `import` fail as if not installed
            monkeypatch.setitem(sys.modules, module, None)
    args = [a.replace("{tmp}", str(tmp_path)) for a in change.get("args", [])]
    if change.get("study"):  # a study whose trials drew learning_rate from a categorical, not a float range
        study = optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path}/other.db", direction="maximize")
        study.add_trial(optuna.trial.create_trial(
            params={"learning_rate": 0.1}, value=0.5,
            distributions={"learning_rate": optuna.distributions.CategoricalDistribution([0.1, 0.2])}))
    if change.get("stamp"):  # a study stamped, as a sweep stamps it, with the settings these flags make
        config, space = Path(base_args[1]), load_space(base_args[3])
        study = optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path}/stamped.db")
        study.set_user_attr(STUDY_ATTR, study_stamp(parse_config(config, change["stamp"]), space, [0]))
    done = sweep_cli(_override(base_args, args), capsys)
    assert_one_line_error(done, "sweep", *[n.replace("{tmp}", str(tmp_path)) for n in needles])
    assert not (tmp_path / "out").exists(), "found before any file is made"


def test_bad_space_as_a_subprocess(base_args, tmp_path):
    (tmp_path / "space.yaml").write_text("learning_rate: {type: float, low: 1, high: 0.5}\n")
    done = run_cli("feedback_ner.sweep", *base_args, cwd=Path(__file__).resolve().parents[1])
    assert_one_line_error(done, "sweep", "space.yaml: learning_rate: low=1.0 must be smaller than high=0.5")
