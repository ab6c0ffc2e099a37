"""Saved artifacts: what training, tuning and ensembling leave on disk, and the one rule that reads them back.

- **Checkpoint** ``runs/<name>/fold_<k>/model/``: model + tokenizer (``save_pretrained``) and ``feedback_ner.json``
  (:class:`InferenceConfig`: label map, window length, stride, sub-token rule, newline handling, post-processing).
- **Run** ``runs/<name>/``: ``oof.npz`` whose meta (:func:`oofruns.run_meta`) names its run — folder, folds,
  fingerprint of the settings and the fold checkpoints — and, once ``tune`` has run, the tuned ``postprocess.json``.
- **Ensemble file** (:class:`EnsembleSpec`): ``{"models", "weights", "postprocess", "runs", "scores"}`` and, when
  one was recorded, ``"rescore"`` (a span rescorer folder of ``feedback_ner.rescore``), with the folders relative to
  the file, so runs and file move together (e.g. to a Kaggle dataset).

Which post-processing applies (:func:`choose_postprocess`), written once for ``predict`` and ``ensemble``:
an explicit argument, else the ensemble file's, else the run's tuned ``postprocess.json``, else the checkpoint's,
else the defaults. Which decoder applies (:func:`choose_decoder`): an explicit rescorer, else thresholds when the
post-processing is explicit, else the ensemble file's rescorer, else thresholds with :func:`choose_postprocess`.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from feedback_ner.errors import FeedbackError, InvalidInputError, MissingFileError
from feedback_ner.files import atomic_write, check_distinct_outputs, check_output, file_sha1
from feedback_ner.labels import LABELS
from feedback_ner.postprocess import PostprocessConfig
from feedback_ner.probs import load_meta

logger = logging.getLogger("feedback_ner.artifacts")

INFERENCE_FILE = "feedback_ner.json"
POSTPROCESS_FILE = "postprocess.json"
RUN_CONFIG_FILE = "config.yaml"
FINGERPRINT_FILE = "fingerprint.txt"
LABELS_FILE = "train_csv.txt"  # the SHA-1 of the train.csv a run was trained on: inspect and tune compare theirs
RESCORER_FILE = "rescorer.json"  # what marks a rescorer folder (rescoring.CONFIG_FILE; see tests/test_run_folder)
ENSEMBLE_KEYS = ("models", "weights", "postprocess", "rescore", "runs", "scores", "checkpoints")
# What a checkpoint folder must hold besides feedback_ner.json (any one of the weight files).
WEIGHT_FILES = (
    "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json",
)
_FOLD_DIR = re.compile(r"fold_\d+$")


@dataclass
class InferenceConfig:
    """How a checkpoint turns essays into windows and word probabilities into spans."""

    max_length: int = 1024
    stride: int = 128
    subtoken_rule: str = "first"
    keep_newlines: bool = False
    label_all_subtokens: bool = False
    normalize_spelling: bool = False  # spelling.normalize_table before tokenising; absent (older checkpoints): off
    labels: list[str] = field(default_factory=lambda: list(LABELS))
    postprocess: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def save(self, folder: str | os.PathLike) -> Path:
        """Write ``feedback_ner.json`` into ``folder`` (atomically)."""
        text = json.dumps(asdict(self), indent=2)
        return atomic_write(Path(folder) / INFERENCE_FILE, lambda tmp: tmp.write_text(text, encoding="utf-8"))

    @classmethod
    def load(cls, folder: str | os.PathLike) -> InferenceConfig:
        """Read ``feedback_ner.json`` from a checkpoint folder, with a clear error if it is missing or broken."""
        path = Path(folder) / INFERENCE_FILE
        if not path.is_file():
            raise MissingFileError(
                f"{path}: not a feedback_ner checkpoint (no {INFERENCE_FILE}); point to a fold's model folder, "
                "e.g. runs/<name>/fold_0/model."
            )
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise InvalidInputError(
                f"{path}: corrupt JSON ({e.msg} at line {e.lineno}); re-copy the checkpoint."
            ) from e
        except UnicodeDecodeError as e:
            raise InvalidInputError(f"{path}: not UTF-8 text ({e.reason}); re-copy the checkpoint.") from e
        if not isinstance(data, dict):
            raise InvalidInputError(f"{path}: not a JSON object; re-copy the checkpoint.")
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise InvalidInputError(
                f"{path}: unknown fields {sorted(unknown)}; was it written by a newer feedback_ner?"
            )
        missing = [k for k in ("max_length", "stride", "labels") if k not in data]
        if missing:  # every save writes them: defaults would cut other windows than the model was trained on
            raise InvalidInputError(f"{path}: lacks {', '.join(missing)} (a damaged or hand-made file); re-copy the "
                                    "checkpoint.")
        config = cls(**data)
        if list(config.labels) != list(LABELS):
            raise InvalidInputError(
                f"{path}: label map {config.labels} differs from this package's {list(LABELS)}."
            )
        ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (config.max_length, config.stride))
        if not ints or config.max_length < 16 or not 0 <= config.stride < config.max_length - 2:
            raise InvalidInputError(f"{path}: max_length {config.max_length!r} / stride {config.stride!r} cannot cut "
                                    "windows (need whole numbers, max_length >= 16, 0 <= stride < max_length - 2); "
                                    "re-copy the checkpoint.")
        try:
            PostprocessConfig.from_dict(config.postprocess or {})
        except (ValueError, TypeError) as err:
            raise InvalidInputError(f"{path}: postprocess: {err}; re-copy the checkpoint") from None
        return config


def check_checkpoint(folder: str | os.PathLike) -> InferenceConfig:
    """The checkpoint's :class:`InferenceConfig`, after checking that the folder holds a model and a tokenizer.

    Raises :class:`MissingFileError` (missing folder or file) or :class:`InvalidInputError` (corrupt file).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingFileError(
            f"{folder}: no such checkpoint folder; pass a fold's model folder, e.g. runs/<name>/fold_0/model"
        )
    config = InferenceConfig.load(folder)
    if not (folder / "config.json").is_file():
        raise MissingFileError(f"{folder}: no config.json; the checkpoint is incomplete, copy the whole model folder")
    if not any((folder / f).is_file() for f in WEIGHT_FILES):
        raise MissingFileError(
            f"{folder}: no model weights (none of {', '.join(WEIGHT_FILES)}); copy the whole model folder"
        )
    if not (folder / "tokenizer.json").is_file():
        raise MissingFileError(
            f"{folder}: no tokenizer.json (a fast tokenizer is needed); copy the whole model folder"
        )
    return config


