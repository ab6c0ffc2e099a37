"""Hyper-parameter search (library): search spaces, the Optuna objective of one trial, the study's results.

A search space is a flat YAML mapping of config fields. An entry is either a distribution
(``learning_rate: {type: float, low: 1.0e-5, high: 5.0e-5, log: true}``, ``{type: int, low: 1, high: 3}``,
``{type: categorical, choices: [linear, cosine]}``) or a plain value that pins that field *for the search only*
(``max_essays: 300`` to search on a subset). Any field of the three config dataclasses can be swept except the ones
that define the data and the model (``NOT_SWEEPABLE``): ``max_length`` / ``stride`` rebuild the windows,
``head`` / ``classifier_dropout`` / ``multi_sample_dropout`` rebuild the model, training fields change the Trainer.

A trial applies its values to the configs with ``dataclasses.replace`` and builds its data and trainer with the
functions ``train`` uses (``kfold.fold_data``, ``kfold.build_trainer``), so a trial trains exactly what
``train --config best.yaml`` would. Its value is the mean over the sweep's folds of each fold's best ``eval_f1``
(the epoch ``train`` would keep); a :class:`PruningCallback` reports every evaluation to Optuna and stops a trial
the pruner gives up on. Trials keep no checkpoint (``save_strategy="no"``).

Why not ``Trainer.hyperparameter_search``: it sets a trial's values as attributes of the Trainer's
``TrainingArguments`` (``Trainer._hp_search_setup``) and trains on the datasets the Trainer was built with, so a
trial could not change ``max_length`` / ``stride`` without overriding private methods. Here ``study.optimize``
calls :class:`Objective`, which builds a new trainer per trial and fold.

Several workers (processes or machines) can share one study through an RDB storage (``storage.open_storage``:
SQLite, or PostgreSQL for several machines): each runs trials until the study has ``n_trials`` finished ones
(complete or pruned), counting the trials other workers started since it joined. A trial whose worker died is
failed by Optuna's heartbeat once its grace period passes, and its parameters are tried once more (Optuna's
``RetryHeartbeatStaleTrialCallback``). ``best.yaml`` is the base config (YAML file + command-line flags) plus the
best trial's swept values: the space's pinned fields are search settings and never reach it. A new study is
stamped (:func:`claim_study`) with the result-changing settings and the space (``config.fingerprint``); a worker
whose settings differ from the stamp stops before any trial.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import gc
import logging
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from transformers import TrainerCallback

from feedback_ner.config import declared_type, field_names, parse_config, read_yaml, to_flat_dict
from feedback_ner.errors import FeedbackError
from feedback_ner.files import atomic_write
from feedback_ner.storage import open_storage, shown_url
from feedback_ner.study import claim_study, study_stamp

logger = logging.getLogger("feedback_ner.search")

# Fields that define the data, the model or the run: a trial cannot change them (pin them in the base config).
NOT_SWEEPABLE = frozenset({"model_name_or_path", "data_dir", "cache_dir", "num_folds", "fold_seed", "max_essays",
                           "skip_bad", "num_proc", "output_dir", "folds", "postprocess"})
PARAM_TYPES = ("float", "int", "categorical")
SPEC_KEYS = {"float": {"low", "high", "log", "step"}, "int": {"low", "high", "log", "step"}, "categorical": {"choices"}}
FINISHED = ("COMPLETE", "PRUNED")
TRIALS_FILE = "trials.csv"
BEST_FILE = "best.yaml"
STEPS_PER_FOLD = 1000  # reported step = fold position * STEPS_PER_FOLD + evaluation number within the fold


@dataclass(frozen=True)
class ParamSpec:
    """One swept field: a float / int range (optionally log-scaled or stepped) or a categorical choice."""

    name: str
    type: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: Any) -> Any:
        """The trial's value (Optuna returns the enqueued value for a retried trial)."""
        if self.type == "float":
            return trial.suggest_float(self.name, self.low, self.high, log=self.log, step=self.step)
        if self.type == "int":
            return trial.suggest_int(self.name, self.low, self.high, log=self.log, step=self.step or 1)
        return trial.suggest_categorical(self.name, list(self.choices))

    def distribution(self) -> Any:
        """The Optuna distribution the parameter draws from."""
        from optuna import distributions as dist

        if self.type == "categorical":
            return dist.CategoricalDistribution(self.choices)
        kind = dist.FloatDistribution if self.type == "float" else dist.IntDistribution
        return kind(self.low, self.high, log=self.log, step=self.step or (1 if self.type == "int" else None))

    def extremes(self) -> list[Any]:
        """The values that bound what the parameter can take (each choice of a categorical)."""
        return list(self.choices) if self.type == "categorical" else [self.low, self.high]


