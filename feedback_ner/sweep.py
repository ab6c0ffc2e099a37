"""Optuna sweeps through ``Trainer.hyperparameter_search``: ``python -m feedback_ner.sweep --config X.yaml
--space sweeps/<name>.yaml --n-trials N [--storage URL] [--study NAME] [--folds 0] [--out DIR]``.

A search space is a YAML mapping of config fields. An entry is either a distribution
(``learning_rate: {type: float, low: 1.0e-4, high: 3.0e-3, log: true}``, ``{type: int, low: 1, high: 3}``,
``{type: categorical, choices: [linear, cosine]}``) or a plain value that pins that field for every trial of the
sweep (``max_essays: 150``). Any ``TrainingArguments`` field can be swept, and so can ``max_length`` / ``stride``
(the windows are rebuilt per trial) and ``head`` / ``classifier_dropout`` / ``multi_sample_dropout`` (read by
``model_init``). A trial's value is its best epoch's ``eval_f1`` (the epoch ``train`` would keep), averaged over
the chosen folds; trials are pruned on their per-epoch ``eval_f1``.

Trials live in an Optuna RDB storage (SQLite by default, PostgreSQL URLs accepted), so re-running the same
command continues the study until it has N finished (complete or pruned) trials, and several processes or
machines can work on one study and together produce N trials. A trial whose process died is failed (at once on
the same machine, after the heartbeat grace period elsewhere) and does not count. At the end the best trials are
printed and saved (``trials.csv``), with Optuna's plots and the best parameters as a config YAML that
``python -m feedback_ner.train --config <out>/best.yaml`` accepts unchanged.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import functools
import logging
import math
import os
import socket
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from feedback_ner.config import (
    FeedbackTrainingArguments,
    field_names,
    parse_config,
    read_yaml,
    to_flat_dict,
)
from feedback_ner.files import atomic_write
from feedback_ner.trainer import EvalLogCallback, FeedbackTrainer, WordF1Metric

logger = logging.getLogger("feedback_ner.sweep")

# Swept fields that are not TrainingArguments: the trainer rebuilds the windows / model_init reads them.
DATA_PARAMS = ("max_length", "stride")
MODEL_PARAMS = ("head", "classifier_dropout", "multi_sample_dropout")
TRAINING_FIELDS = frozenset(f.name for f in dataclasses.fields(FeedbackTrainingArguments) if f.init)
SWEEPABLE = TRAINING_FIELDS | set(DATA_PARAMS) | set(MODEL_PARAMS)
PARAM_TYPES = ("float", "int", "categorical")
SPEC_KEYS = {"float": {"low", "high", "log", "step"}, "int": {"low", "high", "log", "step"}, "categorical": {"choices"}}
# Where the embedded default lives (as `make demo` writes it): a sample corpus and a tiny model beside it.
FINISHED = ("COMPLETE", "PRUNED")
TRIALS_FILE = "trials.csv"
BEST_FILE = "best.yaml"


# ---------------------------------------------------------------------------------------------------------------
# Search space
# ---------------------------------------------------------------------------------------------------------------


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
        """The trial's value (Optuna returns the same value when a trial asks twice)."""
        if self.type == "float":
            return trial.suggest_float(self.name, self.low, self.high, log=self.log, step=self.step)
        if self.type == "int":
            return trial.suggest_int(self.name, self.low, self.high, log=self.log, step=self.step or 1)
        return trial.suggest_categorical(self.name, list(self.choices))

    def values_range(self) -> tuple[Any, Any]:
        """Smallest and largest value the parameter can take (numeric parameters)."""
        if self.type == "categorical":
            return min(self.choices), max(self.choices)
        return self.low, self.high


@dataclass
class SearchSpace:
    """The swept parameters and the fields pinned for every trial; calling it on a trial suggests every parameter."""

    params: dict[str, ParamSpec]
    fixed: dict[str, Any] = field(default_factory=dict)
    source: str = "<space>"

    def __call__(self, trial: Any) -> dict[str, Any]:
        return {name: spec.suggest(trial) for name, spec in self.params.items()}

    def check_data_args(self, max_length: int, stride: int) -> None:
        """Every (max_length, stride) the space can draw must give valid windows (stride < max_length - 2)."""
        lo_len = self.params["max_length"].values_range()[0] if "max_length" in self.params else max_length
        hi_stride = self.params["stride"].values_range()[1] if "stride" in self.params else stride
        if lo_len < 16:
            raise ValueError(f"{self.source}: max_length can be {lo_len}; use at least 16 (typical 512-2048).")
        if hi_stride >= lo_len - 2:
            raise ValueError(
                f"{self.source}: stride can be {hi_stride} while max_length can be {lo_len}; stride must stay below "
                f"max_length-2={lo_len - 2} for every trial: lower the stride range or raise the smallest max_length."
            )


