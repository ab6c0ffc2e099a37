"""Configuration: three dataclasses mirrored by a flat YAML, overridden by command-line flags.

``ModelArguments`` (what model and head), ``DataArguments`` (where the data is and how it is windowed) and
``FeedbackTrainingArguments`` (``TrainingArguments`` plus folds and the guards this task needs). A YAML file holds
only what differs from these defaults; any field can be overridden on the command line (``--learning_rate 2e-5``).
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import importlib.util
import json
import os
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml
from transformers import HfArgumentParser, TrainingArguments
from transformers.trainer_utils import IntervalStrategy, SaveStrategy

from feedback_ner.decode import SUBTOKEN_RULES
from feedback_ner.errors import FeedbackError
from feedback_ner.modeling import ATTN_IMPLEMENTATIONS, packing_problem, resolve_model_path
from feedback_ner.windows import stride_error


class ConfigError(FeedbackError, ValueError):
    """A wrong config file, field or value (one line naming the file and field; a ``ValueError`` too)."""


HEADS = ("linear", "lstm", "gru", "mlp")
HEAD_ACTIVATIONS = ("relu", "gelu", "tanh")


@dataclass
class ModelArguments:
    """Which pretrained encoder to fine-tune and which token-classification head to put on it."""

    model_name_or_path: str | None = field(
        default=None, metadata={"help": "Local folder (or Hub name on a connected machine) of the pretrained encoder."}
    )
    head: str = field(
        default="linear",
        metadata={"help": "Head over the encoder: linear (stock model class), lstm or gru (BiRNN), mlp (one hidden "
                          "layer of head_hidden_size with head_activation)."},
    )
    classifier_dropout: float | None = field(
        default=None, metadata={"help": "Dropout before the classifier (None keeps the encoder config's value)."}
    )
    multi_sample_dropout: int = field(
        default=0, metadata={"help": "Average the classifier over this many dropout samples in training (0 = off)."}
    )
    rnn_hidden_size: int = field(default=256, metadata={"help": "Hidden size per direction of the lstm/gru head."})
    attn_implementation: str = field(
        default="auto",
        metadata={"help": "Attention kernel: auto (flash_attention_2 on a GPU where flash-attn is installed and the "
                          "model has it, else sdpa where the model has it, else eager), sdpa, eager, "
                          "flash_attention_2.", "choices": list(ATTN_IMPLEMENTATIONS)},
    )
    packed: bool = field(
        default=False,
        metadata={"help": "Padding-free training batches (the batch's windows packed into one row). Needs flash "
                          "attention: with sdpa or eager the packed windows would attend to each other."},
    )
    head_hidden_size: int = field(default=256, metadata={"help": "Hidden size of the mlp head."})
    head_activation: str = field(default="gelu", metadata={"help": "Activation of the mlp head: relu, gelu or tanh."})

    def __post_init__(self) -> None:
        if self.attn_implementation not in ATTN_IMPLEMENTATIONS:
            raise ConfigError(f"attn_implementation={self.attn_implementation!r}: use one of "
                                    f"{', '.join(ATTN_IMPLEMENTATIONS)}.")
        if self.packed:
            problem = packing_problem(self.attn_implementation)
            if problem:
                raise ConfigError(problem)
        resolve_model_path(self.model_name_or_path)  # a pkg: name is checked now, kept, and resolved at load time
        if self.head not in HEADS:
            raise ConfigError(f"head={self.head!r} is not supported; use one of {', '.join(HEADS)}.")
        if self.head_activation not in HEAD_ACTIVATIONS:
            raise ConfigError(
                f"head_activation={self.head_activation!r} is not supported; use one of {', '.join(HEAD_ACTIVATIONS)}."
            )
        if self.head_hidden_size < 1:
            raise ConfigError(f"head_hidden_size={self.head_hidden_size} must be >= 1.")
        if self.multi_sample_dropout < 0:
            raise ConfigError(f"multi_sample_dropout={self.multi_sample_dropout} must be >= 0 (0 turns it off).")
        if self.classifier_dropout is not None and not 0.0 <= self.classifier_dropout < 1.0:
            raise ConfigError(f"classifier_dropout={self.classifier_dropout} must be in [0, 1).")


@dataclass
class DataArguments:
    """Where the Kaggle-layout data is and how essays become token windows."""

    data_dir: str | None = field(
        default=None, metadata={"help": "Kaggle folder with train.csv and train/*.txt (e.g. a sample corpus)."}
    )
    cache_dir: str | None = field(
        default=None, metadata={"help": "Where prepared word tables and tokenized windows are cached "
                                         "(default: <data_dir>/.feedback_ner_cache)."}
    )
    max_length: int = field(default=1024, metadata={"help": "Tokens per training window, special tokens included."})
    stride: int = field(default=128, metadata={"help": "Tokens shared by consecutive windows of one essay."})
    eval_max_length: int | None = field(
        default=None, metadata={"help": "Window length for evaluation/prediction (default: max_length)."}
    )
    label_all_subtokens: bool = field(
        default=False, metadata={"help": "Train on every sub-token of a word (else only the first)."}
    )
    keep_newlines: bool = field(
        default=False, metadata={"help": "Show paragraph breaks to tokenizers that drop newlines."}
    )
    subtoken_rule: str = field(
        default="first", metadata={"help": "How token probabilities become word probabilities: first or mean."}
    )
    normalize_spelling: bool = field(
        default=False, metadata={"help": "Correct misspelt words one to one before tokenisation (symspellpy's English "
                                         "dictionary; word count and predictionstrings unchanged); the checkpoint "
                                         "records it, so predict does the same."}
    )
    num_folds: int = field(default=5, metadata={"help": "k of the multilabel-stratified k-fold split."})
    fold_seed: int = field(default=42, metadata={"help": "Seed of the fold split (keep it fixed across runs)."})
    skip_bad: bool = field(default=False, metadata={"help": "Skip (and count) bad rows/essays instead of failing."})
    max_essays: int | None = field(
        default=None, metadata={"help": "Use only the first N essays (by id), for quick experiments (0 or left "
                                         "out: every essay)."}
    )
    num_proc: int = field(default=1, metadata={"help": "Processes for tokenization (datasets.map num_proc)."})

    def __post_init__(self) -> None:
        if self.subtoken_rule not in SUBTOKEN_RULES:
            raise ConfigError(f"subtoken_rule={self.subtoken_rule!r}: use one of {', '.join(SUBTOKEN_RULES)}.")
        if self.max_length < 16:
            raise ConfigError(f"max_length={self.max_length} is too small; use at least 16 (typical 512-2048).")
        problem = stride_error(self.max_length, self.stride)
        if problem:
            raise ConfigError(problem)
        if self.eval_max_length is not None:
            if self.eval_max_length < 16:
                raise ConfigError(f"eval_max_length={self.eval_max_length} is too small; use at least 16, or leave it "
                                  "out (then max_length).")
            problem = stride_error(self.eval_max_length, self.stride)
            if problem:
                raise ConfigError("eval_max_length: " + problem)
        if self.num_folds < 2:
            raise ConfigError(f"num_folds={self.num_folds} must be >= 2 for k-fold training.")
        if self.max_essays is not None and self.max_essays < 0:
            raise ConfigError(f"max_essays={self.max_essays} must be >= 1 (0 or left out: every essay).")
        if self.normalize_spelling and importlib.util.find_spec("symspellpy") is None:
            raise ConfigError("normalize_spelling needs symspellpy: pip install 'feedback_ner[spelling]' "
                              "(or set normalize_spelling: false).")

    @property
    def resolved_cache_dir(self) -> str:
        """The cache folder, defaulting to a hidden folder inside ``data_dir``."""
        if self.cache_dir:
            return self.cache_dir
        return str(Path(self.data_dir or ".") / ".feedback_ner_cache")


@dataclass
class FeedbackTrainingArguments(TrainingArguments):
    """``TrainingArguments`` with the defaults this task needs and a few fields of its own.

    Best-epoch saving by the competition score is on by default: evaluation and saving every epoch,
    ``metric_for_best_model="f1"``, ``load_best_model_at_end=True``.
    """

    output_dir: str | None = field(default=None, metadata={"help": "Run folder (default: runs/<config name>)."})
    folds: list[int] = field(default_factory=list, metadata={"help": "Folds to train (default: all)."})
    postprocess: str | None = field(
        default=None, metadata={"help": "Post-processing JSON used in evaluation and best-epoch selection; "
                                      "`baseline` = the public baseline's table; default: learned from the span "
                                      "lengths of the run's essays (feedback_ner.postprocess_defaults)."}
    )
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Start over: delete the finished and interrupted folds of output_dir first "
                                         "(else a re-run resumes, and refuses other settings)."}
    )
    tune_trials: int = field(
        default=40, metadata={"help": "At the end of a run of 2+ folds, tune the post-processing on the out-of-fold "
                                      "probabilities, cross-fitted (each fold decoded by a tuning of the others), "
                                      "with this many Optuna trials per study: the CV table's `tuned` column. "
                                      "0 = off. Reported only; predict uses it after `feedback_ner.tune`."}
    )
    max_nonfinite_steps: int = field(
        default=3, metadata={"help": "After this many non-finite losses in a row, go back to the last checkpoint."}
    )
    eval_strategy: IntervalStrategy | str = field(
        default="epoch", metadata={"help": "When to evaluate: epoch, steps or no."}
    )
    save_strategy: SaveStrategy | str = field(
        default="epoch", metadata={"help": "When to save checkpoints: epoch, steps or best."}
    )
    save_total_limit: int | None = field(default=1, metadata={"help": "Checkpoints kept (the best is always kept)."})
    load_best_model_at_end: bool = field(default=True, metadata={"help": "Reload the best epoch at the end."})
    metric_for_best_model: str | None = field(default="f1", metadata={"help": "Metric that picks the best epoch."})
    greater_is_better: bool | None = field(default=True, metadata={"help": "Whether a larger metric is better."})
    remove_unused_columns: bool = field(
        default=False, metadata={"help": "Must stay False: evaluation needs word_ids and essay_index."}
    )
    logging_steps: float = field(default=10, metadata={"help": "Log the training loss every N steps."})
    train_sampling_strategy: str = field(
        default="group_by_length",
        metadata={
            "help": "Training batches: group_by_length (default: windows of similar length share a batch, shuffled "
            "and seeded every epoch; far less padding), random, sequential or batch_rebalance.",
            "choices": ["group_by_length", "random", "sequential", "batch_rebalance"],
        },
    )
    # Training recipes of the top solutions (issue 14), all off by default; see feedback_ner/recipes/.
    awp_lr: float = field(
        default=0.0, metadata={"help": "AWP: adversarial weight perturbation of every weight matrix, step size "
                                       "relative to the weight norm (1st place: 5e-4; 0 = off); one more "
                                       "forward/backward per step."}
    )
    awp_eps: float = field(
        default=1e-3, metadata={"help": "AWP: each weight moves at most this fraction of its own magnitude."}
    )
    awp_start_epoch: float = field(
        default=1.0, metadata={"help": "AWP: start attacking at this (fractional) epoch (the 1st place: after one)."}
    )
    fgm_epsilon: float = field(
        default=0.0, metadata={"help": "FGM: adversarial step of norm epsilon on the word "
                                       "embeddings (15th: 0.6; 0 = off)."}
    )
    ema_decay: float | None = field(
        default=None, metadata={"help": "EMA of the weights with this decay per step (15th: 0.999; None = off); "
                                        "evaluation, best-epoch selection and the saved model use the average."}
    )
    mask_prob: float = field(
        default=0.0, metadata={"help": "Token masking: replace this share of text tokens of training batches by the "
                                       "mask token (3rd place: 0.15; labels unchanged; 0 = off)."}
    )
    cutmix_prob: float = field(
        default=0.0, metadata={"help": "Cutmix: probability per training window of pasting in a run of tokens and "
                                       "labels from another window of the batch (3rd place: 0.5; 0 = off)."}
    )
    cutmix_ratio: float = field(
        default=0.25, metadata={"help": "Cutmix: length of the pasted run, as a share of the window's text tokens."}
    )
    layerwise_lr_decay: float | None = field(
        default=None, metadata={"help": "Layer-wise LR decay: each encoder layer gets this times the LR of the "
                                        "layer above, the head the full LR (e.g. 0.9; None = off)."}
    )

    def __post_init__(self) -> None:
        if self.output_dir is None:
            self.output_dir = "runs/default"
        if self.remove_unused_columns:
            raise ConfigError(
                "remove_unused_columns must be False: evaluation needs the word_ids and essay_index columns."
            )
        if self.max_nonfinite_steps < 1:
            raise ConfigError(f"max_nonfinite_steps={self.max_nonfinite_steps} must be >= 1.")
        _check_training(self)
        _check_recipes(self)
        super().__post_init__()


def _check_training(args: FeedbackTrainingArguments) -> None:
    """One-line errors for training values that would fail deep inside torch or train nothing at all."""
    if not args.learning_rate > 0:
        raise ConfigError(f"learning_rate={args.learning_rate} must be > 0 (e.g. 2e-5 for a base model).")
    for name in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"):
        if getattr(args, name) < 1:
            raise ConfigError(f"{name}={getattr(args, name)} must be >= 1.")
    if args.max_steps is not None and args.max_steps <= 0 and not args.num_train_epochs > 0:
        raise ConfigError(f"num_train_epochs={args.num_train_epochs} must be > 0 (or set max_steps): nothing would "
                          "be trained and an untrained model saved as the best epoch.")
    if args.weight_decay < 0:
        raise ConfigError(f"weight_decay={args.weight_decay} must be >= 0.")


def _check_recipes(args: FeedbackTrainingArguments) -> None:
    """One-line errors naming a recipe field whose value is out of range."""
    shares = {"mask_prob": args.mask_prob, "cutmix_prob": args.cutmix_prob, "cutmix_ratio": args.cutmix_ratio}
    for name, value in shares.items():
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"{name}={value} must be in [0, 1] (0 turns it off).")
    for name in ("awp_lr", "awp_eps", "awp_start_epoch", "fgm_epsilon"):
        if getattr(args, name) < 0:
            raise ConfigError(f"{name}={getattr(args, name)} must be >= 0.")
    if args.ema_decay is not None and not 0.0 < args.ema_decay < 1.0:
        raise ConfigError(f"ema_decay={args.ema_decay} must be in (0, 1) (e.g. 0.999) or unset (off).")
    if args.layerwise_lr_decay is not None and not 0.0 < args.layerwise_lr_decay <= 1.0:
        raise ConfigError(f"layerwise_lr_decay={args.layerwise_lr_decay} must be in (0, 1] (e.g. 0.9) or unset (off).")


DATACLASSES = (ModelArguments, DataArguments, FeedbackTrainingArguments)


def field_names() -> set[str]:
    """Every key a flat YAML config may hold."""
    return {f.name for dc in DATACLASSES for f in fields(dc) if f.init}


def read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """A flat YAML config as a dict; a missing or malformed file or an unknown key is a one-line
    :class:`ConfigError` naming the file (and the key, with the closest known field)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found" + (" (it is a folder)" if path.is_dir() else "") + ".")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or type(e).__name__
        raise ConfigError(f"{path}: not valid YAML{where} ({problem}); a config is `field: value` lines.") from e
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not a text file ({e.reason}); a config is `field: value` lines.") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config is a flat mapping of field: value, got {type(data).__name__}.")
    known = field_names()
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else " (--help-fields lists the fields)"
            raise ConfigError(f"{path}: unknown config field {key!r}.{hint}")
    return data