@dataclass
class SearchSpace:
    """The swept parameters and the fields pinned for the search; calling it on a trial suggests every parameter."""

    params: dict[str, ParamSpec]
    fixed: dict[str, Any] = field(default_factory=dict)
    source: str = "<space>"

    def __call__(self, trial: Any) -> dict[str, Any]:
        return {name: spec.suggest(trial) for name, spec in self.params.items()}

    def check(self, configs: tuple[Any, Any, Any]) -> None:
        """Every value the space can draw must be accepted by the configs (their ``__post_init__`` checks), and the
        shortest window with the largest stride too; raise :class:`FeedbackError` naming the space file if not."""
        for name, spec in self.params.items():
            whole = declared_type(name).replace("| None", "").replace("None |", "").strip() == "int"
            if spec.type == "float" and whole:
                raise FeedbackError(f"{self.source}: {name} is a whole-number field; use type: int (a float range "
                                    "draws values like 2.24)")
        drawn = [{name: value} for name, spec in self.params.items() for value in spec.extremes()]
        worst = {k: pick(self.params[k].extremes()) for k, pick in (("max_length", min), ("stride", max),
                                                                     ("eval_max_length", min)) if k in self.params}
        for values in [*drawn, worst]:
            self._try(configs, values)

    def check_study(self, study: Any) -> None:
        """The study's stored trials must have drawn from a compatible space (Optuna refuses, e.g., other choices
        of a categorical field in the middle of a trial)."""
        from optuna.distributions import check_distribution_compatibility

        for t in study.get_trials(deepcopy=False):
            for name, stored in t.distributions.items():
                try:
                    if name in self.params:
                        check_distribution_compatibility(stored, self.params[name].distribution())
                except ValueError as e:
                    raise FeedbackError(f"{self.source}: {name} differs from the space study {study.study_name!r} "
                                        f"was run with ({e}); use another --study or that space.") from None

    def _try(self, configs: tuple[Any, Any, Any], values: dict[str, Any]) -> None:
        try:
            apply_params(configs, values)
        except (ValueError, TypeError) as e:
            drawn = ", ".join(f"{k}={v!r}" for k, v in values.items())
            raise FeedbackError(f"{self.source}: a trial can draw {drawn}, which the config refuses: {e}") from None


def load_space(path: str | os.PathLike) -> SearchSpace:
    """Read and validate a search-space YAML; errors name the file, the field and what to change."""
    path = Path(path)
    if not path.is_file():
        raise FeedbackError(f"{path}: search-space file not found (see sweeps/*.yaml for examples).")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise FeedbackError(f"{path}: not valid YAML: {' '.join(str(e).split())}") from None
    return parse_space(data, source=str(path))


