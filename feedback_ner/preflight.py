"""The checks a training run makes before it trains anything (library): its data folder and cache, its model
folder, its output folder (one configuration per folder, what ``overwrite_output_dir`` deletes), the folds already
finished there and the checkpoint an interrupted fold resumes from. Each problem is one :class:`FeedbackError` line.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from feedback_ner.artifacts import (
    FINGERPRINT_FILE,
    LABELS_FILE,
    POSTPROCESS_FILE,
    RESCORER_FILE,
    RUN_CONFIG_FILE,
    InferenceConfig,
    read_fingerprint,
)
from feedback_ner.config import DataArguments, field_default, fingerprint_fields, setting
from feedback_ner.config import fingerprint as config_fingerprint
from feedback_ner.errors import FeedbackError
from feedback_ner.modelcard import CARD_FILE
from feedback_ner.postprocess import PostprocessConfig
from feedback_ner.trainer import checkpoint_folders
from feedback_ner.windows import content_hasher

logger = logging.getLogger("feedback_ner.preflight")

METRICS_FILE = "metrics.json"  # a fold's last file: the fold is finished
OOF_FILE = "oof.npz"
DATA_FILE = "data.txt"  # the digest of the essays, labels and folds a run's folds were trained on
MODEL_FILE = "model.txt"  # the digest of the model folder (weights, config, tokenizer) a run's folds started from


def check_data_dir(data_args: DataArguments) -> None:
    """``data_dir`` is set and is a Kaggle-layout folder with ``train.csv`` (a one-line error otherwise)."""
    if not data_args.data_dir:
        raise FeedbackError("data_dir is not set: put `data_dir: <Kaggle folder>` in the config or pass --data_dir.")
    data_dir = Path(data_args.data_dir)
    if not data_dir.is_dir():
        raise FeedbackError(f"data_dir {str(data_dir)!r}: no such folder; point data_dir at the Kaggle folder "
                            "(train.csv and train/).")
    if not (data_dir / "train.csv").is_file():
        raise FeedbackError(f"data_dir {str(data_dir)!r}: no train.csv there; point data_dir at the Kaggle folder "
                            "(train.csv and train/).")
    check_cache_dir(data_args)


def check_cache_dir(data_args: DataArguments) -> None:
    """The cache folder (word table, windows) can be created and written to: one line naming ``cache_dir``
    otherwise. Its default lies inside ``data_dir``, which is read-only in a Kaggle notebook (``/kaggle/input``)."""
    cache = Path(data_args.resolved_cache_dir)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=cache):
            pass
    except OSError as e:
        if cache.is_dir() and os.access(cache, os.R_OK | os.X_OK) and any(cache.iterdir()):
            logger.warning("cache_dir %s is not writable (%s): what it holds is reused; anything it lacks stops "
                           "with one line naming it (set --cache_dir to a writable folder)", cache, e.strerror or e)
            return
        where = ("" if data_args.cache_dir else
                 " (by default the cache lies inside data_dir, which is read-only e.g. under /kaggle/input)")
        raise FeedbackError(f"cache_dir {str(cache)!r}: cannot write there ({e.strerror or e}){where}; set cache_dir "
                            "(--cache_dir) to a writable folder, e.g. /kaggle/working/cache") from None


_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "spm.model",
                    "sentencepiece.bpe.model", "tokenizer.model")


def check_model(model_name_or_path: str | None) -> None:
    """A local model folder must hold a readable ``config.json``, a tokenizer and intact ``*.safetensors`` headers;
    checked before any data work so a broken folder is one line, not a traceback after minutes."""
    if not model_name_or_path:
        raise FeedbackError("model_name_or_path is not set: put it in the config or pass --model_name_or_path.")
    path = Path(model_name_or_path).expanduser()
    if not path.exists():
        if model_name_or_path.count("/") <= 1 and not model_name_or_path.startswith((".", "/", "~")):
            return  # a Hub name (model or org/model): transformers resolves it, or says it is offline
        raise FeedbackError(f"model_name_or_path {model_name_or_path!r}: no such folder.")
    name = f"model_name_or_path {model_name_or_path!r}"
    if not path.is_dir():
        raise FeedbackError(f"{name}: a file, not a model folder (config.json, tokenizer and weights).")
    if not (path / "config.json").is_file():
        raise FeedbackError(f"{name}: no config.json; not a model folder (save one with save_pretrained).")
    try:
        config = json.loads((path / "config.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise FeedbackError(f"{name}: config.json is corrupt ({e}); re-copy the model folder.") from None
    if not isinstance(config, dict) or "model_type" not in config:
        raise FeedbackError(f"{name}: config.json has no model_type; re-copy the model folder.")
    if not any((path / f).is_file() for f in _TOKENIZER_FILES):
        raise FeedbackError(f"{name}: no tokenizer files ({', '.join(_TOKENIZER_FILES[:2])}, ...); save the "
                            "tokenizer into the model folder (tokenizer.save_pretrained).")
    from safetensors import safe_open

    for weights in sorted(path.glob("*.safetensors")):
        try:
            with safe_open(str(weights), framework="pt"):
                pass
        except Exception as e:  # noqa: BLE001 (safetensors raises its own error types for a damaged header)
            raise FeedbackError(f"{name}: {weights.name} is corrupt ({' '.join(str(e).split())[:120]}); "
                                "re-copy the model folder.") from None


def check_run_dir(run_dir: Path, fingerprint: str, flat: dict[str, Any], overwrite: bool) -> None:
    """A run folder holds one configuration (issue 12): a re-run with other settings that change results stops
    here; ``overwrite`` deletes the old folds and results first. Main process only."""
    old_fp_file, old_config = run_dir / FINGERPRINT_FILE, run_dir / RUN_CONFIG_FILE
    if run_dir.exists() and not run_dir.is_dir():
        raise FeedbackError(f"output_dir {run_dir}: is a file; give a folder for the run")
    if run_dir.is_dir() and not old_fp_file.is_file() and not _has_results(run_dir):
        theirs = [n for n in RUN_FILES if (run_dir / n).exists()]
        if theirs:  # not a run folder (train writes fingerprint.txt first): a user's README.md, config.yaml, ...
            raise FeedbackError(f"output_dir {run_dir}: not a run folder (no {FINGERPRINT_FILE}) and holds files a "
                                f"run writes ({', '.join(theirs[:4])}): they would be replaced; give a new or empty "
                                "folder for the run")
    if overwrite:
        removed = derived_files(run_dir)
        for p in removed:
            shutil.rmtree(p) if p.is_dir() else p.unlink()
        if removed:
            logger.info("%s: overwrite_output_dir: removed %s", run_dir, ", ".join(p.name for p in removed))
        return
    if not _has_results(run_dir):
        return  # an attempt that stopped before training anything (e.g. a wrong model name): nothing to protect
    old_flat: dict[str, Any] | None = None
    if old_config.is_file():
        try:
            old_flat = yaml.safe_load(old_config.read_text()) or {}
        except yaml.YAMLError:
            old_flat = None
    if old_fp_file.is_file():
        old_fp = old_fp_file.read_text().strip()
    elif old_flat is not None and any(run_dir.glob(f"fold_*/{METRICS_FILE}")):
        old_fp = config_fingerprint(old_flat)  # a folder written before fingerprints: its config.yaml tells
    else:
        return
    if old_fp == fingerprint:
        return
    changes = ""
    if isinstance(old_flat, dict):
        old, new = fingerprint_fields(old_flat), fingerprint_fields(flat)
        keys = sorted(set(old) | set(new))
        # by how each value is written: 2 and 2.0, or a folder written as another path, make other fingerprints
        diff = [f"{k} {_shown(old, k)} -> {_shown(new, k)}" for k in keys
                if repr(setting(old, k)) != repr(setting(new, k))]
        same_values = all(setting(old, k) == setting(new, k) for k in keys)
        if not diff:  # an older run's config.yaml lacks a field this version records (its default or not)
            diff = [f"{k} not recorded by the run (an older version) -> {_shown(new, k)}" for k in keys
                    if (k in old) != (k in new)]
            same_values = False
        if diff:
            changes = " (" + ", ".join(diff[:4]) + (", ..." if len(diff) > 4 else "") + ")"
            if same_values:
                changes += ": the same values written another way; write them as the run did"
    raise FeedbackError(
        f"{run_dir} holds a run with other settings{changes}; use another output_dir, or --overwrite_output_dir "
        "to delete its folds and start over."
    )


def _shown(settings: dict[str, Any], key: str) -> str:
    """A setting as the refusal line names it: its value, "(default)" after one the config leaves out."""
    return repr(settings[key]) if key in settings else f"{field_default(key)!r} (default)"


# What the commands write into a run folder besides the folds: train's own files, tune's post-processing (beside
# the run, where predict picks it up), inspect's page. A subfolder holding a rescorer (rescore --out RUN/rescore) too.
RUN_FILES = (OOF_FILE, "cv.csv", "cv.png", RUN_CONFIG_FILE, FINGERPRINT_FILE, DATA_FILE, LABELS_FILE, MODEL_FILE,
             CARD_FILE, POSTPROCESS_FILE, "postprocess.png", "postprocess.optuna.db", "postprocess.tuned_on.json",
             "report.html", "errors.csv")


def derived_files(run_dir: Path) -> list[Path]:
    """Everything of a run folder that came from its configuration: the folds, the run's files (``RUN_FILES``) and
    rescorer folders; what ``overwrite_output_dir`` deletes, so that nothing of the old run is picked up again
    (a tuned ``postprocess.json`` was: predict decoded the new run with the old run's thresholds)."""
    found = [p for p in sorted(run_dir.glob("fold_*")) if p.is_dir()]
    if not found and not (run_dir / FINGERPRINT_FILE).is_file():
        return []  # not a run folder (e.g. output_dir "."): its README.md or config.yaml are not ours to delete
    found += [run_dir / n for n in RUN_FILES if (run_dir / n).exists()]
    return found + rescorer_folders(run_dir)


def rescorer_folders(run_dir: Path) -> list[Path]:
    """The rescorer folders made from this run's out-of-fold probabilities (``rescore --out RUN/rescore``: a
    subfolder with ``rescorer.json`` whose ``trained_on`` names the run's fingerprint alone, or, with none recorded,
    its ``oof.npz``), sorted. A rescorer of another run or of an ensemble kept in the folder is the user's: never
    deleted by ``overwrite_output_dir`` (a fold's own ``fold_k/`` is not a rescorer folder)."""
    mine, oof = read_fingerprint(run_dir), (run_dir / OOF_FILE).resolve()
    found = []
    for path in sorted(run_dir.glob(f"*/{RESCORER_FILE}")):
        try:
            trained_on = json.loads(path.read_text(encoding="utf-8")).get("trained_on") or {}
            fingerprints, source = set(trained_on.get("fingerprints") or []), trained_on.get("oof")
        except (OSError, ValueError, AttributeError, TypeError):
            continue  # not readable as a rescorer of ours: left alone
        ours = fingerprints == {mine} if fingerprints else source is not None and Path(source).resolve() == oof
        if ours and not path.parent.name.startswith("fold_"):
            found.append(path.parent)
    return found


def _has_results(run_dir: Path) -> bool:
    """Whether any fold folder holds something (a checkpoint, a model, metrics)."""
    return any(p.is_dir() and any(p.iterdir()) for p in run_dir.glob("fold_*"))


def check_fold_settings(fold_dir: Path, fingerprint: str) -> None:
    """A finished fold joins the run's CV table only if it was trained with the run's settings: its checkpoint's
    recorded fingerprint (a fold written by another command into the same folder, or a fingerprint file edited by
    hand, is refused in one line). Folds written before checkpoints recorded it pass."""
    try:
        recorded = (InferenceConfig.load(fold_dir / "model").extra or {}).get("fingerprint")
    except FeedbackError:
        return  # a damaged checkpoint is named by the commands that load it
    if recorded and recorded != fingerprint:
        raise FeedbackError(f"{fold_dir} was trained with other settings than this run's (fingerprint {recorded}, "
                            f"the run's {fingerprint}): it cannot join this run's CV; delete {fold_dir} to train it "
                            "again with these settings, or use another output_dir")


def check_fold_postprocess(fold_dir: Path, postprocess: PostprocessConfig, source: str) -> None:
    """A finished fold joins the run's CV table only if its best epoch was chosen with the post-processing the run's
    ``postprocess`` file (``source``) holds now: the path is in the fingerprint, the file's content is checked here
    against what the fold's checkpoint recorded."""
    try:
        recorded = InferenceConfig.load(fold_dir / "model").postprocess
    except FeedbackError:
        return  # a damaged checkpoint is named by the commands that load it
    if recorded is not None and PostprocessConfig.from_dict(recorded) != postprocess:
        raise FeedbackError(f"{fold_dir} was evaluated (its best epoch chosen) with another post-processing than "
                            f"{source} holds now: the file changed since; restore it, or use another output_dir, "
                            "or --overwrite_output_dir to train the folds again with it")


def checkpoint_problem(folder: Path) -> str | None:
    """What makes a Trainer checkpoint unusable for resuming (a process killed while it was saved), or None."""
    state = folder / "trainer_state.json"
    if not state.is_file():
        return "no trainer_state.json"
    try:
        json.loads(state.read_text(encoding="utf-8"))
    except (ValueError, OSError):
        return "trainer_state.json is not readable JSON"
    # trainer_state.json is written last; weights may be elsewhere (DeepSpeed global_step*/, FSDP shards)
    for path in sorted(folder.glob("*.safetensors")):
        problem = _safetensors_problem(path)
        if problem:
            return f"{path.name}: {problem}"
    optimizer = folder / "optimizer.pt"
    if optimizer.is_file() and optimizer.stat().st_size == 0:
        return "optimizer.pt is empty"
    return None


def _safetensors_problem(path: Path) -> str | None:
    """A truncated or garbled safetensors file: its header must parse and its tensors end where the file does."""
    size = path.stat().st_size
    try:
        with path.open("rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if size < 8 + n:
                return "truncated header"
            header = json.loads(f.read(n))
        ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)]
    except (ValueError, OSError, AttributeError, KeyError, TypeError, IndexError):
        return "unreadable header"
    if 8 + n + max(ends, default=0) != size:
        return f"truncated ({size} bytes, the header describes {8 + n + max(ends, default=0)})"
    return None


