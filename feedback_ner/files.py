"""Writing files so that a reader never sees a torn one (killed runs, parallel sweep workers), and checking an
output path before the work (:func:`check_output`), so that nothing a user has is replaced by mistake."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from feedback_ner.errors import FeedbackError, InvalidInputError

logger = logging.getLogger("feedback_ner.files")

LOCK_FILE = ".feedback_ner.lock"


def atomic_write(path: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path`` (same suffix), then rename it onto ``path``.

    The file gets the usual permissions (the umask's), not the private mode of a ``mkstemp`` file, so it can be
    shared as it is (e.g. uploaded as a Kaggle dataset).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        if err.filename is not None and Path(err.filename) == tmp:  # name the file the user asked for
            raise type(err)(err.errno, err.strerror, str(path)) from err
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def file_sha1(path: str | os.PathLike) -> str:
    """The SHA-1 of a file's content (hex), read in blocks."""
    import hashlib

    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha1").hexdigest()


class _Kind(NamedTuple):
    """What :func:`check_output` says of an output kind: its name, an example file name, the suffixes it needs."""

    name: str
    example: str
    suffixes: tuple[str, ...] = ()


_KINDS = {
    "submission": _Kind("submission", "submission.csv"),
    "npz:probs": _Kind("word-probabilities .npz", "probs.npz"),
    "npz:ensemble-oof": _Kind("ensemble out-of-fold .npz", "ensemble_oof.npz"),
    "json": _Kind("json", "ensemble.json", (".json",)),
    "png": _Kind("PNG", "chart.png", (".png",)),  # the image format follows the name
    "html": _Kind("HTML page", "report.html", (".html", ".htm")),
    "csv": _Kind("CSV table", "table.csv"),  # csv:<first column>
}


def check_output(
    path: str | os.PathLike | None, what: str, inputs: Sequence[str | os.PathLike | None] = (),
    kind: str | None = None,
) -> Path | None:
    """Refuses, before any work, an output path that cannot be written (a folder, under a file, not writable), that
    is one of the command's ``inputs``, or that holds a file of another ``kind`` than the command writes
    (``"submission"``, ``"json:<key>"``, ``"npz:probs"`` / ``"npz:ensemble-oof"``, ``"png:<maker>"``, ``"html"``,
    ``"csv:<first column>"``; see :func:`_looks_like`): a re-run replaces its own output, never a file the user has
    that is something else (a train.csv given as ``--out``, a Kaggle zip as ``--probs-out``, a run's ``oof.npz``, a
    model's ``config.json``, a run's ``cv.png``). A ``png``, ``html`` or ``json`` output must have that suffix."""
    if path is None:
        return None
    path = Path(path)
    about = _KINDS.get(kind or "submission") or _KINDS[str(kind).split(":", 1)[0]]
    if path.is_dir():
        raise InvalidInputError(f"{what} {path}: is a folder; give a file name, e.g. {path / about.example}")
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise InvalidInputError(f"{what} {path}: {parent} is a file, not a folder; choose another path")
    if parent is not None and not os.access(parent, os.W_OK):
        raise InvalidInputError(f"{what} {path}: {parent} is not writable; choose another path")
    if path.is_file():
        for other in inputs:
            if other is not None and Path(other).is_file() and path.samefile(other):
                raise InvalidInputError(f"{what} {path}: is also an input of this command; write to another file")
        if kind is not None and not _looks_like(path, kind):
            raise InvalidInputError(f"{what} {path}: exists and is not a {about.name} file this command wrote; it "
                                    "would be lost: choose another path, or delete it first")
    if about.suffixes and path.suffix.lower() not in about.suffixes:  # a chart or page under another name
        raise InvalidInputError(f"{what} {path}: a {about.name} is written; give a name ending in {about.suffixes[0]}")
    return path


def check_distinct_outputs(outputs: dict[str, str | os.PathLike | None]) -> None:
    """Refuses, before any work, two outputs of one command that name the same file (``{"--out": ..., "--probs-out":
    ...}``): the second write would replace the first after the command said it wrote it."""
    seen: dict[Path, str] = {}
    for what, path in outputs.items():
        if path is None:
            continue
        key = Path(os.path.abspath(Path(path).expanduser()))
        if key.exists():
            key = key.resolve()
        if key in seen:
            raise InvalidInputError(f"{seen[key]} and {what} are the same file ({path}); give each its own")
        seen[key] = what


OUT_OF_FOLD_KEYS = ("folds", "fold", "ensemble_of")  # the meta of out-of-fold word probabilities (train, ensemble)