def parse_space(data: Any, source: str = "<space>") -> SearchSpace:
    """A :class:`SearchSpace` from the mapping a space YAML holds (see the module docstring for the format)."""
    if not isinstance(data, dict) or not data:
        got = type(data).__name__ if data is not None else "an empty file"
        raise FeedbackError(f"{source}: a search space is a mapping of config field: {{type: ..., ...}}, got {got}.")
    known = field_names()
    params: dict[str, ParamSpec] = {}
    fixed: dict[str, Any] = {}
    for name, entry in data.items():
        where = f"{source}: {name}"
        if name not in known:
            close = difflib.get_close_matches(str(name), known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise FeedbackError(f"{where}: not a config field.{hint}")
        if not isinstance(entry, dict):
            fixed[name] = entry  # a plain value pins the field for the search
            continue
        if name in NOT_SWEEPABLE:
            raise FeedbackError(f"{where}: cannot be swept (it defines the data, the model or the run); "
                                "give it a plain value to pin it for the search.")
        params[name] = _parse_spec(name, entry, where)
    if not params:
        raise FeedbackError(f"{source}: no field is swept; give at least one field a {{type: ...}} distribution.")
    return SearchSpace(params, fixed, source)


def _parse_spec(name: str, entry: dict[str, Any], where: str) -> ParamSpec:
    kind = entry.get("type")
    if kind not in PARAM_TYPES:
        raise FeedbackError(f"{where}: type={kind!r}; use one of {', '.join(PARAM_TYPES)}.")
    extra = set(entry) - SPEC_KEYS[kind] - {"type"}
    if extra:
        raise FeedbackError(f"{where}: unknown key(s) {sorted(extra)} for type {kind}; "
                            f"allowed: {sorted(SPEC_KEYS[kind])}.")
    if kind == "categorical":
        choices = entry.get("choices")
        if not isinstance(choices, list) or not choices:
            raise FeedbackError(f"{where}: categorical needs a non-empty list, e.g. choices: [linear, cosine].")
        if any(c is not None and not isinstance(c, (str, int, float, bool)) for c in choices):
            raise FeedbackError(f"{where}: choices {choices} must be strings, numbers, booleans or null.")
        if len(set(map(repr, choices))) != len(choices):
            raise FeedbackError(f"{where}: choices {choices} repeat a value.")
        return ParamSpec(name, kind, choices=tuple(choices))
    number = float if kind == "float" else _as_int
    missing = [k for k in ("low", "high") if k not in entry]
    if missing:
        raise FeedbackError(f"{where}: type {kind} needs low and high (missing {missing[0]}).")
    low, high = (_number(entry[k], number, f"{where}.{k}") for k in ("low", "high"))
    if not low < high:
        raise FeedbackError(f"{where}: low={low} must be smaller than high={high}.")
    log = entry.get("log", False)
    if not isinstance(log, bool):
        raise FeedbackError(f"{where}: log={log!r} must be true or false.")
    if log and low <= 0:
        raise FeedbackError(f"{where}: log scale needs low > 0, got low={low}.")
    step = entry.get("step")
    if step is not None:
        step = _number(step, number, f"{where}.step")
        if step <= 0 or (log and (kind == "float" or step != 1)):
            raise FeedbackError(f"{where}: step={step} must be > 0, and a log scale takes no step.")
    return ParamSpec(name, kind, low, high, log, step)


def _as_int(value: Any) -> int:
    as_float = float(value)
    if not as_float.is_integer():
        raise ValueError(value)
    return int(as_float)


def _number(value: Any, kind: Any, where: str) -> Any:
    # YAML reads `1e-4` (no dot) as a string, so numeric strings are accepted.
    try:
        if isinstance(value, bool):
            raise ValueError(value)
        out = kind(value)
    except (TypeError, ValueError):
        raise FeedbackError(f"{where}: {value!r} is not {'an integer' if kind is _as_int else 'a number'}.") from None
    if not math.isfinite(out):
        raise FeedbackError(f"{where}: {value!r} must be finite.")
    return out


def apply_params(configs: tuple[Any, Any, Any], params: dict[str, Any]) -> tuple[Any, Any, Any]:
    """The three configs with ``params`` applied (``dataclasses.replace``: each config validates its new values)."""
    out = []
    for cfg in configs:
        names = {f.name for f in dataclasses.fields(cfg) if f.init}
        mine = {k: v for k, v in params.items() if k in names}
        out.append(dataclasses.replace(cfg, **mine) if mine else cfg)
    return tuple(out)  # type: ignore[return-value]


class PruningCallback(TrainerCallback):
    """Reports every evaluation's ``eval_f1`` to the Optuna trial; stops training when the pruner gives up on it."""

    def __init__(self, trial: Any, step_offset: int = 0) -> None:
        self.trial = trial
        self.step_offset = step_offset
        self.scores: list[float] = []
        self.pruned = False

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):  # noqa: ANN001 (upstream signature)
        if not metrics or "eval_f1" not in metrics:
            return
        self.scores.append(float(metrics["eval_f1"]))
        self.trial.report(self.scores[-1], self.step_offset + len(self.scores))
        if self.trial.should_prune():
            self.pruned = True
            control.should_training_stop = True