class _FieldParser(HfArgumentParser):
    """The fields parser; a wrong flag or value is a one-line :class:`ConfigError`, not a usage dump."""

    def error(self, message: str):  # noqa: ANN201 (argparse signature)
        raise ConfigError(f"{message} (--help-fields lists the fields)")


def make_parser() -> HfArgumentParser:
    """The parser over the three dataclasses (every field is a ``--flag``, never abbreviated: ``--learning_rat``
    is an unknown field, as in a config file)."""
    return _FieldParser(DATACLASSES, prog="feedback_ner.train", allow_abbrev=False)


def declared_type(name: str) -> str:
    """A config field's type as its class writes it (``"int | None"``, ``"float"``, ...), or "" for unknown names:
    read from the annotations, since HfArgumentParser rewrites each dataclass Field's ``.type``."""
    for cls in DATACLASSES:
        if name not in {f.name for f in dataclasses.fields(cls)}:
            continue
        for klass in cls.__mro__:
            kind = vars(klass).get("__annotations__", {}).get(name)
            if kind is not None:
                return kind if isinstance(kind, str) else getattr(kind, "__name__", repr(kind))
    return ""


def _check_value(action: Any, key: str, value: Any, source: str) -> None:
    """A value from a YAML file or ``overrides`` must have the field's type: argparse would only check strings,
    with an error that names neither the file nor the field."""
    if value is None:
        kind = declared_type(key)  # only a field whose type admits None (int | None, Optional[...]) may be null
        if "None" not in kind and "Optional" not in kind and action.default is not None:
            raise ConfigError(f"{source}: field {key!r}: null is not allowed (default {action.default!r}); give a "
                              "value or leave the field out.")
        return
    if action.type is None:
        return
    if action.nargs in ("+", "*") and not isinstance(value, list):
        raise ConfigError(f"{source}: field {key!r}: {value!r} is not a list; write it as [{value!r}].")
    items = value if action.nargs in ("+", "*") and isinstance(value, list) else [value]
    for item in items:
        if action.type is int and isinstance(item, float) and item.is_integer():
            continue
        ok = True
        if isinstance(item, str):
            try:
                converted = action.type(item)
            except Exception:  # noqa: BLE001 (ValueError, TypeError, argparse's ArgumentTypeError)
                ok = False
            else:
                ok = action.choices is None or converted in action.choices or item in action.choices
        elif action.type is int:
            ok = isinstance(item, int) and not isinstance(item, bool)
        elif action.type is float:
            ok = isinstance(item, (int, float)) and not isinstance(item, bool)
        elif getattr(action.type, "__name__", "") == "string_to_bool":
            ok = isinstance(item, bool)
        if not ok:
            kind = {int: "a whole number", float: "a number", str: "a string"}.get(action.type)
            if kind is None and action.choices is not None:
                kind = "one of " + ", ".join(map(str, list(action.choices)[:8]))
            elif kind is None:
                kind = "true or false" if getattr(action.type, "__name__", "") == "string_to_bool" else "valid"
            raise ConfigError(f"{source}: field {key!r}: {item!r} is not {kind}.")