def load_space(path: str | os.PathLike) -> SearchSpace:
    """Read and validate a search-space YAML; errors name the file, the field and what to change."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: search-space file not found.")
    with path.open() as f:
        data = yaml.safe_load(f)
    return parse_space(data, source=str(path))


def parse_space(data: Any, source: str = "<space>") -> SearchSpace:
    """A :class:`SearchSpace` from the mapping a space YAML holds (see the module docstring for the format)."""
    if not isinstance(data, dict) or not data:
        raise ValueError(f"{source}: a search space is a mapping of config field: {{type: ..., ...}}, "
                         f"got {type(data).__name__ if data is not None else 'an empty file'}.")
    known = field_names()
    params: dict[str, ParamSpec] = {}
    fixed: dict[str, Any] = {}
    for name, entry in data.items():
        where = f"{source}: {name}"
        if name not in known:
            close = difflib.get_close_matches(str(name), known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"{where}: not a config field.{hint}")
        if not isinstance(entry, dict):
            fixed[name] = entry  # a plain value pins the field for every trial
            continue
        if name not in SWEEPABLE:
            raise ValueError(
                f"{where}: cannot be swept (only TrainingArguments fields and {', '.join(DATA_PARAMS + MODEL_PARAMS)} "
                "change per trial); give it a plain value to pin it for the whole sweep."
            )
        params[name] = _parse_spec(name, entry, where)
    if not params:
        raise ValueError(f"{source}: no field is swept; give at least one field a {{type: ...}} distribution.")
    return SearchSpace(params, fixed, source)


def _parse_spec(name: str, entry: dict[str, Any], where: str) -> ParamSpec:
    kind = entry.get("type")
    if kind not in PARAM_TYPES:
        raise ValueError(f"{where}: type={kind!r}; use one of {', '.join(PARAM_TYPES)}.")
    extra = set(entry) - SPEC_KEYS[kind] - {"type"}
    if extra:
        allowed = sorted(SPEC_KEYS[kind])
        raise ValueError(f"{where}: unknown key(s) {sorted(extra)} for type {kind}; allowed: {allowed}.")
    if kind == "categorical":
        choices = entry.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ValueError(f"{where}: categorical needs a non-empty list, e.g. choices: [linear, cosine].")
        for c in choices:
            if c is not None and not isinstance(c, (str, int, float, bool)):
                raise ValueError(f"{where}: choice {c!r} must be a string, number, bool or null.")
        if len(set(map(repr, choices))) != len(choices):
            raise ValueError(f"{where}: choices {choices} repeat a value.")
        return ParamSpec(name, kind, choices=tuple(choices))
    number = float if kind == "float" else _as_int
    bounds = {}
    for key in ("low", "high"):
        if key not in entry:
            raise ValueError(f"{where}: type {kind} needs low and high (missing {key}).")
        bounds[key] = _number(entry[key], number, f"{where}.{key}")
    low, high = bounds["low"], bounds["high"]
    if not low < high:
        raise ValueError(f"{where}: low={low} must be smaller than high={high}.")
    log = entry.get("log", False)
    if not isinstance(log, bool):
        raise ValueError(f"{where}: log={log!r} must be true or false.")
    if log and low <= 0:
        raise ValueError(f"{where}: log scale needs low > 0, got low={low}.")
    step = entry.get("step")
    if step is not None:
        step = _number(step, number, f"{where}.step")
        if step <= 0:
            raise ValueError(f"{where}: step={step} must be > 0.")
        if log and kind == "float":
            raise ValueError(f"{where}: a float parameter takes either log: true or a step, not both.")
        if log and step != 1:
            raise ValueError(f"{where}: an int parameter on a log scale takes no step other than 1.")
    return ParamSpec(name, kind, low, high, log, step)


def _as_int(value: Any) -> int:
    as_float = float(value)
    if not as_float.is_integer():
        raise ValueError(value)
    return int(as_float)


def _number(value: Any, kind: Callable[[Any], Any], where: str) -> Any:
    # YAML reads `1e-4` (no dot) as a string, so numeric strings are accepted.
    if isinstance(value, bool):
        raise ValueError(f"{where}: {value!r} is not a number.")
    try:
        out = kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {value!r} is not {'an integer' if kind is _as_int else 'a number'}.") from None
    if isinstance(out, float) and not math.isfinite(out):
        raise ValueError(f"{where}: {value!r} must be finite.")
    return out


# ---------------------------------------------------------------------------------------------------------------
# Trial budget shared by the workers of one study
# ---------------------------------------------------------------------------------------------------------------


class SurplusTrial(Exception):
    """Raised at the start of a trial the study no longer needs (other workers reached N); the trial is failed."""


def _machine_key() -> str | None:
    """Boot id + pid namespace: two processes with the same key can check each other's pids."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return f"{boot}/{os.readlink('/proc/self/ns/pid')}"
    except OSError:
        return None


