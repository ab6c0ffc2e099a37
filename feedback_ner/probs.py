"""The word-probabilities file: out-of-fold and prediction probabilities of many essays in one ``.npz``.

One concatenated ``[total_words, L]`` array plus ``offsets`` and ``ids`` (one key per essay would make 15k keys,
slow to write and read), and an optional JSON ``meta`` (model, fold, sub-token rule, ...). Written atomically.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from feedback_ner.errors import InvalidInputError, MissingFileError
from feedback_ner.files import atomic_write

FORMAT_VERSION = 1
_KEYS = ("probs", "offsets", "ids", "meta", "version")


class ProbsFileError(InvalidInputError):
    """A word-probabilities file that cannot be read (corrupt, truncated, or not written by ``save_word_probs``)."""


def save_word_probs(
    path: str | os.PathLike,
    probs: Mapping[str, np.ndarray],
    meta: dict | None = None,
    dtype: str = "float32",
) -> Path:
    """Writes ``{essay_id: [n_words, L]}`` to ``path`` (``.npz``) atomically; ``dtype`` float32 or float16."""
    path = Path(path)
    if dtype not in ("float32", "float16"):
        raise ValueError(f"save_word_probs(dtype={dtype!r}): use 'float32' or 'float16'")
    ids = [str(k) for k in probs]
    if len(set(ids)) != len(ids):
        raise ValueError(f"save_word_probs({path}): essay ids are not unique as strings")
    arrays = [np.asarray(v) for v in probs.values()]
    n_labels = {a.shape[1] for a in arrays if a.ndim == 2}
    for essay_id, a in zip(ids, arrays, strict=True):
        if a.ndim != 2:
            raise ValueError(f"save_word_probs({path}): essay {essay_id!r} has shape {a.shape}; need [n_words, L]")
    if len(n_labels) > 1:
        raise ValueError(f"save_word_probs({path}): essays have different label counts {sorted(n_labels)}")
    width = n_labels.pop() if n_labels else 0
    lengths = np.array([a.shape[0] for a in arrays], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    flat = np.concatenate(arrays, axis=0).astype(dtype) if arrays else np.zeros((0, width), dtype=dtype)
    if not np.isfinite(flat).all():
        row = int(np.nonzero(~np.isfinite(flat).all(axis=1))[0][0])
        essay = ids[int(np.searchsorted(offsets, row, side="right") - 1)]
        raise ValueError(f"save_word_probs({path}): essay {essay!r} has non-finite probabilities")
    meta_json = json.dumps(meta or {}, sort_keys=True, default=str)
    arrays_out = dict(
        probs=flat,
        offsets=offsets,
        ids=np.array(ids, dtype=np.str_),
        meta=np.array(meta_json),
        version=np.array(FORMAT_VERSION),
    )

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:  # a file object: np.savez appends ".npz" to a name that lacks it
            np.savez(fh, **arrays_out)

    return atomic_write(path, write)


def _open(path: Path) -> np.lib.npyio.NpzFile:
    if path.is_dir():
        hint = f"; give its {path / 'oof.npz'}" if (path / "oof.npz").is_file() else ""
        raise MissingFileError(f"{path}: is a folder, not a word-probabilities .npz{hint}")
    if not path.is_file():
        raise MissingFileError(f"{path}: no such word-probabilities file (written by save_word_probs / predict)")
    if not zipfile.is_zipfile(path):  # numpy's own message would suggest unpickling it
        raise ProbsFileError(f"{path}: not a word-probabilities .npz (an oof.npz train writes, or predict's "
                             "--probs-out); check the path")
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise ProbsFileError(f"{path}: not a readable word-probabilities .npz ({err}); write it again") from err
    missing = [k for k in _KEYS if k not in data.files]
    if missing:
        data.close()
        raise ProbsFileError(f"{path}: missing key(s) {missing}; not a file written by save_word_probs")
    return data


def load_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The ``meta`` dict stored with a word-probabilities file (without reading the probabilities)."""
    path = Path(path)
    data = _open(path)
    try:
        return json.loads(str(data["meta"]))
    except (ValueError, zipfile.BadZipFile, EOFError, OSError) as err:
        raise ProbsFileError(f"{path}: unreadable meta ({err}); write the file again") from err
    finally:
        data.close()


def essay_ids(path: str | os.PathLike) -> list[str]:
    """The essay ids of a word-probabilities file, in its order (without reading the probabilities)."""
    path = Path(path)
    data = _open(path)
    try:
        return [str(x) for x in data["ids"]]
    except (ValueError, zipfile.BadZipFile, EOFError, OSError) as err:
        raise ProbsFileError(f"{path}: unreadable essay ids ({err}); write the file again") from err
    finally:
        data.close()


def load_word_probs(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """``{essay_id: float32 [n_words, L]}`` from a file written by :func:`save_word_probs` (views of one array)."""
    path = Path(path)
    data = _open(path)
    try:
        version = int(data["version"])
        if version > FORMAT_VERSION:
            raise ProbsFileError(f"{path}: format version {version} is newer than this package reads; upgrade it")
        flat = data["probs"].astype(np.float32, copy=False)
        offsets = data["offsets"].astype(np.int64, copy=False)
        ids = [str(x) for x in data["ids"]]
    except ProbsFileError:
        raise
    except (ValueError, KeyError, zipfile.BadZipFile, EOFError, OSError) as err:
        raise ProbsFileError(f"{path}: corrupt word-probabilities file ({err}); write it again") from err
    finally:
        data.close()
    ok = (
        flat.ndim == 2
        and offsets.ndim == 1
        and offsets.shape[0] == len(ids) + 1
        and offsets[0] == 0
        and offsets[-1] == flat.shape[0]
        and bool(np.all(np.diff(offsets) >= 0))
    )
    if not ok:
        raise ProbsFileError(
            f"{path}: inconsistent arrays (probs {flat.shape}, offsets {offsets.shape}, {len(ids)} ids); write it again"
        )
    bad = ~np.isfinite(flat).all(axis=1) if flat.size else np.zeros(0, bool)
    if bad.any():  # save_word_probs refuses these: the file was damaged or written by other code
        word = int(np.argmax(bad))
        essay = int(np.searchsorted(offsets, word, side="right") - 1)
        raise ProbsFileError(f"{path}: {int(bad.sum())} words have non-finite probabilities (first: essay "
                             f"{ids[essay]}, word {word - offsets[essay]}); write the file again")
    return {essay_id: flat[offsets[i] : offsets[i + 1]] for i, essay_id in enumerate(ids)}
