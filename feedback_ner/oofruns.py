"""Which run an out-of-fold probabilities file belongs to (library): the meta a run-level ``oof.npz`` carries
(:func:`run_meta`: folds, folder, fingerprint of the settings, fold checkpoints), the check that it still lies in
its own run's folder (:func:`check_oof_origin`), and the matching of checkpoint folders to runs for ``ensemble``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from feedback_ner.artifacts import (
    FINGERPRINT_FILE,
    INFERENCE_FILE,
    ChosenPostprocess,
    InferenceConfig,
    choose_postprocess,
    load_postprocess,
    read_fingerprint,
    resolve_model_dirs,
)
from feedback_ner.errors import InvalidInputError, MissingFileError
from feedback_ner.probs import load_meta


def run_meta(run_dir: str | os.PathLike, folds: Sequence[int]) -> dict[str, Any]:
    """The meta that makes a run-level ``oof.npz`` name its run: folds, absolute folder, fingerprint, fold models.

    ``models`` are relative to the run folder (``fold_0/model``), so a moved run still finds them.
    """
    run_dir = Path(run_dir)
    return {
        "folds": [int(k) for k in folds],
        "run_dir": str(run_dir.resolve()),
        "fingerprint": read_fingerprint(run_dir),
        "models": [f"fold_{int(k)}/model" for k in folds],
    }


@dataclass
class OofRun:
    """The run an out-of-fold file belongs to: its folder (where the file lies), fold checkpoints, fingerprint."""

    oof: Path
    run_dir: Path
    models: list[Path]
    fingerprint: str | None = None

    @property
    def name(self) -> str:
        return self.run_dir.name or str(self.oof)


def oof_run(oof: str | os.PathLike, meta: Mapping[str, Any]) -> OofRun:
    """The run of ``oof`` from its meta (:func:`run_meta`; files with only ``folds`` work too).

    The run folder is the file's own folder, which stays right when the run is moved; a file that names no
    fold is refused, since nothing ties it to checkpoints.
    """
    oof = Path(oof)
    run_dir = oof.parent
    if meta.get("models"):
        models = [run_dir / m for m in meta["models"]]
    elif meta.get("folds") is not None and meta.get("folds") != []:
        models = [run_dir / f"fold_{int(k)}" / "model" for k in meta["folds"]]
    else:
        raise InvalidInputError(
            f"{oof}: its meta names no run (no folds or models); pass the run-level oof.npz that train writes"
        )
    return OofRun(oof, run_dir, models, meta.get("fingerprint") or None)


def _same(a: Path, b: Path) -> bool:
    return os.path.normcase(a.resolve()) == os.path.normcase(b.resolve())


def belongs_to(folders: Sequence[Path], run: OofRun, by_fingerprint: bool = False) -> bool:
    """Whether every checkpoint folder is one of the run's fold models: the very folder or, with
    ``by_fingerprint``, a copy elsewhere whose ``feedback_ner.json`` carries the run's fingerprint. A folder whose
    fingerprint differs from the run's never belongs."""
    if not folders:
        return False
    for folder in folders:
        theirs = None
        if run.fingerprint and (folder / INFERENCE_FILE).is_file():
            theirs = InferenceConfig.load(folder).extra.get("fingerprint")
        if theirs and str(theirs) != run.fingerprint:
            return False
        if not (any(_same(folder, m) for m in run.models) or (by_fingerprint and theirs)):
            return False
    return True


def match_models(runs: Sequence[OofRun], patterns: Sequence[str] | None) -> list[list[Path]]:
    """The checkpoint folders of each run, in the order of ``runs``.

    Without ``patterns`` the runs' own fold models (they must exist). With them, each pattern (a glob, a run
    folder or one checkpoint, in any order) must belong to exactly one run and every run must get one pattern;
    otherwise :class:`InvalidInputError` says which pattern or run is unmatched.
    """
    if not patterns:
        out = []
        for run in runs:
            missing = [m for m in run.models if not m.is_dir()]
            if missing:
                raise MissingFileError(
                    f"{run.oof}: its fold checkpoint {missing[0]} does not exist; copy the run with its models "
                    "or pass --models"
                )
            out.append(list(run.models))
        return out
    if len(patterns) != len(runs):
        raise InvalidInputError(
            f"--oof has {len(runs)} file(s) but --models {len(patterns)} pattern(s); give one checkpoint pattern "
            "per run (or leave --models out: each oof.npz names its run's checkpoints)"
        )
    chosen: dict[int, list[Path]] = {}
    for pattern in patterns:
        folders = resolve_model_dirs([pattern])
        for f in folders:
            if not f.is_dir():
                raise MissingFileError(f"{f}: no such checkpoint folder; check --models")
        owners = [i for i, run in enumerate(runs) if belongs_to(folders, run)]
        if not owners:  # copies of the run's checkpoints, recognised by the fingerprint of their settings
            owners = [i for i, run in enumerate(runs) if belongs_to(folders, run, by_fingerprint=True)]
            if len(owners) > 1:
                raise InvalidInputError(
                    f"--models {pattern}: its checkpoints carry the fingerprint of several --oof runs "
                    f"({', '.join(str(runs[i].oof) for i in owners)}); give the runs' own folders"
                )
        if not owners:
            raise InvalidInputError(
                f"--models {pattern}: its checkpoints belong to none of the --oof runs "
                f"({', '.join(str(r.oof) for r in runs)}); give each run's own fold models"
            )
        i = owners[0]
        if i in chosen:
            raise InvalidInputError(
                f"--models {pattern}: a second pattern for the run of {runs[i].oof}; give one pattern per run"
            )
        chosen[i] = folders
    return [chosen[i] for i in range(len(runs))]