def _looks_like(path: Path, kind: str) -> bool:
    """Whether an existing file is of the ``kind`` a command writes (so replacing it loses nothing of the user's):
    ``npz:probs`` test-essay word probabilities of ``predict`` (not a run's out-of-fold file, not any zip),
    ``npz:ensemble-oof`` an ensemble's out-of-fold file, ``json:<key>`` a JSON object holding ``key``,
    ``png:<maker>`` a chart that :func:`report.save_figure` tagged with that maker."""
    try:
        if kind.startswith("npz:"):
            meta = _word_probs_meta(path)
            if meta is None:
                return False
            out_of_fold = any(k in meta for k in OUT_OF_FOLD_KEYS)
            return not out_of_fold if kind == "npz:probs" else "ensemble_of" in meta
        if kind.startswith("json:"):
            data = json.loads(path.read_text(encoding="utf-8"))
            return isinstance(data, dict) and kind[5:] in data
        with path.open("rb") as f:
            raw = f.read(4096)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return False
    head = raw.decode("utf-8", errors="replace")
    if kind == "submission":
        return head.lstrip("\ufeff").split("\n", 1)[0].strip().replace(" ", "") == "id,class,predictionstring"
    if kind.startswith("png:"):
        return raw.startswith(b"\x89PNG\r\n\x1a\n") and png_source(raw) == f"{PNG_SOURCE} {kind[4:]}"
    if kind == "html":
        return head.lstrip().lower().startswith(("<!doctype html", "<html"))
    if kind.startswith("csv:"):  # a table of ours: its header's first column
        return head.lstrip("\ufeff").split("\n", 1)[0].split(",", 1)[0].strip() == kind[4:]
    raise ValueError(f"unknown output kind {kind!r}")


def _word_probs_meta(path: Path) -> dict | None:
    """The meta of a word-probabilities file of this package (``probs.save_word_probs``); None for another file."""
    import numpy as np

    with zipfile.ZipFile(path) as z:
        if not {"probs.npy", "offsets.npy", "ids.npy", "meta.npy"} <= set(z.namelist()):
            return None
        with z.open("meta.npy") as f:
            meta = json.loads(str(np.load(f)))
    return meta if isinstance(meta, dict) else None


PNG_SOURCE = "feedback_ner"  # a chart's PNG "Source" text: "feedback_ner <maker>" (report.save_figure)


def png_source(raw: bytes) -> str | None:
    """The ``Source`` text of a PNG's header chunks (before its image data), None where it has none."""
    pos = 8
    while pos + 8 <= len(raw):
        size, chunk = int.from_bytes(raw[pos : pos + 4], "big"), raw[pos + 4 : pos + 8]
        if chunk == b"IDAT":
            break
        if chunk == b"tEXt":
            key, _, value = raw[pos + 8 : pos + 8 + size].partition(b"\0")
            if key == b"Source":
                return value.decode("latin-1")
        pos += 12 + size
    return None


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, command: str) -> Iterator[Path]:
    """Hold ``folder/.feedback_ner.lock`` while ``command`` writes into ``folder``: a second command on the same
    folder (another process, on this machine or another one sharing the disk) stops with one line instead of mixing
    its files with the first one's. The lock is the kernel's (``flock``), so a killed process never leaves the folder
    locked; the file only tells the next command who holds it. The folder must exist. (Without ``fcntl``, on
    Windows, nothing is locked.)"""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield Path(folder) / LOCK_FILE
        return
    lock = Path(folder) / LOCK_FILE
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise FeedbackError(
                f"{folder} is in use by another {holder.get('command', 'command')} (pid {holder.get('pid', '?')} on "
                f"{holder.get('host', '?')} since {holder.get('since', '?')}): wait for it to finish"
            ) from None
        try:  # the file may have been removed (and another created) by the holder we waited behind: lock that one
            same = os.path.samestat(os.fstat(fd), os.stat(lock))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    left = _read_holder(fd)
    if left:
        logger.warning("%s: left by %s (pid %s on %s), which is gone; taken over", lock, left.get("command"),
                       left.get("pid"), left.get("host"))
    me = {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
          "since": time.strftime("%Y-%m-%d %H:%M:%S")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(me).encode(), 0)
    try:
        yield lock
    finally:
        lock.unlink(missing_ok=True)  # still holding the lock: a waiter re-checks that the file is the same
        os.close(fd)


def _read_holder(fd: int) -> dict[str, Any]:
    """The JSON a lock file's holder wrote, or {}."""
    try:
        data = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
