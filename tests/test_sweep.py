"""Sweeps (issues 6, 12, 17): per-trial windows, pruning, best.yaml without the search pins, resume after SIGKILL,
two workers on one study (SQLite and a throw-away PostgreSQL server), space validation; a study belongs to one
configuration and space (probe B item 13)."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
import yaml
from conftest import assert_one_line_error, small_config
from transformers import AutoTokenizer, TrainerControl

from feedback_ner import train
from feedback_ner.config import parse_config
from feedback_ner.errors import FeedbackError
from feedback_ner.kfold import load_data
from feedback_ner.search import FINISHED, Objective, PruningCallback, load_space, parse_space
from feedback_ner.storage import open_storage
from feedback_ner.study import STUDY_ATTR
from feedback_ner.sweep import main

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}

SPACE = """
learning_rate: {type: float, low: 1.0e-3, high: 5.0e-3, log: true}
warmup_steps: {type: float, low: 0.0, high: 0.2}
lr_scheduler_type: {type: categorical, choices: [linear, cosine]}
max_length: {type: categorical, choices: [64, 128]}
"""


def tiny_sweep_config(corpus_dir: Path, model_dir: Path, out: Path, **extra) -> Path:
    """A base config whose trials take seconds: 24 essays, 2 folds, short windows, one epoch."""
    values = small_config(corpus_dir, model_dir, out / "unused", stride=16, per_device_eval_batch_size=32,
                          max_essays=24, **extra)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "base.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def write_space(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def load_trials(url: str, study: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=study, storage=open_storage(url)).get_trials(deepcopy=False)


def finished(trials) -> list:
    return [t for t in trials if t.state.name in FINISHED]


def sweep_cmd(base: Path, space: Path, out: Path, n: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "feedback_ner.sweep", "--config", str(base), "--space", str(space),
            "--n-trials", str(n), "--out", str(out), "--study", "s", *extra]


def test_trials_train_on_their_own_max_length_and_best_config_trains(tmp_path, corpus_dir, tiny_models, capsys):
    """A swept max_length really changes the training windows; the space's pins shape the search but not best.yaml
    (issue 12 item 8); best.yaml trains with feedback_ner.train as it is."""
    base = tiny_sweep_config(corpus_dir, tiny_models("bert"), tmp_path)
    pins = "rnn_hidden_size: 16\nnum_train_epochs: 2\nmax_essays: 20\n"
    space = write_space(tmp_path / "space.yaml", SPACE + "head: {type: categorical, choices: [linear, gru]}\n" + pins)
    out = tmp_path / "sweep"
    # seed 3 draws both max_length values among the first trials (the sampler is random for its first 10 draws)
    assert main(["--config", str(base), "--space", str(space), "--n-trials", "3", "--out", str(out), "--seed", "3",
                 "--pruner", "none", "--study", "s"]) == 0
    trials = finished(load_trials(f"sqlite:///{out / 'sweeps.db'}", "s"))
    assert len(trials) == 3
    assert {t.params["max_length"] for t in trials} == {64, 128}, "the seed should draw both window lengths"
    windows = {}
    for t in trials:
        assert t.user_attrs["train_window_tokens"] == t.params["max_length"]  # the trial's windows, not the base's
        windows[t.params["max_length"]] = t.user_attrs["train_windows"]
        assert 0.0 <= t.value <= 1.0 and t.value == t.user_attrs["fold_f1"]["0"]
        assert len(t.intermediate_values) == 2, "the pinned num_train_epochs=2 ran (one report per epoch)"
    assert windows[64] > windows[128], "shorter windows cut the same essays into more windows"

    printed = capsys.readouterr().out
    assert "3 finished trials" in printed and "eval_f1" in printed and "max_length" in printed
    assert "kept as the best checkpoint" not in printed  # trials keep no checkpoint (issue 12 item 7)
    assert not list(out.rglob("checkpoint-*")) and not list(out.rglob("*.safetensors"))
    table = (out / "trials.csv").read_text().splitlines()
    assert len(table) == 4 and table[0].startswith("trial,state,eval_f1")
    assert (out / "optimization_history.png").stat().st_size > 1000
    best = yaml.safe_load((out / "best.yaml").read_text())
    best_trial = optuna.load_study(study_name="s", storage=f"sqlite:///{out / 'sweeps.db'}").best_trial
    for name, value in best_trial.params.items():
        assert best[name] == value and type(best[name]) is type(value), name
    # base config's fields kept; the search pins (rnn_hidden_size, num_train_epochs, max_essays) left out
    assert best["max_essays"] == 24 and best["stride"] == 16
    assert "rnn_hidden_size" not in best and best["num_train_epochs"] == 1
    model_args, data_args, train_args = parse_config(out / "best.yaml")
    assert train_args.learning_rate == best_trial.params["learning_rate"] and train_args.num_train_epochs == 1
    assert data_args.max_length == best_trial.params["max_length"] and model_args.head == best_trial.params["head"]

    assert train.main(["--config", str(out / "best.yaml"), "--folds", "0"]) == 0
    assert (Path(best["output_dir"]) / "fold_0" / "metrics.json").is_file()


def test_pruned_trial_stops_training_at_once(tmp_path, corpus_dir, tiny_models):
    """The pruning callback reports eval_f1 per epoch and stops the Trainer when the pruner says so (issue 17)."""
    base = tiny_sweep_config(corpus_dir, tiny_models("bert"), tmp_path, num_train_epochs=3)
    space = parse_space({"learning_rate": {"type": "float", "low": 1e-3, "high": 2e-3}})
    configs = parse_config(base)
    tokenizer = AutoTokenizer.from_pretrained(configs[0].model_name_or_path)
    table, gt = load_data(configs[1])
    objective = Objective(configs, space, [0], tokenizer, table, gt)
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=2.0))
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.state.name == "PRUNED"
    assert list(trial.intermediate_values) == [1], "pruned after the first of 3 epochs"

    control = TrainerControl()
    callback = PruningCallback(study.ask(), step_offset=1000)
    callback.on_evaluate(None, None, control, metrics={"eval_loss": 1.0})  # no eval_f1: nothing reported
    callback.on_evaluate(None, None, control, metrics={"eval_f1": 0.5})
    assert callback.scores == [0.5] and callback.pruned and control.should_training_stop


@pytest.mark.slow
def test_sigkill_mid_trial_then_rerun_continues_the_study(tmp_path, corpus_dir, tiny_models):
    """Kill a sweep as its second trial starts (its log line: the trial is stored RUNNING); the same command keeps
    trial 0, fails the dead trial by its stale heartbeat, retries its parameters once and finishes the study at N
    trials. The re-run starts once the grace period (2 heartbeats, plus the database clock's second) has passed
    since the kill: then the dead trial is stale by Optuna's definition (a re-run started sooner rightly leaves it
    to a later check, as it would a live worker's trial)."""
    base = tiny_sweep_config(corpus_dir, tiny_models("bert"), tmp_path)
    space = write_space(tmp_path / "space.yaml", SPACE)
    out = tmp_path / "sweep"
    url = f"sqlite:///{out / 'sweeps.db'}"
    cmd = sweep_cmd(base, space, out, 3, "--seed", "1", "--pruner", "none", "--heartbeat", "1")
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    for line in proc.stdout:  # blocks until the worker writes: no sleeping, no guessing
        seen.append(line)
        if line.startswith("trial 1: ") and "eval_f1" not in line:
            proc.kill()
            killed = time.monotonic()
            break
    proc.wait(timeout=60)
    assert proc.returncode == -9, "".join(seen)[-3000:]
    before = {t.number: t for t in load_trials(url, "s")}
    assert before[0].state.name == "COMPLETE" and before[1].state.name == "RUNNING"
    # stale once the database clock (whole seconds in SQLite) is past the last beat by the grace period (2 beats)
    stale_after = 2 * 1 + 1.1
    time.sleep(max(0.0, killed + stale_after - time.monotonic()))  # no beat can come: the process is dead

    again = subprocess.run(cmd, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, (again.stdout + again.stderr)[-3000:]
    trials = {t.number: t for t in load_trials(url, "s")}
    assert len(finished(trials.values())) == 3 and "3 finished trials" in again.stdout
    assert trials[0].state.name == "COMPLETE" and trials[0].value == before[0].value, "completed trials kept"
    assert trials[1].state.name == "FAIL", "the killed trial neither blocks nor counts"
    retried = [t for t in trials.values() if t.system_attrs.get("failed_trial") == 1]
    assert len(retried) == 1 and retried[0].params == trials[1].params and retried[0].state.name == "COMPLETE"


def test_a_study_belongs_to_one_configuration_and_space(tmp_path, corpus_dir, tiny_models, capsys):
    """Probe B item 13: a re-run whose settings or space would change trial values stops before any trial with one
    line naming the change; settings that change no result (n_trials, seed, logging, eval batch, output folder, a
    flag for a swept field) resume the study; a study made before stamps resumes as before."""
    base = tiny_sweep_config(corpus_dir, tiny_models("bert"), tmp_path)
    space = write_space(tmp_path / "space.yaml", "learning_rate: {type: float, low: 1.0e-3, high: 2.0e-3}\n")
    out = tmp_path / "sweep"
    url = f"sqlite:///{out / 'sweeps.db'}"
    args = ["--config", str(base), "--space", str(space), "--out", str(out), "--study", "s", "--pruner", "none"]
    assert main([*args, "--n-trials", "1", "--seed", "0"]) == 0
    assert main([*args, "--n-trials", "2", "--seed", "5", "--logging_steps", "9", "--per_device_eval_batch_size", "4",
                 "--output_dir", str(tmp_path / "elsewhere"), "--learning_rate", "0.5"]) == 0
    trials = load_trials(url, "s")
    assert len(finished(trials)) == 2 == len(trials)
    assert all(1e-3 <= t.params["learning_rate"] <= 2e-3 for t in trials)
    best = (out / "best.yaml").read_text()
    capsys.readouterr()

    def refused(*extra: str, space_text: str | None = None) -> str:
        changed = write_space(tmp_path / "space2.yaml", space_text) if space_text else space
        code = main([*args[:2], "--space", str(changed), *args[4:], "--n-trials", "3", *extra])
        return assert_one_line_error(SimpleNamespace(returncode=code, stderr=capsys.readouterr().err), "sweep",
                                     "study 's'", "other settings", "another --study", "delete the study")

    assert "(max_length 128 -> 64)" in refused("--max_length", "64")
    assert "(--folds [0] -> [0, 1])" in refused("--folds", "0", "1")
    assert "(space learning_rate float 0.001..0.002 -> float 0.05..0.09)" in refused(
        space_text="learning_rate: {type: float, low: 5.0e-2, high: 9.0e-2}\n")
    assert "(max_essays 24 -> 12)" in refused(
        space_text="learning_rate: {type: float, low: 1.0e-3, high: 2.0e-3}\nmax_essays: 12\n")
    assert "space head (not swept) -> choices ['linear', 'gru']" in refused(
        space_text="learning_rate: {type: float, low: 1.0e-3, high: 2.0e-3}\n"
                   "head: {type: categorical, choices: [linear, gru]}\n")
    assert len(load_trials(url, "s")) == 2, "no trial ran with the other settings"
    assert (out / "best.yaml").read_text() == best
    stamp = optuna.load_study(study_name="s", storage=url).user_attrs[STUDY_ATTR]
    assert stamp["settings"]["max_length"] == 128 and "learning_rate" not in stamp["settings"]

    legacy = tmp_path / "legacy.db"  # a study made before stamps: no user attr, one finished trial
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{legacy}", direction="maximize")
    study.add_trial(optuna.trial.create_trial(
        params={"learning_rate": 1.5e-3}, value=0.25,
        distributions={"learning_rate": optuna.distributions.FloatDistribution(1e-3, 2e-3)}))
    assert main([*args, "--n-trials", "1", "--max_length", "64", "--storage", f"sqlite:///{legacy}"]) == 0
    assert yaml.safe_load((out / "best.yaml").read_text())["learning_rate"] == 1.5e-3


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if found:
        return found[-1].parent
    which = shutil.which("pg_ctl")
    return Path(which).parent if which else None


@pytest.fixture(scope="module")
def postgres_url():
    """A throw-away PostgreSQL server (Debian's `postgresql` package) listening only on a unix socket in a private
    temporary folder (no TCP port to collide with); its URL, then the server is stopped and removed."""
    bin_dir = _pg_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not found: `make services` installs them (apt, as root)")
    root = Path(tempfile.mkdtemp(prefix="feedback-ner-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # postgres refuses to run as root: the cluster belongs to the postgres system user
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            user = None
        if user is None or not shutil.which("runuser"):
            shutil.rmtree(root)
            pytest.skip("running as root without a `postgres` system user or `runuser` to run the server as")
        os.chown(root, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]

    def pg(tool: str, *args: str) -> None:
        subprocess.run([*as_user, str(bin_dir / tool), *args], check=True, capture_output=True, timeout=120)

    data, port = root / "data", "5432"
    pg("initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8")
    pg("pg_ctl", "-D", str(data), "-l", str(root / "server.log"), "-w", "-o",
       f"-k {root} -p {port} -c listen_addresses=''", "start")
    try:
        pg("createdb", "-h", str(root), "-p", port, "-U", "postgres", "sweeps")
        yield f"postgresql://postgres@/sweeps?host={root}&port={port}"
    finally:
        pg("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_two_workers_on_one_study_make_n_trials_together(backend, tmp_path, corpus_dir, tiny_models, request):
    """Two worker processes on one study (issue 17 item 6: a real PostgreSQL server) both finish, and the study has
    its N finished trials (a worker may overshoot by one when both start a trial at the same moment)."""
    url = f"sqlite:///{tmp_path / 'shared.db'}" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    base = tiny_sweep_config(corpus_dir, tiny_models("bert"), tmp_path)
    space = write_space(tmp_path / "space.yaml", SPACE)
    start = time.time()
    procs = [subprocess.Popen(sweep_cmd(base, space, tmp_path / f"w{seed}", 3, "--seed", str(seed), "--storage", url),
                              cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for seed in (1, 2)]
    logs = [p.communicate(timeout=600)[0] for p in procs]
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log[-3000:]
    trials = load_trials(url, "s")
    assert 3 <= len(finished(trials)) <= 4 and len(finished(trials)) == len(trials), [t.state for t in trials]
    print(f"two workers on {backend}: {time.time() - start:.1f} s")


def test_space_validation_errors(tmp_path):
    def err(text: str) -> str:
        with pytest.raises(FeedbackError) as e:
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
    assert "not valid YAML" in err("learning_rate: {type: float")
    with pytest.raises(FeedbackError, match="missing.yaml: search-space file not found"):
        load_space(tmp_path / "missing.yaml")
    # YAML reads 1e-3 (no dot) as a string: accepted as a number
    space = parse_space({"learning_rate": {"type": "float", "low": "1e-4", "high": "1e-3", "log": True}})
    assert space.params["learning_rate"].low == 1e-4
    configs = parse_config(None, overrides={"max_length": 512, "stride": 100})
    with pytest.raises(FeedbackError, match="draw max_length=64, which the config refuses: stride=100"):
        parse_space({"max_length": {"type": "categorical", "choices": [64, 128]}}).check(configs)
    with pytest.raises(FeedbackError, match="head='cnn'"):
        parse_space({"head": {"type": "categorical", "choices": ["linear", "cnn"]}}).check(configs)


@pytest.mark.parametrize("name", ["demo", "pretrained"])
def test_shipped_spaces_are_valid(name):
    """sweeps/pretrained.yaml is the real-data space of issue 12 item 8; every value it can draw is accepted."""
    space = load_space(ROOT / "sweeps" / f"{name}.yaml")
    config = "demo" if name == "demo" else "longformer-base"
    space.check(parse_config(ROOT / "configs" / f"{config}.yaml", overrides={**space.fixed, "bf16": False}))
    assert "max_length" in space.params and "learning_rate" in space.params
    if name == "pretrained":
        assert space.params["learning_rate"].extremes() == [5e-6, 5e-5] and space.params["learning_rate"].log
        assert space.params["max_length"].extremes() == [512, 1024, 1536, 2048]
        assert {"warmup_steps", "lr_scheduler_type", "stride", "head"} <= set(space.params) and not space.fixed


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for option in ("--config", "--space", "--n-trials", "--storage", "--study", "--folds", "--out"):
        assert option in text


@pytest.mark.slow
def test_ctrl_c_mid_trial_is_one_line(tmp_path, corpus_dir, tiny_models):
    """Ctrl-C during a trial: the command's one line (and the trial stored as failed, for the re-run), not
    Optuna's 'Trial 0 failed ... KeyboardInterrupt' warning with its traceback."""
    import signal

    base = tiny_sweep_config(corpus_dir, tiny_models("bert"), tmp_path)
    space = write_space(tmp_path / "space.yaml", SPACE)
    cmd = sweep_cmd(base, space, tmp_path / "sweep", 2, "--seed", "1", "--pruner", "none")
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    for line in proc.stdout:  # blocks until the worker writes: no sleeping
        seen.append(line)
        if line.startswith("trial 0: ") and "eval_f1" not in line:
            proc.send_signal(signal.SIGINT)
            break
    rest, _ = proc.communicate(timeout=120)
    out = "".join(seen) + rest
    assert proc.returncode == 130, out[-3000:]
    assert "feedback-ner sweep: interrupted" in out and "Traceback" not in out and "KeyboardInterrupt" not in out
    assert "Trial 0 failed" not in out