def parse_config(
    path: str | os.PathLike | None = None, flags: list[str] | None = None, overrides: dict[str, Any] | None = None
) -> tuple[ModelArguments, DataArguments, FeedbackTrainingArguments]:
    """Build the three argument objects: dataclass defaults < YAML file < ``overrides`` < command-line ``flags``.

    Every mistake (file, field, type, value) is a one-line :class:`ConfigError` naming the file and the field.
    """
    parser = make_parser()
    actions = {a.dest: a for a in parser._actions}
    values: dict[str, Any] = {}
    if path is not None:
        for key, value in read_yaml(path).items():
            _check_value(actions[key], key, value, str(path))
            values[key] = value
        values.setdefault("output_dir", str(Path("runs") / Path(path).stem))
    for key, value in (overrides or {}).items():
        if key not in actions:
            raise ConfigError(f"unknown config field {key!r} (--help-fields lists the fields)")
        _check_value(actions[key], key, value, "settings")
        values[key] = value
    parser.set_defaults(**values)
    source = f"{path}: " if path is not None else ""
    if source and flags:  # a value checked after merging may come from either: name both (found by probing)
        given = " ".join(flags)
        source = f"{path} with {given if len(given) <= 80 else given[:77] + '...'}: "
    try:
        model_args, data_args, train_args, rest = parser.parse_args_into_dataclasses(
            args=list(flags or []), return_remaining_strings=True
        )
    except ConfigError as e:
        if str(e).startswith("argument ") or not source:  # a flag's mistake, or no file to name
            raise
        raise ConfigError(f"{source}{e}") from None
    except ValueError as e:  # TrainingArguments' own checks (strategies, precision, ...)
        raise ConfigError(source + " ".join(str(e).split())) from None
    if rest:
        flag = next((r for r in rest if r.startswith("-")), rest[0])
        close = difflib.get_close_matches(flag.lstrip("-"), field_names(), n=1)
        hint = f"; did you mean --{close[0]}?" if close else " (--help-fields lists the fields)"
        raise ConfigError(f"unknown option {flag!r}{hint}")
    return model_args, data_args, train_args


