"""Sweeps (issue 6): per-trial windows, resume after SIGKILL, shared studies, best config, space validation."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from conftest import small_config

from feedback_ner import train
from feedback_ner.config import parse_config
from feedback_ner.sweep import SweepOptions, load_space, main, parse_space, run_sweep

ROOT = Path(__file__).resolve().parents[1]


def tiny_sweep_config(corpus_dir: Path, model_dir: Path, out: Path) -> Path:
    """A base config whose trials take seconds: 24 essays, 2 folds, short windows."""
    values = small_config(
        corpus_dir, model_dir, out / "unused", stride=16, per_device_eval_batch_size=32, max_essays=24
    )
    out.mkdir(parents=True, exist_ok=True)
    path = out / "base.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def write_space(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


SPACE = """
learning_rate: {type: float, low: 1.0e-3, high: 5.0e-3, log: true}
warmup_steps: {type: float, low: 0.0, high: 0.2}
lr_scheduler_type: {type: categorical, choices: [linear, cosine]}
max_length: {type: categorical, choices: [64, 128]}
"""


def study_trials(db: Path, study: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=study, storage=f"sqlite:///{db}").get_trials(deepcopy=False)


def finished(trials) -> list:
    return [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]


def test_trials_train_on_their_own_max_length_and_best_config_trains(tmp_path, corpus_dir, tiny_models, capsys):
    """A swept max_length really changes the training windows; best.yaml trains with feedback_ner.train as is."""
    base = tiny_sweep_config(corpus_dir, tiny_models("bert"), tmp_path)
    space = write_space(tmp_path / "space.yaml", SPACE + "head: {type: categorical, choices: [linear, gru]}\n"
                        "rnn_hidden_size: 16\n")
    out = tmp_path / "sweep"
    # seed 3 draws both max_length values among the first trials (the sampler is random for its first 10 draws)
    opts = SweepOptions(config=str(base), space=str(space), n_trials=3, out=str(out), seed=3, pruner="none")
    result = run_sweep(opts)
    trials = finished(study_trials(out / "sweeps.db", opts.study))
    assert len(trials) == 3
    lengths = {t.params["max_length"] for t in trials}
    assert lengths == {64, 128}, "the seed should draw both window lengths"
    windows = {}
    for t in trials:
        # the longest training window and the widest batch the model saw are the trial's max_length
        assert t.user_attrs["train_window_tokens"] == t.params["max_length"]
        assert t.user_attrs["train_batch_tokens"] == t.params["max_length"]
        windows[t.params["max_length"]] = t.user_attrs["train_windows"]
        assert 0.0 <= t.value <= 1.0 and t.value == t.user_attrs["fold_f1"]["0"]
    assert windows[64] > windows[128], "shorter windows cut the same essays into more windows"

    # results: table printed and saved, plots, best config
    printed = capsys.readouterr().out
    assert "3 finished trials" in printed and "eval_f1" in printed and "max_length" in printed
    assert result.trials["eval_f1"].is_monotonic_decreasing and result.trials["eval_f1"].iloc[0] == max(
        t.value for t in trials)
    assert (out / "trials.csv").is_file() and (out / "optimization_history.png").stat().st_size > 1000
    assert (out / "param_importances.png").stat().st_size > 1000
    best = yaml.safe_load((out / "best.yaml").read_text())
    best_trial = result.study.best_trial
    for name, value in best_trial.params.items():
        assert best[name] == value and type(best[name]) is type(value), name
    assert isinstance(best["learning_rate"], float) and isinstance(best["warmup_steps"], float)
    assert best["max_essays"] == 24 and best["rnn_hidden_size"] == 16  # base + pinned fields kept
    model_args, data_args, train_args = parse_config(out / "best.yaml")
    assert train_args.learning_rate == best_trial.params["learning_rate"]
    assert data_args.max_length == best_trial.params["max_length"] and model_args.head == best_trial.params["head"]

    assert train.main(["--config", str(out / "best.yaml"), "--folds", "0"]) == 0
    metrics = (Path(best["output_dir"]) / "fold_0" / "metrics.json")
    assert metrics.is_file()


def _sweep_cmd(base: Path, space: Path, out: Path, n: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "feedback_ner.sweep", "--config", str(base), "--space", str(space),
            "--n-trials", str(n), "--out", str(out), "--study", "s", *extra]


def _states(db: Path) -> dict[int, str]:
    """Trial number -> state; a RUNNING trial that already recorded its worker reads RUNNING+worker."""
    if not db.is_file():
        return {}
    try:
        with sqlite3.connect(db, timeout=30) as con:
            states = dict(con.execute("select number, state from trials"))
            claimed = {n for (n,) in con.execute(
                "select t.number from trials t join trial_user_attributes a on a.trial_id = t.trial_id "
                "where a.key = 'worker'")}
    except sqlite3.OperationalError:  # tables not created yet
        return {}
    return {n: s + "+worker" if s == "RUNNING" and n in claimed else s for n, s in states.items()}


ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


def test_sigkill_mid_trial_then_rerun_continues_the_study(tmp_path, corpus_dir, tiny_models):
    """Kill a sweep during its second trial; the same command keeps trial 0 and finishes the study at N trials."""
    base = tiny_sweep_config(corpus_dir, tiny_models("longformer"), tmp_path)
    space = write_space(tmp_path / "space.yaml", SPACE + "num_train_epochs: 2\n")
    out = tmp_path / "sweep"
    cmd = _sweep_cmd(base, space, out, 3, "--seed", "1")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    db = out / "sweeps.db"
    deadline = time.time() + 240
    while time.time() < deadline:
        states = _states(db)
        if "COMPLETE" in states.values() and "RUNNING+worker" in states.values():
            break
        assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
        time.sleep(0.3)
    time.sleep(1.0)  # into the second trial's training
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = _states(db)
    complete_before = {n for n, s in before.items() if s == "COMPLETE"}
    killed = [n for n, s in before.items() if s.startswith("RUNNING")]
    assert complete_before and len(killed) == 1 and len(complete_before) < 3
    values_before = {t.number: t.value for t in study_trials(db, "s") if t.number in complete_before}

    again = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, (again.stdout + again.stderr)[-3000:]
    trials = study_trials(db, "s")
    assert len(finished(trials)) == 3
    by_number = {t.number: t for t in trials}
    assert by_number[killed[0]].state.name == "FAIL", "the killed trial neither blocks nor counts"
    for n, value in values_before.items():  # completed trials kept as they were
        assert by_number[n].state.name == "COMPLETE" and by_number[n].value == value
    assert "left RUNNING by a process that died" in again.stdout + again.stderr
    assert "3 finished trials" in again.stdout


def test_two_workers_on_one_sqlite_study_make_n_trials_together(tmp_path, corpus_dir, tiny_models):
    base = tiny_sweep_config(corpus_dir, tiny_models("longformer"), tmp_path)
    space = write_space(tmp_path / "space.yaml", SPACE)
    out = tmp_path / "sweep"
    procs = [
        subprocess.Popen(_sweep_cmd(base, space, out, 3, "--seed", str(seed)), cwd=ROOT, env=ENV,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for seed in (1, 2)
    ]
    logs = [p.communicate(timeout=300)[0] for p in procs]
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log[-3000:]
    trials = study_trials(out / "sweeps.db", "s")
    done = finished(trials)
    assert len(done) == 3 and len({t.number for t in done}) == 3
    assert not [t for t in trials if t.state.name == "RUNNING"]
    workers = {t.user_attrs["worker"]["pid"] for t in done}
    assert workers == {p.pid for p in procs}, "both workers ran trials of the one study"


def test_space_validation_errors(tmp_path):
    def err(text: str) -> str:
        with pytest.raises(ValueError) as e:
            load_space(write_space(tmp_path / "bad.yaml", text))
        return str(e.value)

    assert "bad.yaml: learning_rat: not a config field. Did you mean 'learning_rate'" in err(
        "learning_rat: {type: float, low: 0.1, high: 0.2}")
    assert "type='uniform'; use one of float, int, categorical" in err("weight_decay: {type: uniform, low: 0, high: 1}")
    assert "low=0.3 must be smaller than high=0.2" in err("learning_rate: {type: float, low: 0.3, high: 0.2}")
    assert "log scale needs low > 0" in err("learning_rate: {type: float, low: 0, high: 0.2, log: true}")
    assert "'abc' is not a number" in err("learning_rate: {type: float, low: abc, high: 0.2}")
    assert "is not an integer" in err("num_train_epochs: {type: int, low: 1.5, high: 3}")
    assert "unknown key(s) ['hgih']" in err("learning_rate: {type: float, low: 0.1, hgih: 0.2}")
    assert "needs low and high (missing high)" in err("learning_rate: {type: float, low: 0.1}")
    assert "categorical needs a non-empty list" in err("head: {type: categorical, choices: []}")
    assert "data_dir: cannot be swept" in err("data_dir: {type: categorical, choices: [a, b]}")
    assert "no field is swept" in err("max_essays: 10")
    assert "a search space is a mapping" in err("- 1\n- 2\n")
    with pytest.raises(FileNotFoundError, match="missing.yaml: search-space file not found"):
        load_space(tmp_path / "missing.yaml")
    # YAML reads 1e-3 (no dot) as a string: accepted as a number
    space = parse_space({"learning_rate": {"type": "float", "low": "1e-4", "high": "1e-3", "log": True}})
    assert space.params["learning_rate"].low == 1e-4
    with pytest.raises(ValueError, match="stride can be 100 while max_length can be 64"):
        parse_space({"max_length": {"type": "categorical", "choices": [64, 128]}}).check_data_args(512, 100)
    # the demo space is valid and pins fields as plain values
    demo = load_space(ROOT / "sweeps" / "demo.yaml")
    assert "max_length" in demo.params and demo.fixed["max_essays"] > 0


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for option in ("--config", "--space", "--n-trials", "--storage", "--study", "--folds", "--out"):
        assert option in text


def test_cli_reports_a_bad_space_in_one_line(tmp_path, capsys):
    space = write_space(tmp_path / "s.yaml", "learning_rate: {type: float, low: 1, high: 0.5}\n")
    with pytest.raises(SystemExit) as e:
        main(["--config", str(ROOT / "configs" / "demo.yaml"), "--space", str(space)])
    assert e.value.code == 2
    assert "s.yaml: learning_rate: low=1.0 must be smaller than high=0.5" in capsys.readouterr().err