def _start_time(pid: int) -> str | None:
    """A process's start time (clock ticks since boot), which tells a reused pid from the original."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields_ = stat.rsplit(")", 1)[1].split()
    return None if fields_[0] in ("Z", "X") else fields_[19]  # zombies count as dead


def worker_info() -> dict[str, Any]:
    """Who runs a trial: host, pid and the keys that let another process on this machine see whether it died."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "machine": _machine_key(), "start": _start_time(pid)}


def worker_is_dead(info: dict[str, Any] | None) -> bool:
    """Whether a trial's worker is known to be gone (only decidable for workers on this machine)."""
    if not info or not info.get("machine") or info["machine"] != _machine_key() or info.get("pid") == os.getpid():
        return False
    return _start_time(int(info["pid"])) != info.get("start")


class TrialBudget:
    """N finished trials for a study, whoever runs them: counts, claims and stops against the shared storage."""

    def __init__(self, n_trials: int, storage: Any) -> None:
        self.n_trials = n_trials
        self.storage = storage

    def fail_dead_trials(self, study: Any) -> list[int]:
        """Fail RUNNING trials whose process died (same machine) or whose heartbeat went stale; their numbers."""
        import optuna
        from optuna.trial import TrialState

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        failed = []
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if worker_is_dead(t.user_attrs.get("worker")):
                try:
                    if self.storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL):
                        failed.append(t.number)
                except optuna.exceptions.UpdateFinishedTrialError:
                    pass  # another worker failed it first
        if failed:
            logger.warning("trial(s) %s were left RUNNING by a process that died: marked FAIL, not counted", failed)
        return failed

    def counts(self, study: Any, below: int | None = None) -> tuple[int, int]:
        """(finished, running) trials, optionally only those numbered below ``below``."""
        finished = running = 0
        for t in study.get_trials(deepcopy=False):
            if below is not None and t.number >= below:
                continue
            finished += t.state.name in FINISHED
            running += t.state.name == "RUNNING"
        return finished, running

    def claim(self, trial: Any) -> None:
        """Mark the trial with its worker; raise :class:`SurplusTrial` if earlier trials already make N."""
        trial.set_user_attr("worker", worker_info())
        self.fail_dead_trials(trial.study)
        finished, running = self.counts(trial.study, below=trial.number)
        if finished + running >= self.n_trials:
            trial.study.stop()
            raise SurplusTrial(
                f"trial {trial.number} is not needed: trials before it already make {self.n_trials} "
                f"({finished} finished, {running} running); this worker stops"
            )

    def enough(self, study: Any) -> bool:
        """Whether finished + running trials reach N (then no worker should start another)."""
        finished, running = self.counts(study)
        return finished + running >= self.n_trials


# ---------------------------------------------------------------------------------------------------------------
# Trainer
# ---------------------------------------------------------------------------------------------------------------