def last_good_checkpoint(fold_dir: Path, fold: int) -> str | None:
    """The newest checkpoint of a fold that can be resumed from; newer, incomplete ones are skipped with a warning
    (they are overwritten when training reaches their step again). None: the fold starts over."""
    if not fold_dir.is_dir():
        return None
    for folder in reversed(checkpoint_folders(fold_dir)):
        problem = checkpoint_problem(folder)
        if problem is None:
            return str(folder)
        logger.warning("fold %d: %s is incomplete (%s: killed while it was saved?); not resumed from", fold, folder,
                       problem)
    return None


def finished_folds(run_dir: Path, num_folds: int) -> list[int]:
    """The folds of a run folder whose training finished (``fold_k/metrics.json``), within ``num_folds``."""
    return [k for k in range(num_folds) if (run_dir / f"fold_{k}" / METRICS_FILE).is_file()]


def data_digest(table: pd.DataFrame) -> str:
    """A digest of what training learns from and is scored on: each essay's id, text, word labels and fold (the
    word table, in id order). Settings are the config fingerprint's part; this is the data's."""
    digest = hashlib.sha256()
    for row in table.sort_values("id")[["id", "text", "labels", "fold"]].itertuples(index=False):
        digest.update(f"{row.id}\x00{len(row.text)}\x00{int(row.fold)}\x00".encode())
        digest.update(row.text.encode("utf-8", "surrogatepass"))
        digest.update(np.asarray(row.labels, dtype=np.int64).tobytes())
    return digest.hexdigest()[:16]