def check_oof_origin(oof: str | os.PathLike, meta: Mapping[str, Any] | None = None) -> None:
    """A run-level ``oof.npz`` must lie in the run folder it was written for: the fingerprint in its meta and the
    folder's ``fingerprint.txt`` agree (where both exist). An ``oof.npz`` copied into another run's folder was
    scored, tuned and ensembled as if it were that run's, and the folder's checkpoints then ran with weights or
    thresholds fitted to other probabilities."""
    oof = Path(oof)
    meta = load_meta(oof) if meta is None else meta
    theirs = meta.get("fingerprint")
    folder = oof.parent
    if not theirs or not (folder / FINGERPRINT_FILE).is_file():
        return
    ours = read_fingerprint(folder)
    if ours and str(theirs) != ours:
        origin = f" (written in {meta['run_dir']})" if meta.get("run_dir") else ""
        raise InvalidInputError(
            f"{oof}: probabilities of another run{origin}, fingerprint {theirs}, than the run folder it lies in "
            f"({folder / FINGERPRINT_FILE}: {ours}); use each run's own oof.npz, or train this run again"
        )


def oof_fingerprints(oof: str | os.PathLike) -> list[str]:
    """The fingerprints of the runs whose models made the probabilities of ``oof``: a run's ``oof.npz`` (its meta),
    a fold's ``fold_k/oof.npz`` (its run folder's ``fingerprint.txt``), an ensemble's (each of its runs'); [] where
    one of them is unknown (files written before fingerprints)."""
    oof = Path(oof)
    meta = load_meta(oof)
    if meta.get("fingerprint"):
        return [str(meta["fingerprint"])]
    if meta.get("fingerprints"):  # an ensemble's, recorded by ensemble --oof-out
        return sorted(str(f) for f in meta["fingerprints"])
    if meta.get("ensemble_of"):
        found = []
        for part in meta["ensemble_of"]:
            if not Path(part).is_absolute():  # as typed then, relative to a folder nobody recorded: not checked
                return []
            try:
                found.append(oof_fingerprints(part))
            except (OSError, ValueError):
                return []
        return sorted({f for fps in found for f in fps}) if all(found) else []
    if meta.get("fold") is not None and (oof.parent.parent / FINGERPRINT_FILE).is_file():
        fingerprint = read_fingerprint(oof.parent.parent)
        return [fingerprint] if fingerprint else []
    return []


def oof_postprocess(oof: str | os.PathLike) -> ChosenPostprocess:
    """What the probabilities of ``oof`` are decoded with by default, as its CV table decodes them: an ensemble OOF
    file's recorded post-processing (what ``predict --ensemble`` decodes with), else the run's checkpoint's (learned
    from its training folds), else the defaults (source ``"defaults"``)."""
    recorded = load_meta(oof).get("postprocess")
    if recorded is not None:
        return ChosenPostprocess(load_postprocess(recorded), f"the ensemble's, recorded in {oof}")
    return choose_postprocess(checkpoint=run_checkpoint(oof))


def run_checkpoint(oof: str | Path) -> Path | None:
    """The checkpoint whose post-processing is the "default" route: a run's first fold model beside ``RUN/oof.npz``,
    a fold's own model beside ``RUN/fold_k/oof.npz``; None for an ensemble's OOF file (the defaults)."""
    parent = Path(oof).parent
    models = sorted(parent.glob("fold_*/model"))
    if models:
        return models[0]
    return parent / "model" if (parent / "model").is_dir() else None