class SweepTrainer(FeedbackTrainer):
    """``FeedbackTrainer`` for ``hyperparameter_search``: per trial it rebuilds the windows for the trial's
    ``max_length`` / ``stride``, resets the eval metric, trains each sweep fold and reports ``eval_f1`` per epoch.

    Extra keyword arguments: ``space`` (the :class:`SearchSpace`), ``data_fn(fold, max_length, stride)`` returning
    a ``train.FoldData``, ``folds``, ``base_max_length`` / ``base_stride``, ``budget`` (a :class:`TrialBudget`),
    ``postprocess`` and ``subtoken_rule``. Per trial it records in the storage (``trial.user_attrs``) the worker,
    ``train_windows``, ``train_window_tokens`` (longest training window) and ``train_batch_tokens`` (widest batch
    the model was trained on), and ``fold_f1``.
    """

    def __init__(
        self,
        *args: Any,
        space: SearchSpace,
        data_fn: Callable[[int, int, int], Any],
        folds: list[int],
        base_max_length: int,
        base_stride: int,
        budget: TrialBudget | None = None,
        postprocess: Any = None,
        subtoken_rule: str = "first",
        **kwargs: Any,
    ) -> None:
        # Set before Trainer.__init__, which already calls call_model_init once.
        self.space = space
        self.data_fn = data_fn
        self.folds = list(folds)
        self.base_max_length = base_max_length
        self.base_stride = base_stride
        self.budget = budget
        self.postprocess = postprocess
        self.subtoken_rule = subtoken_rule
        self._fold_pos = 0
        self._fold_best: float | None = None
        self._batch_tokens = 0
        super().__init__(*args, postprocess=postprocess, subtoken_rule=subtoken_rule, **kwargs)

    def _searching(self, trial: Any) -> bool:
        return getattr(self, "hp_search_backend", None) is not None and trial is not None and hasattr(trial, "study")

    def train(self, resume_from_checkpoint=None, trial=None, ignore_keys_for_eval=None):  # noqa: ANN001
        """Per sweep trial: train every sweep fold; the trial's value is the mean of the folds' best eval_f1."""
        if not self._searching(trial):
            return super().train(resume_from_checkpoint, trial, ignore_keys_for_eval)
        scores: dict[int, float] = {}
        try:
            output = None
            for pos, fold in enumerate(self.folds):
                self._fold_pos, self._fold_best = pos, None
                output = super().train(resume_from_checkpoint, trial, ignore_keys_for_eval)
                if self._fold_best is None:  # no evaluation during training (eval_strategy=no)
                    self._fold_best = float(self.evaluate()["eval_f1"])
                scores[fold] = self._fold_best
                trial.set_user_attr("fold_f1", {str(k): v for k, v in scores.items()})
                trial.set_user_attr("train_batch_tokens", self._batch_tokens)
            self.objective = float(np.mean(list(scores.values())))
            return output
        finally:
            self._end_trial(trial)

    def call_model_init(self, trial=None):  # noqa: ANN001 (upstream signature)
        if self._searching(trial) and self._fold_pos == 0:
            if self.budget is not None:
                self.budget.claim(trial)
            self.space(trial)  # suggest now, so model_init finds head / dropout in trial.params
        return super().call_model_init(trial)

    def _hp_search_setup(self, trial) -> None:  # noqa: ANN001 (upstream signature)
        if not self._searching(trial):
            return super()._hp_search_setup(trial)
        params = self.space(trial)
        fold = self.folds[self._fold_pos]
        max_length = int(params.get("max_length", self.base_max_length))
        stride = int(params.get("stride", self.base_stride))
        data = self.data_fn(fold, max_length, stride)
        self.train_dataset, self.eval_dataset = data.train, data.eval
        # A fresh metric per trial and fold: the eval essays change with the fold, and no state leaks across trials.
        self.word_metric = WordF1Metric(
            data.eval_table["id"], [len(s) for s in data.eval_table["word_start"]], data.eval_gt,
            self.postprocess, self.subtoken_rule,
        )
        self.compute_metrics = self.word_metric
        self._batch_tokens = 0
        trial.set_user_attr("train_windows", len(data.train))
        trial.set_user_attr("train_window_tokens", _longest(data.train))
        self.pop_callback(EvalLogCallback)
        self.add_callback(EvalLogCallback(prefix=f"trial {trial.number} fold {fold} | "))
        training = {k: v for k, v in params.items() if k in TRAINING_FIELDS}
        for key, value in training.items():
            # Upstream casts to the type of the current value: an int default (warmup_steps=0) would turn a
            # ratio of 0.1 into 0. Setting the value first keeps the type the space gives.
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                setattr(self.args, key, value)
        full_space = self.hp_space
        self.hp_space = lambda t: {k: v for k, v in full_space(t).items() if k in TRAINING_FIELDS}
        try:
            super()._hp_search_setup(trial)
        finally:
            self.hp_space = full_space
        logger.info("trial %d fold %d: %s", trial.number, fold, params)

    def training_step(self, model, inputs, num_items_in_batch=None):  # noqa: ANN001
        self._batch_tokens = max(self._batch_tokens, int(inputs["input_ids"].shape[1]))
        return super().training_step(model, inputs, num_items_in_batch)

    def _report_to_hp_search(self, trial, step, metrics) -> None:  # noqa: ANN001 (upstream signature)
        if not self._searching(trial) or "eval_f1" not in metrics:
            return super()._report_to_hp_search(trial, step, metrics)
        f1 = float(metrics["eval_f1"])
        self._fold_best = f1 if self._fold_best is None else max(self._fold_best, f1)
        trial.set_user_attr("train_batch_tokens", self._batch_tokens)
        # Report per epoch (plus an offset per fold): trials with different max_length have different step counts,
        # and the median pruner compares trials at the same reported step.
        offset = 10**7
        if self.args.eval_strategy == "epoch" and self.state.epoch is not None:
            step, offset = int(round(self.state.epoch)), 1000
        super()._report_to_hp_search(trial, self._fold_pos * offset + step, metrics)

    def _end_trial(self, trial: Any) -> None:
        """After a trial (finished or pruned): free its model, stop this worker if the study has enough trials,
        close its wandb run."""
        from accelerate.utils import release_memory

        # A pruned trial skips upstream's release_memory; without this the next model_init would sit beside the
        # old model and its optimizer state in (GPU) memory.
        self.optimizer, self.lr_scheduler = None, None
        self.accelerator.free_memory()  # drops the accelerator's references to the prepared model and optimizer
        self.model_wrapped, self.model = release_memory(self.model_wrapped, self.model)
        if self.budget is not None and self.budget.enough(trial.study):
            trial.study.stop()
        if "wandb" in (self.args.report_to or []):
            import wandb

            if wandb.run is not None:
                wandb.finish()