# Fields that do not change a run's results: where and how it is logged, stored or parallelised, which folds are
# trained now, and how the cache is built. Every other field (model, data, windows, optimisation, seeds,
# precision, post-processing) is part of a run's fingerprint: a run folder holds one configuration.
NOT_IN_FINGERPRINT = frozenset({
    "output_dir", "overwrite_output_dir", "resume_from_checkpoint", "folds", "run_name",
    "logging_dir", "logging_strategy", "logging_steps", "logging_first_step", "logging_nan_inf_filter",
    "log_level", "log_level_replica", "log_on_each_node", "report_to", "disable_tqdm", "project",
    "trackio_space_id", "skip_memory_metrics", "include_num_input_tokens_seen",
    "dataloader_num_workers", "dataloader_pin_memory", "dataloader_persistent_workers",
    "dataloader_prefetch_factor", "per_device_eval_batch_size", "eval_accumulation_steps", "use_cpu",
    "cache_dir", "num_proc", "save_total_limit", "ddp_timeout", "tune_trials",
    "push_to_hub", "hub_model_id", "hub_strategy", "hub_token", "hub_private_repo", "hub_always_push",
    "hub_revision",
})


def fingerprint_fields(flat: dict[str, Any]) -> dict[str, Any]:
    """The part of a flat config (``to_flat_dict``) that changes results: all but :data:`NOT_IN_FINGERPRINT`."""
    return {k: flat[k] for k in sorted(flat) if k not in NOT_IN_FINGERPRINT}


