"""Optuna storage opening (feedback_ner.storage): workers started together on a new database all open it."""

from __future__ import annotations

import subprocess
import sys
import time
import warnings

import pytest

from feedback_ner.errors import FeedbackError
from feedback_ner.storage import open_storage, shown_url

# Each worker waits for the same wall-clock moment, then opens the (new) database and makes a study in it.
WORKER = """
import sys, time
from feedback_ner.storage import open_storage
import optuna
url, start = sys.argv[1], float(sys.argv[2])
time.sleep(max(0.0, start - time.time()))
storage = open_storage(url, heartbeat=5)
optuna.create_study(study_name="s", storage=storage, load_if_exists=True)
print("opened")
"""


def test_workers_started_together_all_open_a_new_sqlite_database(tmp_path):
    """Eight processes open one new SQLite file at the same moment (the tables are made once, not raced: CI once saw
    'table trial_user_attributes already exists' from two sweep workers)."""
    url = f"sqlite:///{tmp_path / 'db' / 'shared.db'}"
    start = time.time() + 4.0  # after every interpreter has imported optuna
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, url, str(start)], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for _ in range(8)]
    logs = [p.communicate(timeout=300)[0] for p in procs]
    for p, log in zip(procs, logs):
        assert p.returncode == 0 and log.strip().endswith("opened"), log[-2000:]


def test_heartbeat_storage_opens_without_deprecation_warnings(tmp_path):
    """The retry-once callback goes by the name this Optuna knows, so a sweep's log has no FutureWarning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        storage = open_storage(f"sqlite:///{tmp_path / 'a.db'}", heartbeat=5)
    assert storage.get_heartbeat_interval() == 5


def test_bad_url_is_one_line_and_password_hidden():
    with pytest.raises(FeedbackError, match="not a storage URL"):
        open_storage("nonsense-url")
    assert shown_url("postgresql://me:secret@host/db") == "postgresql://me:***@host/db"