# the files transformers loads from a model folder (config, tokenizer, weights, remote code): a README edited or a
# TF/Flax copy added changes no model
MODEL_SUFFIXES = frozenset({".json", ".safetensors", ".bin", ".model", ".txt", ".py", ".tiktoken"})


def model_digest(folder: str | os.PathLike) -> str:
    """A digest of the model folder a run starts from: the name and content of each file transformers loads
    (``MODEL_SUFFIXES``: weights, config, tokenizer).
    "" for a name that is not a local folder (a Hub name not downloaded: nothing to compare)."""
    folder = Path(folder)
    if not folder.is_dir():
        return ""
    digest = content_hasher()
    for f in sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in MODEL_SUFFIXES):
        digest.update(f.name.encode() + b"\x00")
        with f.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 24), b""):  # noqa: B023 (read in this loop)
                digest.update(block)
    return digest.hexdigest()[:16]


def check_model_unchanged(run_dir: Path, digest: str) -> None:
    """Finished folds join the CV table only if they started from the model folder there is now: a folder replaced
    in place (another checkpoint, another tokenizer, at the same path) would mix two models in one CV."""
    before = _changed_since(run_dir / MODEL_FILE, digest)
    if before:
        raise FeedbackError(f"{run_dir}: its folds started from another model (digest {before}, model_name_or_path "
                            f"now {digest}): the model folder changed since; use another output_dir, or "
                            "--overwrite_output_dir (or delete the folder) to train again from this model")


def check_data_unchanged(run_dir: Path, digest: str) -> None:
    """Finished folds join the CV table only if the data they were trained and scored on is the data now: a
    train.csv or essays edited since would be scored with labels the models never saw (and the table look
    current). Runs from before the digest was recorded are not checked."""
    before = _changed_since(run_dir / DATA_FILE, digest)
    if before:
        raise FeedbackError(f"{run_dir}: its folds were trained on other data (essays, labels or folds; digest "
                            f"{before}, the data now {digest}): data_dir changed since; use another output_dir, or "
                            "--overwrite_output_dir (or delete the folder) to train again on this data")


def _changed_since(record: Path, digest: str) -> str | None:
    """The digest a run recorded in ``record`` where it differs from ``digest`` and folds depend on it (finished, or
    holding a checkpoint a fold would resume from); None where nothing is recorded (older runs), no fold has
    anything, or there is nothing to compare (an empty digest)."""
    if not digest or not record.is_file() or not _has_results(record.parent):  # a checkpoint to resume from too
        return None
    before = record.read_text(encoding="utf-8").strip()
    return before if before and before != digest else None