def _longest(dataset: Any) -> int:
    """The longest ``input_ids`` of a windows dataset (read from Arrow, not as Python lists)."""
    import pyarrow.compute as pc

    column = dataset.with_format("arrow")["input_ids"]
    return int(pc.max(pc.list_value_length(column)).as_py() or 0)


def _group_wandb_callback(trainer: SweepTrainer, group: str) -> None:
    """Swap the stock wandb callback for one that groups every trial's run under the study name."""
    from transformers.integrations import WandbCallback

    class StudyWandbCallback(WandbCallback):
        def setup(self, args, state, model, **kwargs):  # noqa: ANN001 (upstream signature)
            # Upstream names the group after args.run_name, which it clears for each search trial.
            args.run_name = group
            return super().setup(args, state, model, **kwargs)

    if trainer.pop_callback(WandbCallback) is not None:
        trainer.add_callback(StudyWandbCallback())


# ---------------------------------------------------------------------------------------------------------------
# The sweep
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class SweepOptions:
    """What one sweep worker does (the CLI's options)."""

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
    top: int = 10
    flags: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.n_trials < 1:
            raise ValueError(f"--n-trials {self.n_trials}: a sweep needs at least 1 trial.")
        if self.pruner not in ("median", "none"):
            raise ValueError(f"--pruner {self.pruner!r}: use median or none.")
        if self.prune_warmup < 0:
            raise ValueError(f"--prune-warmup {self.prune_warmup}: give epochs >= 0.")
        if self.heartbeat < 1:
            raise ValueError(f"--heartbeat {self.heartbeat}: give seconds >= 1.")
        if not self.folds:
            raise ValueError("--folds: give at least one fold.")
        if self.study is None:
            self.study = f"{Path(self.config).stem}-{Path(self.space).stem}"
        if self.out is None:
            self.out = str(Path("sweeps_out") / self.study)
        if self.storage is None:
            self.storage = f"sqlite:///{Path(self.out) / 'sweeps.db'}"


@dataclass
class SweepResult:
    """The study after a worker finished: all trials as a table, and the best config (None if no trial completed)."""

    study: Any
    trials: pd.DataFrame
    best_config: Path | None


def make_storage(url: str, heartbeat: int) -> Any:
    """An Optuna RDB storage with heartbeats; SQLite gets a busy timeout so concurrent workers wait, not fail."""
    import optuna

    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs["connect_args"] = {"timeout": 120}
    else:
        engine_kwargs["pool_pre_ping"] = True
    from sqlalchemy.exc import SQLAlchemyError

    for attempt in range(5):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            try:
                return optuna.storages.RDBStorage(
                    url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat, grace_period=3 * heartbeat
                )
            except ImportError as e:
                extra = " (pip install -e .[postgres])" if url.startswith("postgres") else ""
                raise ImportError(f"--storage {url}: the database driver is not installed{extra}: {e}") from e
            except SQLAlchemyError:
                # Workers starting together race to create the tables; the loser finds them on its next try.
                if attempt == 4:
                    raise
                time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def ensure_embedded_default(data_dir: str | None, model_dir: str | None) -> bool:
    """Generate the sample corpus and tiny model of the embedded default if the config names them and they are
    missing (``<D>/corpus`` and ``<D>/tiny-<arch>``, as ``make demo`` writes them); whether anything was made."""
    from feedback_ner.tiny import ARCHS

    if not data_dir or not model_dir:
        return False
    corpus, model = Path(data_dir), Path(model_dir)
    arch = model.name.removeprefix("tiny-")
    if corpus.name != "corpus" or corpus.parent != model.parent or not model.name.startswith("tiny-") \
            or arch not in ARCHS:
        return False
    from feedback_ner.demo import ensure_corpus, ensure_tiny

    made = ensure_corpus(corpus)
    if made:
        logger.info("[setup] %s not found: wrote the embedded sample corpus as `make demo` does", corpus)
    if ensure_tiny(arch, corpus, model):
        logger.info("[setup] %s not found: built the tiny %s (tokenizer trained on %s)", model, arch, corpus)
        made = True
    return made