def resolve_model_dirs(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Checkpoint folders from paths, glob patterns (``runs/x/fold_*/model``) or run folders (-> their folds).

    A path that matches nothing is kept as it is, so that loading it names it in the error. A folder given twice
    (the same checkpoint twice over, e.g. a run folder and one of its folds) is refused: it would weigh double.
    """
    out: list[Path] = []
    if isinstance(paths, (str, os.PathLike)) or not isinstance(paths, Iterable):
        paths = [paths]
    for p in paths:
        if not isinstance(p, (str, os.PathLike)):
            raise InvalidInputError(f"models: {p!r} is a {type(p).__name__}; give checkpoint folders (paths), e.g. "
                                    "runs/<name>/fold_0/model or a run folder")
        p = str(p)
        matches = sorted(glob.glob(p)) if glob.has_magic(p) else [p]
        if not matches:
            raise MissingFileError(f"{p}: the pattern matches no checkpoint folder; check the path")
        for m in map(Path, matches):
            folds = sorted(m.glob("fold_*/model"))
            if not (m / INFERENCE_FILE).is_file() and folds:
                logger.info("%s is a run folder: using its %d fold checkpoints", m, len(folds))
                out.extend(folds)
            else:
                out.append(m)
    seen: dict[Path, Path] = {}
    for folder in out:
        first = seen.setdefault(folder.resolve(), folder)
        if first is not folder:
            raise InvalidInputError(f"models: checkpoint {folder} is given twice ({first} and {folder}); give each "
                                    "once (use weights to weigh one more)")
    return out


def run_dir_of(checkpoint: str | os.PathLike) -> Path | None:
    """The run folder of a fold checkpoint (``runs/x/fold_0/model`` -> ``runs/x``), or None for another layout."""
    folder = Path(checkpoint)
    return folder.parent.parent if _FOLD_DIR.fullmatch(folder.parent.name) else None


# ----------------------------------------------------------------------------------------------------- runs


def read_fingerprint(run_dir: str | os.PathLike) -> str | None:
    """The fingerprint of a run's result-changing settings: ``fingerprint.txt`` as train writes it, else a
    ``fingerprint`` key of its ``config.yaml``; None when the run has neither."""
    run_dir = Path(run_dir)
    try:
        text = (run_dir / FINGERPRINT_FILE).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        text = ""
    if text:
        return text
    try:
        data = yaml.safe_load((run_dir / RUN_CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return None
    value = data.get("fingerprint") if isinstance(data, dict) else None
    return str(value) if value else None


def read_run_config(folder: str | os.PathLike) -> dict[str, Any]:
    """The settings of the run a folder belongs to: ``config.yaml`` in ``folder`` or its parent (a fold folder),
    as ``train`` writes it; ``{}`` when there is none or it cannot be read (callers then use their own defaults)."""
    for candidate in (Path(folder), Path(folder).parent):
        try:
            data = yaml.safe_load((candidate / RUN_CONFIG_FILE).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError, UnicodeDecodeError):
            continue
        if isinstance(data, dict):
            return data
    return {}


def run_skip_bad(folder: str | os.PathLike, given: bool | None = None) -> bool:
    """``given`` (a ``--skip-bad`` / ``--no-skip-bad`` flag) when set, else the ``skip_bad`` setting of the run a
    folder belongs to (False without one): the commands read a run's data the way training read it."""
    return bool(read_run_config(folder).get("skip_bad", False)) if given is None else given


# ----------------------------------------------------------------------------------------------- ensembles


@dataclass
class EnsembleSpec:
    """Checkpoint folders with one weight each, the post-processing config (a dict, or None) and the span rescorer
    folder that decodes the ensemble (None: thresholds)."""

    models: list[Path]
    weights: list[float]
    postprocess: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    source: str = "ensemble"
    rescore: Path | None = None


def load_ensemble(source: str | os.PathLike | Mapping[str, Any]) -> EnsembleSpec:
    """An ensemble from its JSON file (relative folders resolved against the file's folder) or from a dict."""
    if isinstance(source, Mapping):
        data, base, where = dict(source), Path.cwd(), "ensemble"
    else:
        path = Path(source)
        if not path.is_file():
            raise MissingFileError(
                f"{path}: no such ensemble file; write one with `python -m feedback_ner.ensemble`"
            )
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise InvalidInputError(f"{path}: corrupt JSON ({e.msg} at line {e.lineno}); write it again") from e
        except UnicodeDecodeError as e:
            raise InvalidInputError(f"{path}: not UTF-8 text ({e.reason}); write it again") from e
        base, where = path.parent, str(path)
    if not isinstance(data, dict):
        raise InvalidInputError(f"{where}: an ensemble must be a JSON object with keys models, weights, postprocess")
    unknown = sorted(set(data) - set(ENSEMBLE_KEYS))
    if unknown:
        raise InvalidInputError(f"{where}: unknown key(s) {unknown}; known keys are {list(ENSEMBLE_KEYS)}")
    models, weights = data.get("models"), data.get("weights")
    if not isinstance(models, list) or not models or not all(isinstance(m, str) for m in models):
        raise InvalidInputError(f"{where}: 'models' must be a non-empty list of checkpoint folders")
    if not isinstance(weights, list) or len(weights) != len(models):
        raise InvalidInputError(f"{where}: 'weights' must be a list with one number per model folder ({len(models)})")
    try:
        weights = [float(w) for w in weights]
    except (TypeError, ValueError):
        raise InvalidInputError(f"{where}: 'weights' must be numbers; got {weights}") from None
    post = data.get("postprocess")
    if post is not None:
        try:
            PostprocessConfig.from_dict(post)  # validate now, naming the file
        except ValueError as err:
            raise InvalidInputError(f"{where}: postprocess: {err}") from None
    folders = [Path(m) if Path(m).is_absolute() else base / m for m in models]
    rescore = data.get("rescore")
    if rescore is not None and not (isinstance(rescore, str) and rescore):
        raise InvalidInputError(f"{where}: 'rescore' must be the path of a rescorer folder (or null); got {rescore!r}")
    if rescore is not None:
        rescore = Path(rescore) if Path(rescore).is_absolute() else base / rescore
    checkpoints = data.get("checkpoints")
    if checkpoints is not None and not (isinstance(checkpoints, list) and len(checkpoints) == len(models)):
        raise InvalidInputError(f"{where}: 'checkpoints' must list one entry per model folder ({len(models)})")
    extra = {k: data[k] for k in ("runs", "scores", "checkpoints") if k in data}
    return EnsembleSpec(folders, weights, post, extra, source=where, rescore=rescore)


def checkpoint_identity(folder: str | os.PathLike) -> str | None:
    """What a fold checkpoint is wherever it was copied: ``<run fingerprint>/fold_<k>@<training id>`` from its
    ``feedback_ner.json`` (a fold retrained in place, same settings or not, is another checkpoint; checkpoints of
    older versions have no ``@`` part); None for a checkpoint that does not record them."""
    try:
        extra = InferenceConfig.load(folder).extra or {}
    except FeedbackError:
        return None
    if extra.get("fingerprint") is None or extra.get("fold") is None:
        return None
    trained = f"@{extra['trained']}" if extra.get("trained") else ""
    return f"{extra['fingerprint']}/fold_{extra['fold']}{trained}"


def _as_recorded(identity: str | None, wanted: Sequence[str | None]) -> str | None:
    """``identity`` as an ensemble file recorded identities: without the training id for a file written before
    checkpoints had one."""
    if identity is None or any(w is not None and "@" in w for w in wanted):
        return identity
    return identity.split("@", 1)[0]


def _relocate(given: list[Path], spec: EnsembleSpec) -> list[Path]:
    """``given`` folders in the order of the ensemble's checkpoints (the weights follow that order). An ensemble
    file that records each checkpoint's identity (``checkpoints``) is matched by it, whatever order the folders
    come in, and a folder that is none of them is refused; an older file is matched by position. ``given`` are
    checked checkpoints (:func:`plan_prediction`)."""
    if len(given) != len(spec.models):
        raise InvalidInputError(
            f"{len(given)} model folder(s) given with an ensemble of {len(spec.models)}; give none (use the "
            "ensemble's folders) or the same checkpoints copied elsewhere, to relocate them"
        )
    wanted = spec.extra.get("checkpoints")
    if [f.resolve() for f in given] == [f.resolve() for f in spec.models]:
        return given  # the ensemble's own folders
    if not wanted or None in wanted or len(set(wanted)) < len(wanted):
        return given  # an older file, or two runs of the same settings (copies): by position
    found = {_as_recorded(checkpoint_identity(f), wanted): f for f in given}
    for identity, folder in found.items():
        if identity not in wanted:
            raise InvalidInputError(f"{folder}: not one of the checkpoints of {spec.source} (they are "
                                    f"{', '.join(wanted[:3])}{', ...' if len(wanted) > 3 else ''}); give its "
                                    "checkpoints")
    missing = [w for w in wanted if w not in found]
    if missing:
        raise InvalidInputError(f"{spec.source}: checkpoint {missing[0]} is not among the model folders given (one "
                                "folder given twice?); give each of its checkpoints once")
    ordered = [found[w] for w in wanted]
    if ordered != given:
        logger.info("model folders matched to %s by their run fingerprint, fold and training (given in another order)",
                    spec.source)
    return ordered


def _check_identities(folders: list[Path], spec: EnsembleSpec) -> None:
    """Each folder must still be the checkpoint the ensemble recorded (``checkpoints``): a run retrained in place
    since (``--overwrite_output_dir``, other data or the same) is another training, and its weight and the
    ensemble's post-processing were fitted to the old one's probabilities."""
    wanted = spec.extra.get("checkpoints")
    if not wanted or len(wanted) != len(folders):
        return
    for folder, want in zip(folders, wanted):
        have = _as_recorded(checkpoint_identity(folder), wanted)
        if want is not None and have is not None and have != want:
            raise InvalidInputError(
                f"{folder}: not the checkpoint {spec.source} was made with (it recorded {want}, the folder holds "
                f"{have}: retrained since?); run feedback_ner.ensemble again on the runs' current oof.npz"
            )


def _relative_to(folder: str | os.PathLike, base: Path) -> str:
    """``folder`` relative to ``base`` (so they move together), absolute where no relative path exists."""
    folder = Path(folder).resolve()
    try:
        return os.path.relpath(folder, base)
    except ValueError:  # another drive on Windows
        return str(folder)


def save_ensemble(path: str | os.PathLike, spec: EnsembleSpec) -> Path:
    """Writes the ensemble JSON atomically; folders are stored relative to its folder when they share a root."""
    path = Path(path)
    base = path.parent.resolve()
    models = [_relative_to(m, base) for m in spec.models]
    data = {"models": models, "weights": [float(w) for w in spec.weights], "postprocess": spec.postprocess}
    if spec.rescore is not None:  # only when recorded: a file without a rescorer reads as before
        data["rescore"] = _relative_to(spec.rescore, base)
    data.update(spec.extra)
    identities = [checkpoint_identity(m) for m in spec.models]
    if all(identities) and len(set(identities)) == len(identities):  # predict matches relocated folders by them
        data["checkpoints"] = identities
    text = json.dumps(data, indent=2) + "\n"
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


# ------------------------------------------------------------------------------------------ post-processing


@dataclass
class ChosenPostprocess:
    """The post-processing that applies and where it came from (for the one log line that says so)."""

    config: PostprocessConfig
    source: str


def load_postprocess(value: str | os.PathLike | Mapping | PostprocessConfig) -> PostprocessConfig:
    """A config from a JSON path, a dict or a config; errors name the file."""
    if isinstance(value, PostprocessConfig):
        return value
    if isinstance(value, Mapping):
        try:
            return PostprocessConfig.from_dict(value)
        except ValueError as err:
            raise InvalidInputError(f"postprocess: {err}") from None
    if not isinstance(value, (str, os.PathLike)):
        raise InvalidInputError(f"postprocess {value!r}: give a JSON file's path, a dict or a PostprocessConfig")
    return PostprocessConfig.load(value)


def choose_postprocess(
    explicit: str | os.PathLike | Mapping | PostprocessConfig | None = None,
    ensemble: EnsembleSpec | None = None,
    run_dir: str | os.PathLike | None = None,
    checkpoint: str | os.PathLike | None = None,
) -> ChosenPostprocess:
    """The precedence rule: ``explicit`` > the ensemble file's > ``run_dir/postprocess.json`` (tuned) >
    the checkpoint's ``feedback_ner.json`` > the defaults."""
    if explicit is not None:
        where = str(explicit) if isinstance(explicit, (str, os.PathLike)) else "given config"
        return ChosenPostprocess(load_postprocess(explicit), f"explicit ({where})")
    if ensemble is not None and ensemble.postprocess is not None:
        return ChosenPostprocess(load_postprocess(ensemble.postprocess), f"ensemble file ({ensemble.source})")
    if run_dir is not None and (Path(run_dir) / POSTPROCESS_FILE).is_file():
        path = Path(run_dir) / POSTPROCESS_FILE
        stale = stale_tuning(path, Path(run_dir) / "oof.npz")
        if stale:  # kept (the user's file), said: predict, SpanPredictor, the pipeline and ensemble all come here
            logger.warning("%s: it decodes all the same; tune it again on the run's oof.npz", stale)
        return ChosenPostprocess(PostprocessConfig.load(path), f"run's tuned {path}")
    if checkpoint is not None:
        post = InferenceConfig.load(checkpoint).postprocess
        if post is not None:
            return ChosenPostprocess(load_postprocess(post), f"checkpoint {checkpoint}")
    return ChosenPostprocess(PostprocessConfig(), "defaults")


def labels_changed(run_dir: Path, csv_path: str | os.PathLike) -> str | None:
    """Why ``csv_path`` is not the train.csv the run of ``run_dir`` (or of the fold folder ``run_dir``) was trained
    on, by content (edited since, or another file), or None (the same, or nothing recorded: an older run)."""
    record = next((d / LABELS_FILE for d in (run_dir, run_dir.parent) if (d / LABELS_FILE).is_file()), None)
    if record is None or not Path(csv_path).is_file():
        return None
    before = record.read_text(encoding="utf-8").strip()
    if before and before != file_sha1(csv_path):
        return (f"{csv_path} is not the train.csv the run {record.parent} was trained on (edited since, or another "
                "file): its figures here score labels the run never saw")
    return None


def tuned_on_path(postprocess_json: str | os.PathLike) -> Path:
    """Where ``tune`` records what a tuned post-processing was tuned on: ``<name>.tuned_on.json`` beside it."""
    path = Path(postprocess_json)
    return path.with_name(path.stem + ".tuned_on.json")


def oof_folds(oof: str | os.PathLike) -> list[int]:
    """The folds a run-level ``oof.npz`` covers (its meta), sorted; [] when its meta names none."""
    return sorted(int(k) for k in load_meta(oof).get("folds") or [])


def stale_tuning(postprocess_json: str | os.PathLike, oof: str | os.PathLike) -> str | None:
    """Why a run's tuned ``postprocess.json`` no longer fits its ``oof.npz`` (tuned on other folds, per ``tune``'s
    record), or None (it fits, or nothing was recorded)."""
    record, oof = tuned_on_path(postprocess_json), Path(oof)
    if not record.is_file() or not oof.is_file():
        return None
    try:
        before = sorted(int(k) for k in json.loads(record.read_text(encoding="utf-8")).get("folds") or [])
        now = oof_folds(oof)
    except (ValueError, TypeError, OSError, AttributeError):
        return None
    if before and now and before != now:
        return f"{postprocess_json} was tuned on folds {before}; the run now has folds {now}"
    return None


@dataclass
class ChosenDecoder:
    """How word probabilities become spans: the span rescorer folder (None: the threshold decoder with
    ``postprocess``), and where the choice came from."""

    rescore: Path | None
    postprocess: ChosenPostprocess
    source: str

    def describe(self) -> str:
        """The one log line that says which decoder is used."""
        if self.rescore is not None:
            return f"post-processing: span rescorer {self.rescore} ({self.source})"
        return f"post-processing: {self.postprocess.source} (threshold decoder)"


def choose_decoder(
    rescore: str | os.PathLike | None = None,
    postprocess: str | os.PathLike | Mapping | PostprocessConfig | None = None,
    ensemble: EnsembleSpec | None = None,
    run_dir: str | os.PathLike | None = None,
    checkpoint: str | os.PathLike | None = None,
) -> ChosenDecoder:
    """The decoder precedence: an explicit ``rescore`` folder > an explicit ``postprocess`` (thresholds: the user
    asked for them) > the ensemble file's rescorer > thresholds with :func:`choose_postprocess`.

    The folder is not read here; :func:`load_decoder` does that. With both ``rescore`` and ``postprocess`` a warning
    says that the post-processing is not used (the rescorer keeps spans by its own thresholds)."""
    if rescore is not None and postprocess is not None:
        logger.warning("--postprocess is not used: the rescorer %s keeps spans by its own thresholds", rescore)
    chosen = choose_postprocess(postprocess, ensemble, run_dir, checkpoint)
    if rescore is not None:
        return ChosenDecoder(Path(rescore), chosen, "explicit")
    if postprocess is None and ensemble is not None and ensemble.rescore is not None:
        return ChosenDecoder(ensemble.rescore, chosen, f"ensemble file {ensemble.source}")
    return ChosenDecoder(None, chosen, chosen.source)


def load_decoder(decoder: ChosenDecoder) -> Any:
    """The :class:`rescoring.Rescorer` of ``decoder`` (None for thresholds); a missing or corrupt folder is one
    :class:`FeedbackError` line, naming the ensemble file when the folder came from one."""
    if decoder.rescore is None:
        return None
    from feedback_ner.rescoring import Rescorer  # LightGBM loads only for a rescorer

    try:
        return Rescorer.load(decoder.rescore)
    except FeedbackError as err:
        if decoder.source == "explicit":
            raise
        raise InvalidInputError(f"{decoder.source}: 'rescore': {err}") from None


def _warn_other_runs_tuning(folders: list[Path], chosen: ChosenPostprocess) -> None:
    """Checkpoints of several runs, no ensemble file: the first run's tuned post-processing decodes them all; say
    so when another run's own tuned file differs (each was tuned on its own run's probabilities, not the mix's)."""
    others = {run_dir_of(f) for f in folders[1:]} - {run_dir_of(folders[0]), None}
    differ = [str(r / POSTPROCESS_FILE) for r in sorted(others)
              if (r / POSTPROCESS_FILE).is_file() and PostprocessConfig.load(r / POSTPROCESS_FILE) != chosen.config]
    if differ:
        logger.warning("checkpoints of %d runs decode with the %s; %s differ%s: feedback_ner.ensemble tunes one "
                       "post-processing for the mix (its file then decodes them)", len(others) + 1, chosen.source,
                       ", ".join(differ[:2]), ", ..." if len(differ) > 2 else "")


def check_rescorer_fits(folder: str | os.PathLike, trained_on: Mapping[str, Any], fingerprints: set[str],
                        whose: str) -> None:
    """A span rescorer scores the probabilities of the models it learned from (``trained_on["fingerprints"]``, the
    runs' fingerprints): applied to other models' (``fingerprints``, of ``whose``) its scores mean nothing and the
    figures it was chosen by do not hold. Unknown on either side (older folders, checkpoints): not checked."""
    theirs = {str(f) for f in trained_on.get("fingerprints") or []}
    if not theirs or not fingerprints or None in fingerprints or theirs == fingerprints:
        return
    how = ("feedback_ner.rescore --oof RUN/oof.npz" if len(fingerprints) == 1 else
           "feedback_ner.ensemble ... --oof-out ens/oof.npz, then feedback_ner.rescore --oof ens/oof.npz")
    raise InvalidInputError(
        f"{folder}: a rescorer trained on the out-of-fold probabilities of run(s) {', '.join(sorted(theirs))}, not "
        f"on those of {whose} ({', '.join(sorted(fingerprints))}); train one on theirs: {how}"
    )


# ------------------------------------------------------------------------------------------------ prediction


@dataclass
class PredictionPlan:
    """What a prediction will use, all checked before any model loads: checkpoint folders, normalised weights,
    post-processing, the decoder (and its loaded rescorer, if any) and the output paths."""

    folders: list[Path]
    weights: np.ndarray
    postprocess: ChosenPostprocess
    out: Path | None = None
    probs_out: Path | None = None
    decoder: ChosenDecoder | None = None
    rescorer: Any = None


def normalised_weights(weights: Sequence[float] | None, n: int) -> np.ndarray:
    """One weight per checkpoint, summing to 1 (equal when None)."""
    if weights is None:
        return np.full(n, 1.0 / n)
    if isinstance(weights, (str, bytes)) or not all(
            isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool) for x in weights):
        raise InvalidInputError(f"weights {weights!r}: give a list of numbers, one per checkpoint")
    w = np.asarray(list(weights), dtype=np.float64)
    if w.shape != (n,):
        raise InvalidInputError(
            f"weights: got {w.size} weight(s) for {n} checkpoint(s); give one weight per checkpoint"
        )
    if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise InvalidInputError(f"weights {w.tolist()}: need finite, non-negative weights with a positive sum")
    return w / w.sum()


