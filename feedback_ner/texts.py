"""Reading essay files: encodings (UTF-8, or UTF-16/32 where a byte-order mark says so), line ends kept, and
folders of essays (``*.txt``; whatever else a folder holds is counted and left out).

Words are ``text.split()`` of the text as read here; ``corpus`` validates ``train.csv`` against these texts.
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
import os
from collections.abc import Iterable
from pathlib import Path

from feedback_ner.errors import DataError

logger = logging.getLogger("feedback_ner.texts")

# Byte-order marks that name an encoding beyond doubt (UTF-32 first: its little-endian mark starts like UTF-16's).
UNICODE_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                 (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def read_text(path: str | os.PathLike) -> str:
    """An essay as stored: UTF-8, a leading BOM dropped, line ends kept (no newline translation).

    A file that starts with a UTF-16 or UTF-32 byte-order mark is decoded as such (the mark says which; it is not
    text). ``train.csv`` offsets index the file's characters as stored; :func:`load_train` checks whether they count
    ``\\r\\n`` and ``\\r`` as one ``\\n`` instead (:func:`normalise_newlines`). Words (``text.split()``) are the
    same either way.
    """
    with open(path, "rb") as f:
        raw = f.read()
    encoding = next((name for bom, name in UNICODE_BOMS if raw.startswith(bom)), "utf-8")
    if encoding == "utf-8" and len(raw) >= 4 and raw.count(0) * 4 >= len(raw):
        # ASCII as UTF-16/32 without a byte-order mark is valid UTF-8 too: text with a NUL after every letter
        raise DataError(f"{path}: {raw.count(0)} of its {len(raw)} bytes are NUL: UTF-16 or UTF-32 without a "
                        "byte-order mark? re-save the file as UTF-8")
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as err:
        raise DataError(
            f"{path}: byte {err.start}: not valid {encoding.upper()} ({err.reason}); re-save the file as UTF-8"
        ) from None
    return text[1:] if text.startswith("\ufeff") else text


def normalise_newlines(text: str) -> str:
    """``text`` with ``\\r\\n`` and lone ``\\r`` as ``\\n`` (what Python's text mode reads); same words."""
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def csv_field_counts(text: str) -> list[tuple[int, int]]:
    """``(line, fields)`` of each record of the CSV ``text`` after its header, in order, blank lines skipped as
    pandas skips them; ``line`` (1-based) is where the record starts. A record with fewer fields than the header
    reads in pandas as one whose last fields are empty: this tells a cut line from empty fields."""
    reader = csv.reader(io.StringIO(text))
    counts, start = [], 1
    for i, row in enumerate(reader):
        if is_csv_record(row) and i > 0:
            counts.append((start, len(row)))
        start = reader.line_num + 1
    return counts


def is_csv_record(row: list[str]) -> bool:
    """Whether a line ``csv.reader`` read is a record pandas keeps: not blank nor whitespace only (a line of commas
    alone is one, of empty fields)."""
    return bool(row) and not (len(row) == 1 and not row[0].strip())


def load_texts(dir_or_files: str | os.PathLike | Iterable[str | os.PathLike]) -> dict[str, str]:
    """Essay texts keyed by file stem, from a folder of ``*.txt`` files, one file, or a list of files (sorted by id)."""
    if isinstance(dir_or_files, (str, os.PathLike)):
        root = Path(dir_or_files)
        if root.is_dir():
            files = essay_files(root)
            if not files:
                raise DataError(f"{root}: no .txt essay files in this folder; point at the folder of essays")
        elif root.is_file():
            files = [root]
        else:
            raise DataError(f"{root}: no such file or folder; point at a folder of .txt essays or at .txt files")
    else:
        files = [Path(f) for f in dir_or_files]
        for f in files:
            if f.is_dir():
                raise DataError(f"{f}: a folder in a list of essay files; give one folder of essays, or its .txt "
                                "files")
            if not f.is_file():
                raise DataError(f"{f}: no such essay file; check the path")
    for f in files:  # given by name: a CSV or notes file would be read as one essay
        if not is_essay_file(f):
            raise DataError(f"{f}: not an essay file (<id>.txt); give .txt essays, or a folder of them")
    texts: dict[str, str] = {}
    seen: dict[str, Path] = {}
    for f in sorted(files, key=lambda p: (p.stem, p.name)):
        if f.stem in seen:
            both = f"{seen[f.stem]} and {f.name}" if seen[f.stem].parent == f.parent else f"{seen[f.stem]} and {f}"
            raise DataError(f"{both}: two files for essay {f.stem!r} (its id is the file name); keep one")
        seen[f.stem] = f
        texts[f.stem] = read_text(f)
    return texts


def is_essay_file(entry: os.DirEntry | Path) -> bool:
    """The one rule for what is an essay in a folder (``load_texts``, ``corpus.load_train``, the word-table
    cache): a file (a link to one) named ``<id>.txt``, any case of the extension."""
    return os.path.splitext(entry.name)[1].lower() == ".txt" and entry.is_file()


def essay_files(folder: Path) -> list[Path]:
    """The essay files of a folder: its ``*.txt`` files (any case of the extension), sorted. Whatever else is
    there (other files, subfolders, broken links) is counted in one warning, never read and never silently."""
    files, others = [], []
    for entry in sorted(folder.iterdir()):
        (files if is_essay_file(entry) else others).append(entry)
    if others:
        listed = ", ".join(p.name + ("/" if p.is_dir() else "") for p in others[:3])
        logger.warning("%s: %d entries are not .txt essay files and are left out (%s%s)", folder, len(others),
                       listed, ", ..." if len(others) > 3 else "")
    return files
