"""A sweep's study belongs to one configuration and search space (the study's fingerprint, as a run folder's).

:func:`study_stamp` records what a study's trial values depend on: the result-changing settings of the search
configs (``config.fingerprint``), the folds a trial is scored on and the space's distributions. :func:`claim_study`
stamps a new study and stops a worker whose settings differ from the stamp before any trial, naming the changes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

from feedback_ner.config import fingerprint, fingerprint_fields, to_flat_dict
from feedback_ner.errors import FeedbackError
from feedback_ner.storage import shown_url

logger = logging.getLogger("feedback_ner.study")

STUDY_ATTR = "feedback_ner_sweep"  # study user attr: the settings and space its trials ran with, and their fingerprint


def study_stamp(search: tuple[Any, Any, Any], space: Any, folds: list[int]) -> dict[str, Any]:
    """What the trial values of a study depend on, and its fingerprint (``config.fingerprint``): the result-changing
    fields of the search configs (config + flags + the space's pins, less ``config.NOT_IN_FINGERPRINT`` and the
    swept fields, which each trial sets), the folds a trial is scored on and the space's distributions
    (``space``: a ``search.SearchSpace``)."""
    flat = json.loads(json.dumps(fingerprint_fields(to_flat_dict(*search)), default=str))
    settings = {k: v for k, v in flat.items() if k not in space.params}
    settings["--folds"] = sorted(set(folds))
    swept = json.loads(json.dumps({name: _spec_dict(spec) for name, spec in space.params.items()}, default=str))
    return {"fingerprint": fingerprint({**settings, "--space": swept}), "settings": settings, "space": swept}


def claim_study(study: Any, stamp: dict[str, Any], storage: str) -> None:
    """A study belongs to one configuration and search space: a new study gets ``stamp`` (a user attr); one stamped
    with other settings raises :class:`FeedbackError` naming what changed, before any trial. A study made before
    stamps existed resumes unchecked."""
    stored = study.user_attrs.get(STUDY_ATTR)
    if stored is None and not study.get_trials(deepcopy=False):
        study.set_user_attr(STUDY_ATTR, stamp)
        stored = study.user_attrs.get(STUDY_ATTR)  # a worker started with other settings at the same moment may win
    if stored is None:
        logger.warning("study %r was made before sweeps recorded their settings: resumed without checking them",
                       study.study_name)
        return
    if isinstance(stored, dict) and stored.get("fingerprint") == stamp["fingerprint"]:
        return
    changes = _changes(stored if isinstance(stored, dict) else {}, stamp)
    what = f" ({', '.join(changes[:4])}{', ...' if len(changes) > 4 else ''})" if changes else ""
    url = shown_url(storage)
    raise FeedbackError(
        f"study {study.study_name!r} in {url} was run with other settings{what}, and its trials would mix with "
        "these; use another --study (or --out, with the default --storage), or delete the study to start over "
        f"(optuna delete-study --study-name {study.study_name} --storage {url})."
    )


def _spec_dict(spec: Any) -> dict[str, Any]:
    """A swept field's distribution as JSON-able values (unset options left out)."""
    values = dataclasses.asdict(spec)
    del values["name"]
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()
            if v is not None and v is not False and v != ()}


def _changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``field old -> new`` for each setting and swept field that differs between two stamps."""
    lines = []
    for key, label, show in (("settings", "", repr), ("space", "space ", _spec_text)):
        a, b = old.get(key) or {}, new.get(key) or {}
        lines += [f"{label}{k} {show(a.get(k))} -> {show(b.get(k))}" for k in sorted(set(a) | set(b))
                  if a.get(k) != b.get(k)]
    return lines


def _spec_text(spec: dict[str, Any] | None) -> str:
    if spec is None:
        return "(not swept)"
    if spec.get("type") == "categorical":
        return f"choices {spec.get('choices')}"
    text = f"{spec.get('type')} {spec.get('low')}..{spec.get('high')}" + (" log" if spec.get("log") else "")
    return text + (f" step {spec['step']}" if spec.get("step") is not None else "")