def plan_prediction(
    models: Sequence[str | os.PathLike] | str | os.PathLike | None,
    weights: Sequence[float] | None = None,
    postprocess: str | os.PathLike | Mapping | PostprocessConfig | None = None,
    ensemble: str | os.PathLike | Mapping | None = None,
    out: str | os.PathLike | None = None,
    probs_out: str | os.PathLike | None = None,
    rescore: str | os.PathLike | None = None,
) -> PredictionPlan:
    """Checks every input and output of a prediction and resolves them (see ``inference.predict``).

    ``models`` with an ensemble relocate its folders (:func:`_relocate`: matched by identity); weights default to the
    ensemble's, else equal; the post-processing follows :func:`choose_postprocess` for the first checkpoint and
    the decoder :func:`choose_decoder` (its rescorer is loaded here, so a bad folder fails before any model runs).
    """
    check_distinct_outputs({"out": out, "probs_out": probs_out})
    out, probs_out = check_output(out, "out", kind="submission"), check_output(probs_out, "probs_out", kind="npz:probs")
    spec = load_ensemble(ensemble) if ensemble is not None else None
    given = resolve_model_dirs(models) if models is not None else []  # one path, paths, an array of paths
    for f in given or (spec.models if spec is not None else []):  # before matching: a missing folder is named so
        if not given and not f.is_dir():  # the ensemble's own folders, relative to its file: moved apart from it?
            raise MissingFileError(f"{f}: no such checkpoint folder, which {spec.source} names (relative to the "
                                   "file); if the runs were copied elsewhere, give their model folders with the "
                                   "ensemble (predict --model DIR... --ensemble FILE) to relocate them")
        check_checkpoint(f)
    if spec is None:
        if not given:
            raise MissingFileError(
                "no checkpoint given: pass model folders (e.g. runs/<name>/fold_*/model) or an ensemble"
            )
        folders = given
    else:
        folders = _relocate(given, spec) if given else spec.models
        _check_identities(folders, spec)
        weights = weights if weights is not None else spec.weights
    w = normalised_weights(weights, len(folders))
    decoder = choose_decoder(rescore, postprocess, spec, run_dir_of(folders[0]), folders[0])
    if decoder.rescore is None and decoder.postprocess.source.startswith(("run's tuned", "checkpoint")):
        _warn_other_runs_tuning(folders, decoder.postprocess)
    rescorer = load_decoder(decoder)
    if rescorer is not None:  # the checkpoints that make the probabilities: weight 0 leaves one out
        identities = [checkpoint_identity(f) for f, weight in zip(folders, w, strict=True) if weight > 0]
        fingerprints = {i.rsplit("/", 1)[0] if i else None for i in identities}
        check_rescorer_fits(decoder.rescore, rescorer.trained_on, fingerprints, "these checkpoints")
    return PredictionPlan(folders, w, decoder.postprocess, out, probs_out, decoder, rescorer)