class Objective:
    """``objective(trial) -> float`` for ``study.optimize``: the mean over ``folds`` of each fold's best ``eval_f1``.

    ``configs`` are the base (model, data, training) arguments with the space's pins applied; ``table`` / ``gt``
    come from ``kfold.load_data``. Per trial it records ``train_windows``, ``train_window_tokens`` (the longest
    training window) and ``fold_f1`` in the storage (``trial.user_attrs``).
    """

    def __init__(self, configs: tuple[Any, Any, Any], space: SearchSpace, folds: list[int], tokenizer: Any,
                 table: pd.DataFrame, gt: pd.DataFrame, token_cache: Any = None, postprocess: Any = None,
                 study_name: str = "sweep") -> None:
        self.configs, self.space, self.folds = configs, space, list(folds)
        self.tokenizer, self.table, self.gt, self.token_cache = tokenizer, table, gt, token_cache
        self.postprocess, self.study_name = postprocess, study_name
        self._data: dict[tuple[int, str], Any] = {}

    def data(self, fold: int, data_args: Any) -> Any:
        """The fold's windows for these data settings (built once per worker, whichever trial asks)."""
        from feedback_ner.kfold import fold_data

        key = (fold, repr(data_args))
        if key not in self._data:
            self._data[key] = fold_data(self.table, self.gt, fold, self.tokenizer, data_args,
                                        token_cache=self.token_cache)
        return self._data[key]

    def __call__(self, trial: Any) -> float:
        import optuna

        from feedback_ner.kfold import build_trainer

        params = self.space(trial)
        model_args, data_args, train_args = apply_params(self.configs, params)
        logger.info("trial %d: %s", trial.number, ", ".join(f"{k}={_short(v)}" for k, v in params.items()))
        best: dict[int, float] = {}
        for pos, fold in enumerate(self.folds):
            data = self.data(fold, data_args)
            if pos == 0:
                trial.set_user_attr("train_windows", len(data.train))
                trial.set_user_attr("train_window_tokens", longest_window(data.train))
            args = dataclasses.replace(train_args, run_name=f"{self.study_name}-trial{trial.number}-fold{fold}")
            trainer = build_trainer(model_args, data_args, args, data, self.tokenizer, self.postprocess,
                                    log_prefix=f"trial {trial.number} fold {fold} | ")
            pruning = PruningCallback(trial, step_offset=pos * STEPS_PER_FOLD)
            trainer.add_callback(pruning)
            try:
                trainer.train()
                if not pruning.scores:  # eval_strategy "no": score the last epoch
                    trainer.evaluate()
            finally:
                trainer.accelerator.free_memory()  # drops the accelerator's references to model and optimizer
                del trainer
                _release(args)
            best[fold] = max(pruning.scores)
            trial.set_user_attr("fold_f1", {str(k): v for k, v in best.items()})
            if pruning.pruned:
                logger.info("trial %d: pruned after %d evaluation(s) of fold %d (eval_f1 %.4f)",
                            trial.number, len(pruning.scores), fold, pruning.scores[-1])
                raise optuna.TrialPruned()
        value = float(np.mean(list(best.values())))
        logger.info("trial %d: eval_f1 %.4f", trial.number, value)
        return value


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _release(args: Any) -> None:
    """Free a finished trainer's model and optimizer before the next one is built; close its wandb run."""
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    if "wandb" in (args.report_to or []):
        import wandb

        if wandb.run is not None:
            wandb.finish()


