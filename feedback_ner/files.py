"""Writing files so that a reader never sees a torn one (killed runs, parallel sweep workers)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any


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