def run_sweep(opts: SweepOptions) -> SweepResult:
    """Run trials of the study until it has ``opts.n_trials`` finished ones, then write the results."""
    import optuna
    from accelerate import PartialState
    from transformers import AutoTokenizer

    from feedback_ner.kfold import fold_data, load_data, load_postprocess, make_collator, make_model_init
    from feedback_ner.tokens import TokenCache

    space = load_space(opts.space)
    if PartialState().num_processes > 1:
        raise RuntimeError("run a sweep as one plain process per worker (e.g. one per GPU with CUDA_VISIBLE_DEVICES), "
                           "not under accelerate launch / torchrun.")
    model_args, data_args, base_args = parse_config(opts.config, opts.flags, overrides=space.fixed)
    ensure_embedded_default(data_args.data_dir, model_args.model_name_or_path)
    if not model_args.model_name_or_path:
        raise ValueError(f"{opts.config}: model_name_or_path is not set.")
    space.check_data_args(data_args.max_length, data_args.stride)
    bad = [f for f in opts.folds if not 0 <= f < data_args.num_folds]
    if bad:
        raise ValueError(f"--folds {bad}: folds are 0..{data_args.num_folds - 1} (num_folds={data_args.num_folds}).")
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    if "wandb" in (base_args.report_to or []):
        os.environ.setdefault("WANDB_RUN_GROUP", opts.study)
    # Trials are compared by eval_f1 only: no checkpoints to write or reload.
    train_args = dataclasses.replace(
        base_args, output_dir=str(out / "trials"), run_name=opts.study, save_strategy="no",
        load_best_model_at_end=False,
    )

    tokenizer = AutoTokenizer.from_pretrained(model_args.model_name_or_path)
    tokens = TokenCache(tokenizer)  # each essay tokenised once, whatever max_length the trials ask for
    table, gt = load_data(data_args, token_cache=tokens)
    cache: dict[tuple[int, int, int], Any] = {}

    def data_fn(fold: int, max_length: int, stride: int) -> Any:
        key = (fold, max_length, stride)
        if key not in cache:
            cache[key] = fold_data(table, gt, fold, tokenizer, data_args, max_length=max_length, stride=stride,
                                   token_cache=tokens)
        return cache[key]

    storage = make_storage(opts.storage, opts.heartbeat)
    budget = TrialBudget(opts.n_trials, storage)
    study = optuna.create_study(study_name=opts.study, storage=storage, direction="maximize", load_if_exists=True)
    first = data_fn(opts.folds[0], data_args.max_length, data_args.stride)  # Trainer checks the eval set at init
    trainer = SweepTrainer(
        model_init=make_model_init(model_args),
        train_dataset=first.train,
        eval_dataset=first.eval,
        args=train_args,
        data_collator=make_collator(tokenizer, model_args.model_name_or_path),
        processing_class=tokenizer,
        space=space,
        data_fn=data_fn,
        folds=opts.folds,
        base_max_length=data_args.max_length,
        base_stride=data_args.stride,
        budget=budget,
        postprocess=load_postprocess(base_args),
        subtoken_rule=data_args.subtoken_rule,
    )
    _group_wandb_callback(trainer, opts.study)
    print(f"sweep {opts.study!r}: {opts.n_trials} trials on fold(s) {opts.folds}, storage {opts.storage}, out {out}")
    waited = 0.0
    while True:
        budget.fail_dead_trials(study)
        finished, running = budget.counts(study)
        if finished >= opts.n_trials:
            break
        remaining = opts.n_trials - finished - running
        if remaining <= 0:  # other workers are running the last trials: wait, in case one of them dies
            if waited == 0 or waited >= 60:
                print(f"{finished}/{opts.n_trials} trials finished, {running} running in other workers: waiting")
                waited = 0.0
            time.sleep(min(opts.heartbeat, 5))
            waited += min(opts.heartbeat, 5)
            continue
        logger.info("%d/%d trials finished, %d running elsewhere: this worker starts up to %d",
                    finished, opts.n_trials, running, remaining)
        trainer.hyperparameter_search(
            backend="optuna",
            hp_space=space,
            n_trials=remaining,
            direction="maximize",
            compute_objective=lambda metrics: float(metrics["eval_f1"]),
            hp_name=lambda trial: f"{opts.study}-trial-{trial.number}",
            storage=storage,
            study_name=opts.study,
            load_if_exists=True,
            sampler=_sampler(opts, len(study.trials)),
            pruner=_pruner(opts.pruner, opts.prune_warmup),
            gc_after_trial=True,
            catch=(SurplusTrial,),
        )
        waited = 0.0
    return write_results(study, opts, model_args, data_args, base_args)