def longest_window(dataset: Any) -> int:
    """The longest ``input_ids`` of a windows dataset (read from Arrow, not as Python lists)."""
    import pyarrow.compute as pc

    column = dataset.with_format("arrow")["input_ids"]
    return int(pc.max(pc.list_value_length(column)).as_py() or 0)


class StopWhenEnough:
    """``study.optimize`` callback: stop this worker once the study's finished trials, plus the trials other workers
    started since this one joined, make ``n_trials``. Trials already RUNNING when it joined are not counted: their
    worker may have died (a re-run after a crash), and counting them would end the study short."""

    def __init__(self, n_trials: int, running_at_start: set[int]) -> None:
        self.n_trials = n_trials
        self.running_at_start = set(running_at_start)

    def __call__(self, study: Any, trial: Any) -> None:
        finished, running = counts(study, exclude=self.running_at_start)
        if finished + running >= self.n_trials:
            study.stop()


def counts(study: Any, exclude: set[int] = frozenset()) -> tuple[int, int]:
    """(finished, running) trials of the study; RUNNING trials numbered in ``exclude`` are not counted."""
    finished = running = 0
    for t in study.get_trials(deepcopy=False):
        finished += t.state.name in FINISHED
        running += t.state.name == "RUNNING" and t.number not in exclude
    return finished, running


@dataclass
class SweepOptions:
    """What one sweep worker does (the command's options)."""

    config: str
    space: str
    n_trials: int = 4
    storage: str | None = None
    study: str | None = None
    folds: list[int] = field(default_factory=lambda: [0])
    out: str | None = None
    pruner: str = "median"
    prune_warmup: int = 2
    seed: int | None = None
    heartbeat: int = 30
    flags: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for flag, value, least in (("--n-trials", self.n_trials, 1), ("--prune-warmup", self.prune_warmup, 0),
                                   ("--heartbeat", self.heartbeat, 1)):
            if value < least:
                raise FeedbackError(f"{flag} {value}: give a number >= {least}.")
        if self.pruner not in ("median", "none"):
            raise FeedbackError(f"--pruner {self.pruner!r}: use median or none.")
        if not self.folds:
            raise FeedbackError("--folds: give at least one fold.")
        self.study = self.study or f"{Path(self.config).stem}-{Path(self.space).stem}"
        self.out = self.out or str(Path("sweeps_out") / self.study)
        self.storage = self.storage or f"sqlite:///{Path(self.out) / 'sweeps.db'}"


@dataclass
class SweepResult:
    """The study after a worker finished: every trial as a table, the best config (None if no trial completed) and
    notes about plots that were skipped."""

    study: Any
    trials: pd.DataFrame
    best_config: Path | None
    notes: list[str]


