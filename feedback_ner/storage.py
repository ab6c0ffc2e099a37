"""Optuna storages (library): an RDB storage from a URL, with the driver found, heartbeats, and one line per mistake.

``sqlite:///path.db`` works everywhere (several processes on one machine); ``postgresql://user:pw@host/db`` lets
several machines share a study (``pip install -e .[postgres]`` installs the driver). A driverless PostgreSQL URL
gets whichever driver is installed (SQLAlchemy 2.1 would ask for psycopg 3, 2.0 for psycopg2).
"""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from feedback_ner.errors import FeedbackError


def open_storage(url: str, heartbeat: int | None = None) -> Any:
    """An Optuna RDB storage; with ``heartbeat`` (seconds) a RUNNING trial whose process stopped beating for twice
    that is failed and its parameters tried once more. A user's mistake (bad URL, missing driver, unreachable
    database) is a :class:`FeedbackError` of one line."""
    import optuna
    from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError, SQLAlchemyError

    shown = shown_url(url)
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("sqlite:///"):
        engine_kwargs = {"connect_args": {"timeout": 120}}  # concurrent workers wait for the lock, not fail
        try:
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise FeedbackError(f"--storage {shown}: cannot create the database's folder: {e}") from None
    attempts = 6
    for attempt in range(attempts):
        try:
            with warnings.catch_warnings(), _creation_lock(url):
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                beats = {} if heartbeat is None else dict(
                    heartbeat_interval=heartbeat, grace_period=2 * heartbeat, **_retry_once())
                return optuna.storages.RDBStorage(_with_driver(url), engine_kwargs=engine_kwargs, **beats)
        except ImportError as e:
            raise FeedbackError(f"--storage {shown}: its database driver is not installed ({e.__cause__ or e}); "
                                "for PostgreSQL run pip install -e .[postgres].") from None
        except ArgumentError as e:
            raise FeedbackError(f"--storage {shown}: not a storage URL ({e}); use sqlite:///path.db or "
                                "postgresql://user:password@host/database.") from None
        except SQLAlchemyError as e:
            # Workers starting together race to create the tables (one machine's SQLite workers are serialised by
            # the folder lock; PostgreSQL workers on several machines are not): the loser waits, then finds them made.
            raced = isinstance(e, IntegrityError) or any(
                word in str(e).lower() for word in ("already exists", "duplicate"))
            if raced and attempt + 1 < attempts:
                time.sleep(0.25 * 2**attempt)
                continue
            if isinstance(e, OperationalError):
                first = str(e.orig or e).strip().splitlines()[0]
                raise FeedbackError(f"--storage {shown}: cannot open the database: {first}") from None
            raise
    raise AssertionError("unreachable")


def _retry_once() -> dict[str, Any]:
    """The heartbeat callback that retries a dead worker's trial once, under the name this Optuna knows (4.9 renamed
    ``failed_trial_callback`` to ``heartbeat_stale_trial_callback`` and deprecated the old one)."""
    from optuna import storages

    if hasattr(storages, "RetryHeartbeatStaleTrialCallback"):
        return {"heartbeat_stale_trial_callback": storages.RetryHeartbeatStaleTrialCallback(max_retry=1)}
    return {"failed_trial_callback": storages.RetryFailedTrialCallback(max_retry=1)}


@contextlib.contextmanager
def _creation_lock(url: str) -> Iterator[None]:
    """Hold an exclusive lock on a SQLite database's folder while its tables are made, so workers started together on
    one machine do not race to create them (SQLAlchemy checks, then creates). No lock for other databases, or where
    the platform has no ``fcntl`` (the retries in :func:`open_storage` cover those)."""
    try:
        import fcntl
    except ImportError:
        fcntl = None  # type: ignore[assignment]
    if fcntl is None or not url.startswith("sqlite:///"):
        yield
        return
    fd = None
    try:
        fd = os.open(Path(url.removeprefix("sqlite:///")).parent, os.O_RDONLY)
        fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError:  # an unreadable folder, or a file system without locks: the retries cover it
        pass
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)  # closing the descriptor releases the lock


def shown_url(url: str) -> str:
    """The storage URL with its password hidden (for messages and logs)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return url
    return parsed.render_as_string(hide_password=True) if parsed.password else url


def _with_driver(url: str) -> str:
    """A driverless PostgreSQL URL with the installed driver made explicit (SQLAlchemy 2.1 defaults to psycopg 3,
    2.0 to psycopg2; either works)."""
    import importlib

    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("postgres", "postgresql"):
        return url
    for module in ("psycopg2", "psycopg"):
        try:
            importlib.import_module(module)
        except ImportError:
            continue
        return f"postgresql+{module}://{rest}"
    raise FeedbackError(f"--storage {shown_url(url)}: no PostgreSQL driver is installed; "
                        "run pip install -e .[postgres] (psycopg2-binary).")