def fingerprint(flat: dict[str, Any]) -> str:
    """A short hash of :func:`fingerprint_fields`: equal for two configs exactly when their results should be."""
    text = json.dumps(fingerprint_fields(flat), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def field_default(name: str) -> Any:
    """A config field's default (what a flat config that leaves the field out means); None for unknown names."""
    return next((_default_of(f) for cls in DATACLASSES for f in fields(cls) if f.name == name), None)


def setting(flat: Mapping[str, Any], name: str) -> Any:
    """A setting of a flat config (``to_flat_dict``, a run's ``config.yaml``: non-default fields only): its value,
    or the field's default where the config leaves it out."""
    return flat[name] if name in flat else field_default(name)


def _default_of(f: Any) -> Any:
    """A dataclass field's default value (an enum's ``.value``); None when it has none."""
    if f.default is not MISSING:
        value = f.default
    elif f.default_factory is not MISSING:
        value = f.default_factory()
    else:
        return None
    return value.value if hasattr(value, "value") else value


def to_flat_dict(*configs: Any) -> dict[str, Any]:
    """The non-default fields of the argument objects, as a flat dict (what a YAML config would hold).

    Defaults come from the dataclass fields, never from a new instance: building ``TrainingArguments`` sets up the
    distributed state, which must not happen on one process only.
    """
    out: dict[str, Any] = {}
    for cfg in configs:
        for f in fields(cfg):
            if not f.init or f.name.startswith("_"):
                continue
            value = getattr(cfg, f.name)
            value = value.value if hasattr(value, "value") else value
            default = _default_of(f)
            if not isinstance(value, (str, int, float, bool, list, dict, type(None))):
                continue  # objects that __post_init__ derives (e.g. accelerator_config) are not config values
            if value != default and not (_empty(value) and _empty(default)):
                out[f.name] = value
    return out


def _empty(value: Any) -> bool:
    return value is None or value is False or value == [] or value == {} or value == ""