def load_configs(opts: SweepOptions, space: SearchSpace) -> tuple[tuple[Any, Any, Any], tuple[Any, Any, Any]]:
    """(base configs, search configs): the base config (YAML + flags) and the same with the space's pins."""
    try:
        base = parse_config(opts.config, opts.flags)
    except (ValueError, OSError, yaml.YAMLError) as e:
        message = " ".join(str(e).split())
        raise FeedbackError(message if opts.config in message else f"{opts.config}: {message}") from None
    try:  # the base config parsed: a mistake now is a pinned value of the space file
        search = parse_config(opts.config, opts.flags, overrides=space.fixed)
    except (ValueError, OSError, yaml.YAMLError) as e:
        message = " ".join(str(e).split())
        if message.startswith("settings: "):  # parse_config's name for the values of ``overrides``
            raise FeedbackError(f"{space.source}: {message.removeprefix('settings: ')}") from None
        raise FeedbackError(f"{space.source}: its pinned values are refused with {opts.config}: {message}") from None
    model_args, data_args, _ = search
    for name, value in (("data_dir", data_args.data_dir), ("model_name_or_path", model_args.model_name_or_path)):
        if not value:
            raise FeedbackError(f"{opts.config}: {name} is not set (or pass --{name}).")
        local = name == "data_dir" or value.startswith(("/", ".", "~"))  # else a Hub name
        if local and not Path(value).expanduser().is_dir():
            raise FeedbackError(f"{name}={value}: folder not found (set it in {opts.config} or pass --{name}).")
    bad = [f for f in opts.folds if not 0 <= f < data_args.num_folds]
    if bad:
        raise FeedbackError(f"--folds {bad}: folds are 0..{data_args.num_folds - 1} (num_folds={data_args.num_folds}).")
    space.check(search)
    return base, search


def run_sweep(opts: SweepOptions) -> SweepResult:
    """Run trials of the study until it has ``opts.n_trials`` finished ones, then write the results."""
    import optuna
    from accelerate import PartialState

    from feedback_ner.kfold import load_data, load_postprocess
    from feedback_ner.modeling import load_tokenizer
    from feedback_ner.tokens import TokenCache

    if PartialState().num_processes > 1:
        raise FeedbackError("run a sweep as one plain process per worker (e.g. one per GPU with "
                            "CUDA_VISIBLE_DEVICES), not under accelerate launch / torchrun.")
    space = load_space(opts.space)
    base, search = load_configs(opts, space)
    model_args, data_args, train_args = search
    storage = open_storage(opts.storage, opts.heartbeat)  # before the long work: a bad URL fails now
    study = optuna.create_study(study_name=opts.study, storage=storage, direction="maximize", load_if_exists=True)
    claim_study(study, study_stamp(search, space, opts.folds), opts.storage)
    space.check_study(study)
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    logger.info("sweep %r: %d trials on fold(s) %s, storage %s, out %s", opts.study, opts.n_trials, opts.folds,
                shown_url(opts.storage), out)
    tokenizer = load_tokenizer(model_args.model_name_or_path)
    if "wandb" in (train_args.report_to or []):
        os.environ.setdefault("WANDB_RUN_GROUP", opts.study)
    # Trials are compared by eval_f1 only: they keep no checkpoint.
    trial_args = dataclasses.replace(train_args, output_dir=str(out / "trials"), save_strategy="no",
                                     load_best_model_at_end=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    finished, _ = counts(study)
    running = {t.number for t in study.get_trials(deepcopy=False) if t.state.name == "RUNNING"}
    if finished < opts.n_trials:
        with TokenCache(tokenizer) as tokens:  # each essay tokenised once, whatever max_length a trial asks for
            table, gt = load_data(data_args, token_cache=tokens)
            objective = Objective((model_args, data_args, trial_args), space, opts.folds, tokenizer, table, gt,
                                  tokens, load_postprocess(train_args, gt), opts.study)
            # Offsetting the seed by the trials stored keeps a resumed sweep from replaying the same draws;
            # constant_liar: parallel workers see running trials as bad results and draw elsewhere.
            seed = None if opts.seed is None else opts.seed + 1009 * len(study.trials)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=True)
            study.pruner = (optuna.pruners.NopPruner() if opts.pruner == "none"
                            else optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=opts.prune_warmup))
            study.optimize(objective, n_trials=opts.n_trials - finished, gc_after_trial=True,
                           callbacks=[StopWhenEnough(opts.n_trials, running)])
    return write_results(study, out, base, opts)