def _sampler(opts: SweepOptions, n_existing: int) -> Any:
    import optuna

    # Offsetting by the trials already stored keeps a resumed sweep from replaying the same random draws.
    seed = (opts.seed if opts.seed is not None else os.getpid()) + 1009 * n_existing
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # constant_liar: parallel workers see running trials as bad results and draw elsewhere.
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True)


def _pruner(name: str, warmup: int) -> Any:
    import optuna

    if name == "none":
        return optuna.pruners.NopPruner()
    # Trials report per epoch: no pruning before `warmup` epochs, whose scores say little about a model warming up.
    return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=warmup)


# ---------------------------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------------------------


def trials_table(study: Any) -> pd.DataFrame:
    """Every trial: state, eval_f1 (a pruned trial's best reported value), params, windows and duration;
    best complete trials first."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        reported = list(t.intermediate_values.values())
        value = t.value if t.value is not None else (max(reported) if reported else float("nan"))
        duration = t.duration.total_seconds() / 60 if t.duration is not None else float("nan")
        row = {"trial": t.number, "state": t.state.name, "eval_f1": float(value), "evals": len(reported)}
        row.update({k: v for k, v in t.params.items()})
        row["train_tokens"] = t.user_attrs.get("train_batch_tokens")
        row["minutes"] = duration
        rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    order = {"COMPLETE": 0, "PRUNED": 1, "RUNNING": 2, "FAIL": 3, "WAITING": 4}
    df["_state"] = df["state"].map(order)
    df = df.sort_values(["_state", "eval_f1", "trial"], ascending=[True, False, True]).drop(columns="_state")
    return df.set_index("trial")


def best_config(study: Any, model_args: Any, data_args: Any, train_args: Any, out_dir: Path) -> dict[str, Any]:
    """The flat config of the best trial: the sweep's base config (its fields, typed) plus the best parameters."""
    best = study.best_trial
    values = to_flat_dict(model_args, data_args, train_args)
    values.update(best.params)
    values["output_dir"] = str(out_dir / "best_run")
    return {k: _plain(v) for k, v in values.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


def write_best_config(path: Path, config: dict[str, Any], header: str) -> Path:
    """Write the config YAML and check that it reads back (via feedback_ner.config) with the same values."""
    text = "".join(f"# {line}\n" for line in header.splitlines()) + yaml.safe_dump(config, sort_keys=False)
    atomic_write(path, lambda p: p.write_text(text))
    again = read_yaml(path)
    if again != config:
        diff = {k: (config.get(k), again.get(k)) for k in set(config) | set(again) if config.get(k) != again.get(k)}
        raise RuntimeError(f"{path}: the written config does not read back the same: {diff}")
    parse_config(path)  # every value is accepted by the training config
    return path


def save_plots(study: Any, out_dir: Path) -> list[str]:
    """Optuna's optimization history and parameter importances as PNG files; notes for what was skipped."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna
    from optuna.trial import TrialState

    notes = []
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    plots = {"optimization_history.png": optuna.visualization.matplotlib.plot_optimization_history}
    if len(complete) >= 2:
        plots["param_importances.png"] = optuna.visualization.matplotlib.plot_param_importances
    else:
        notes.append(f"param_importances.png skipped: it needs at least 2 complete trials ({len(complete)} so far)")
    for name, plot in plots.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                ax = plot(study)
            except (ValueError, RuntimeError) as e:  # e.g. importances when every trial drew the same values
                notes.append(f"{name} skipped: {e}")
                plt.close("all")
                continue
        # e.g. "parameter importances will be equal" when every trial scored the same: worth a line, not a trace
        experimental = optuna.exceptions.ExperimentalWarning
        notes += [f"{name}: {w.message}" for w in caught if not issubclass(w.category, experimental)]
        fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
        fig.set_size_inches(8, 5)
        fig.tight_layout()
        atomic_write(out_dir / name, functools.partial(fig.savefig, dpi=110))
        plt.close(fig)
    return notes


def write_results(study: Any, opts: SweepOptions, model_args: Any, data_args: Any, train_args: Any) -> SweepResult:
    """Print and save the trials table, the plots and the best config."""
    out = Path(opts.out)
    table = trials_table(study)
    atomic_write(out / TRIALS_FILE, table.to_csv)
    notes = save_plots(study, out)
    finished = table[table["state"].isin(FINISHED)] if not table.empty else table
    print(f"\nstudy {opts.study!r}: {len(finished)} finished trials "
          f"({int((table['state'] == 'PRUNED').sum()) if not table.empty else 0} pruned); best {opts.top}:")
    if not finished.empty:
        shown = finished.head(opts.top).copy()
        print(format_trials(shown))
    best_path = None
    if any(t.state.name == "COMPLETE" for t in study.get_trials(deepcopy=False)):
        best = study.best_trial
        config = best_config(study, model_args, data_args, train_args, out)
        header = (f"best trial {best.number} of study {opts.study} (eval_f1 {best.value:.4f} on fold(s) {opts.folds})\n"
                  f"= {opts.config} + pinned fields of {opts.space} + the trial's parameters\n"
                  f"train it: python -m feedback_ner.train --config {out / BEST_FILE}")
        best_path = write_best_config(out / BEST_FILE, config, header)
        print(f"\nbest: trial {best.number}, eval_f1 {best.value:.4f}, params {best.params}")
    for note in notes:
        print(f"note: {note}")
    saved = [str(out / TRIALS_FILE)] + [str(p) for p in sorted(out.glob("*.png"))]
    if best_path:
        saved.append(str(best_path))
    print(f"saved: {', '.join(saved)}")
    return SweepResult(study, table, best_path)


def format_trials(table: pd.DataFrame) -> str:
    """The trials table as aligned text (floats rounded for reading)."""
    from feedback_ner.report import format_table

    shown = table.copy()
    for col in shown.columns:
        if col == "eval_f1" or not pd.api.types.is_float_dtype(shown[col]):
            continue
        shown[col] = shown[col].map(lambda v: "" if pd.isna(v) else f"{v:.4g}")
    return format_table(shown)


# ---------------------------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------------------------


def make_parser() -> argparse.ArgumentParser:
    """Options of a sweep worker; any other ``--<config field> value`` overrides the config for every trial."""
    parser = argparse.ArgumentParser(
        prog="feedback_ner.sweep",
        description="Optuna sweep through Trainer.hyperparameter_search (max_length and stride included). "
        "Re-running continues the study; several workers (processes or machines) can share one study. "
        "Any config field can be overridden as a flag, e.g. --max_essays 100.",
    )
    parser.add_argument("--config", required=True, help="Base training config YAML (the fields not swept).")
    parser.add_argument("--space", required=True, help="Search-space YAML (sweeps/<name>.yaml).")
    parser.add_argument("--n-trials", type=int, default=4, help="Finished trials the study should have (all workers "
                        "together; re-running continues up to this number). Default 4.")
    parser.add_argument("--storage", default=None, help="Optuna storage URL: sqlite:///path.db (default "
                        "sqlite:///<out>/sweeps.db) or postgresql://user:pw@host/db (pip install -e .[postgres]).")
    parser.add_argument("--study", default=None, help="Study name (default <config stem>-<space stem>).")
    parser.add_argument("--folds", nargs="+", type=int, default=[0], help="Folds a trial trains and is scored on "
                        "(mean of their best eval_f1). Default 0.")
    parser.add_argument("--out", default=None, help="Folder for trials.csv, plots and best.yaml "
                        "(default sweeps_out/<study>).")
    parser.add_argument("--pruner", default="median", choices=("median", "none"),
                        help="Prune trials whose epoch eval_f1 is below the median of earlier trials. Default median.")
    parser.add_argument("--prune-warmup", type=int, default=2, help="The earliest epoch after which a trial can be "
                        "pruned (its first epochs say little). Default 2.")
    parser.add_argument("--seed", type=int, default=None, help="Sampler seed (default: from the process id; give "
                        "each worker of a shared study its own seed for reproducible draws).")
    parser.add_argument("--heartbeat", type=int, default=30, help="Seconds between trial heartbeats; a trial with "
                        "no heartbeat for 3x this is failed (a worker on another machine died). Default 30.")
    parser.add_argument("--top", type=int, default=10, help="Trials shown in the printed table. Default 10.")
    return parser


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = make_parser()
    known, flags = parser.parse_known_args(argv)
    from feedback_ner.cli import setup_logging  # the one logging set-up of every command (issue 17)

    setup_logging()
    logging.getLogger("feedback_ner").setLevel(logging.INFO)
    logger.setLevel(logging.INFO)  # under `python -m` this module's logger is "__main__", outside "feedback_ner"
    start = time.time()
    try:  # bad options, space or config: one line, no traceback
        opts = SweepOptions(
            config=known.config, space=known.space, n_trials=known.n_trials, storage=known.storage,
            study=known.study, folds=known.folds, out=known.out, pruner=known.pruner,
            prune_warmup=known.prune_warmup, seed=known.seed,
            heartbeat=known.heartbeat, top=known.top, flags=flags,
        )
        space = load_space(opts.space)
        _, data_args, _ = parse_config(opts.config, opts.flags, overrides=space.fixed)
        space.check_data_args(data_args.max_length, data_args.stride)
    except (ValueError, FileNotFoundError) as e:
        parser.exit(2, f"feedback_ner.sweep: error: {e}\n")
    run_sweep(opts)
    print(f"done in {(time.time() - start) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