def trials_table(study: Any) -> pd.DataFrame:
    """Every trial: state, eval_f1 (a pruned trial's best reported value), params, windows and minutes; best
    complete trials first."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        reported = list(t.intermediate_values.values())
        value = t.value if t.value is not None else (max(reported) if reported else float("nan"))
        row = {"trial": t.number, "state": t.state.name, "eval_f1": float(value), "evals": len(reported)}
        row.update(t.params)
        row["windows"] = t.user_attrs.get("train_windows")
        row["minutes"] = t.duration.total_seconds() / 60 if t.duration is not None else float("nan")
        rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    order = {"COMPLETE": 0, "PRUNED": 1, "RUNNING": 2, "WAITING": 3, "FAIL": 4}
    df["_state"] = df["state"].map(order)
    df = df.sort_values(["_state", "eval_f1", "trial"], ascending=[True, False, True]).drop(columns="_state")
    return df.set_index("trial")


def best_config(study: Any, base: tuple[Any, Any, Any], out_dir: Path) -> dict[str, Any]:
    """The flat config of the best trial: the base config's fields (YAML + flags, not the space's pins) and the
    best trial's swept values."""
    values = to_flat_dict(*base)
    values.update(study.best_trial.params)
    values["output_dir"] = str(out_dir / "best_run")
    return {k: v.item() if isinstance(v, np.generic) else v for k, v in values.items()}


def write_best_config(path: Path, config: dict[str, Any], header: str) -> Path:
    """Write the config YAML and check that it reads back (via feedback_ner.config) with the same values."""
    text = "".join(f"# {line}\n" for line in header.splitlines()) + yaml.safe_dump(config, sort_keys=False)
    atomic_write(path, lambda p: p.write_text(text))
    if read_yaml(path) != config:
        raise RuntimeError(f"{path}: the written config does not read back the same: {read_yaml(path)} != {config}")
    parse_config(path)  # every value is accepted by the training config
    return path


def save_plots(study: Any, out_dir: Path) -> list[str]:
    """Optuna's optimization history and parameter importances as PNG files; notes for what was skipped."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as plots

    notes = []
    complete = sum(t.state.name == "COMPLETE" for t in study.get_trials(deepcopy=False))
    for name, plot, least in (("optimization_history", plots.plot_optimization_history, 1),
                              ("param_importances", plots.plot_param_importances, 2)):
        if complete < least:
            notes.append(f"{name}.png skipped: it needs {least} complete trial(s), the study has {complete}")
            continue
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                ax = plot(study)
            except (ValueError, RuntimeError) as e:  # e.g. importances when every trial drew the same values
                notes.append(f"{name}.png skipped: {e}")
                plt.close("all")
                continue
        # e.g. "importances will be equal" when every trial scored the same: worth a line, not a traceback
        notes += [f"{name}.png: {w.message}" for w in caught if "experimental" not in str(w.message).lower()]
        fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
        fig.set_size_inches(8, 5)
        fig.tight_layout()
        atomic_write(out_dir / f"{name}.png", functools.partial(fig.savefig, dpi=110))
        plt.close(fig)
    return notes


def write_results(study: Any, out: Path, base: tuple[Any, Any, Any], opts: SweepOptions) -> SweepResult:
    """Save the trials table, the plots and the best config (if a trial completed)."""
    table = trials_table(study)
    atomic_write(out / TRIALS_FILE, table.to_csv)
    notes = save_plots(study, out)
    best_path = None
    if any(t.state.name == "COMPLETE" for t in study.get_trials(deepcopy=False)):
        best = study.best_trial
        header = (f"best trial {best.number} of study {opts.study} (eval_f1 {best.value:.4f} on fold(s) {opts.folds})\n"
                  f"= {opts.config} (+ command-line flags) + the trial's swept values; the pins of {opts.space}\n"
                  f"were search settings and are not here. Train it: python -m feedback_ner.train --config "
                  f"{out / BEST_FILE}")
        best_path = write_best_config(out / BEST_FILE, best_config(study, base, out), header)
    return SweepResult(study, table, best_path, notes)
