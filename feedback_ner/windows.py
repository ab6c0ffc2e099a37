"""Essays -> overlapping token windows with per-token labels and word ids, and the collator that pads them.

Token -> word: each essay is tokenised once, without truncation or special tokens, by the model's fast tokenizer
(:mod:`feedback_ner.tokens`); a token belongs to the whitespace word (``labels.split_words``) that holds its first
non-space character, found by character offsets against ``word_start``/``word_end`` (:func:`token_word_ids`). That
one rule serves every tokenizer family:

- byte-level BPE (Longformer, RoBERTa): ``Ġword`` starts at its space (offsets from the token bytes) or at the word
  (the tokenizer's trimmed offsets), the word either way; ``Ġ`` alone and ``Ċ`` (newline) cover only whitespace ->
  word -1;
- WordPiece (BERT): offsets never include whitespace; newlines produce no token;
- Unigram/Metaspace (DeBERTa-v2/v3, BigBird's SentencePiece): ``▁word`` offsets include the leading space (or the
  newline it replaced), so the first non-space character decides; a lone ``▁`` covering only a space -> word -1.

Windows: the essay's tokens are cut into windows of ``max_length - n_special`` content tokens, each wrapped in the
model's special tokens (CLS/BOS ... SEP/EOS), consecutive windows sharing exactly ``stride`` content tokens; the last
window ends at the essay's end (it may be shorter). Everything past the tokenizer call is vectorised over a batch.

``keep_newlines``: WordPiece and Metaspace tokenizers read a paragraph break as a space, so the model cannot see
paragraphs, which mark element boundaries in these essays. The text is left untouched (word offsets stay exact) and
one existing vocabulary token (:data:`NEWLINE_CANDIDATES`: a newline token, else the pilcrow, else "|") is inserted
before the first token after each break, with word -1 and label -100. An existing token needs no new embedding
row, so any pretrained checkpoint takes it as is. Byte-level BPE keeps newlines (``Ċ``); there it changes nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import torch
from datasets import Dataset, Features, List, Value, concatenate_datasets
from datasets.fingerprint import get_temporary_cache_files_directory
from datasets.table import InMemoryTable, MemoryMappedTable
from tokenizers import Tokenizer

from feedback_ner.labels import B_IDS, I_IDS, NUM_LABELS, group_starts
from feedback_ner.tokens import Encoder, TokenArrays, TokenCache, private_backend

logger = logging.getLogger("feedback_ner.windows")

# Part of every cache key: bump when the windows written for the same inputs change.
WINDOWS_VERSION = "4"  # 2: the length column; 3: odd whitespace as spaces before tokenising (tokens.plain_spaces);
# 4: line ends read as \n (texts.normalise_newlines)
IGNORE_INDEX = -100
# Vocabulary tokens tried, in order, as the paragraph-break marker of tokenizers that drop newlines: a real newline
# token first, then the pilcrow (a pre-trained token whose meaning is "paragraph"), then "|", which essays hardly
# use. Inserting an existing token needs no new embedding, so any checkpoint can use it.
NEWLINE_CANDIDATES: tuple[str, ...] = ("\n", "▁\n", "<0x0A>", "▁¶", "¶", "▁|", "|")
# A paragraph break: a run of whitespace holding at least one line end, "\n" or "\r" (the whole run is one break).
_BREAK = re.compile(r"[^\S\r\n]*[\r\n]\s*")

WINDOW_FEATURES = Features(
    {
        "input_ids": List(Value("int32")),
        "attention_mask": List(Value("int8")),
        "labels": List(Value("int8")),
        "word_ids": List(Value("int32")),
        "essay_index": Value("int64"),
        "length": Value("int32"),
    }
)
# The column the Trainer's length-grouped sampler reads (``TrainingArguments.length_column_name``'s default).
LENGTH_COLUMN = "length"

# B-X -> I-X, identity elsewhere: the label of a word's later sub-tokens under label_all_subtokens.
_CONTINUATION = np.arange(NUM_LABELS, dtype=np.int64)
for _cls, _b in B_IDS.items():
    _CONTINUATION[_b] = I_IDS[_cls]


def special_tokens(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The special-token ids the tokenizer puts before and after one sequence (e.g. ``[CLS]`` / ``[SEP]``)."""
    probe = "a"
    with_special = list(tokenizer(probe, add_special_tokens=True)["input_ids"])
    content = list(tokenizer(probe, add_special_tokens=False)["input_ids"])
    for k in range(len(with_special) - len(content) + 1):
        if with_special[k : k + len(content)] == content:
            return with_special[:k], with_special[k + len(content) :]
    raise ValueError(f"cannot find the content of {probe!r} inside its encoding with special tokens {with_special}")


def _keeps_newlines(backend: Tokenizer) -> bool:
    """True when a newline changes the tokens (byte-level BPE's ``Ċ``); False when it reads as a space."""
    spaced = backend.encode("a b", add_special_tokens=False).ids
    return all(backend.encode(t, add_special_tokens=False).ids != spaced for t in ("a\nb", "a\n\nb", "a \n b"))


def newline_token_id(tokenizer: Any) -> int | None:
    """The id inserted at each paragraph break with ``keep_newlines``; None when the tokenizer keeps newlines itself.

    The first of :data:`NEWLINE_CANDIDATES` in the vocabulary, else the unknown token (with a warning).
    """
    return _newline_id(private_backend(tokenizer), tokenizer)


def _newline_id(backend: Tokenizer, tokenizer: Any) -> int | None:
    if _keeps_newlines(backend):
        return None
    vocab = backend.get_vocab(with_added_tokens=True)
    for candidate in NEWLINE_CANDIDATES:
        if candidate in vocab:
            return int(vocab[candidate])
    unk = getattr(tokenizer, "unk_token_id", None)
    if unk is None:
        raise ValueError(
            f"keep_newlines: the tokenizer has none of {NEWLINE_CANDIDATES!r} and no unknown token; "
            "add a newline token to it or set keep_newlines=False"
        )
    logger.warning("keep_newlines: none of %r is in the vocabulary; paragraph breaks become the unknown token",
                   NEWLINE_CANDIDATES)
    return int(unk)


@dataclass
class _WindowMaker:
    """The ``datasets.map`` function: a batch of essays (arrow) -> its windows (arrow). Picklable for num_proc."""

    encoder: Encoder
    prefix: list[int]
    suffix: list[int]
    content_len: int
    stride: int
    label_all_subtokens: bool
    newline_id: int | None
    has_labels: bool
    token_cache: TokenCache | None = None  # in-process only: not sent to map workers
    ids: list[str] | None = None  # essay ids by essay_index, for warnings

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "token_cache": None}

    def __call__(self, batch: pa.Table) -> pa.Table:
        texts = batch.column("text").to_pylist()
        n_essays = len(texts)
        text_len = np.fromiter((len(t) for t in texts), np.int64, count=n_essays)
        # Essays laid end to end (one gap character apart) so that one searchsorted maps every token of the batch.
        char_base = group_starts(text_len + 1)

        w_start, n_words = _flat_lists(batch.column("word_start"))
        w_end, _ = _flat_lists(batch.column("word_end"))
        word_base = group_starts(n_words)
        w_start = w_start + np.repeat(char_base, n_words)
        w_end = w_end + np.repeat(char_base, n_words)

        ids, t_start, t_end, n_tok = self._encode(texts)
        tok_essay_base = np.repeat(char_base, n_tok)
        t_start += tok_essay_base
        t_end += tok_essay_base

        w = token_word_ids(w_start, w_end, t_start, t_end)
        _warn_untokenized(w, n_words, batch.column("essay_index").to_numpy(), self.ids)

        if self.newline_id is not None:
            ids, w, n_tok = self._insert_breaks(texts, char_base, t_start, ids, w, n_tok)

        labels = None
        if self.has_labels:
            word_labels, _ = _flat_lists(batch.column("labels"))
            first = (w >= 0) & (w != np.r_[-1, w[:-1]])
            lab = word_labels[np.maximum(w, 0)]
            labels = np.where(first, lab, IGNORE_INDEX)
            if self.label_all_subtokens:
                labels = np.where((w >= 0) & ~first, _CONTINUATION[lab], labels)
        # word index within its essay
        w_local = np.where(w >= 0, w - np.repeat(word_base, n_tok), -1)
        return self._cut(ids, w_local, labels, n_tok, batch.column("essay_index").to_numpy())

    def _encode(self, texts: list[str]) -> TokenArrays:
        """Token ids and character start/end offsets of every essay, end to end, with tokens per essay."""
        if self.token_cache is not None:
            return self.token_cache.arrays(texts)
        return self.encoder.encode(texts)

    def _insert_breaks(
        self, texts: list[str], char_base: np.ndarray, t_start: np.ndarray, ids: np.ndarray, w: np.ndarray,
        n_tok: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One marker token (word -1) before the first token after each paragraph break."""
        breaks = [np.fromiter((m.start() for m in _BREAK.finditer(t)), np.int64) for t in texts]
        n_breaks = np.fromiter((len(b) for b in breaks), np.int64, count=len(breaks))
        if not n_breaks.any():
            return ids, w, n_tok
        pos = np.concatenate(breaks) + np.repeat(char_base, n_breaks)
        # A break after an essay's last token lands on the next essay's first token index: still this essay's end.
        at = np.searchsorted(t_start, pos, side="left")
        ids = np.insert(ids, at, np.int32(self.newline_id))
        w = np.insert(w, at, -1)
        return ids, w, n_tok + n_breaks

    def _cut(
        self, ids: np.ndarray, words: np.ndarray, labels: np.ndarray | None, n_tok: np.ndarray, essay_index: np.ndarray
    ) -> pa.Table:
        """Windows of every essay, with special tokens added, as an arrow table."""
        step = self.content_len - self.stride
        n_win = np.where(n_tok > self.content_len, 1 + -(-(n_tok - self.content_len) // step), 1)
        win_essay = np.repeat(np.arange(len(n_tok)), n_win)
        win_rank = np.arange(len(win_essay)) - np.repeat(group_starts(n_win), n_win)
        lo = win_rank * step
        hi = np.minimum(lo + self.content_len, n_tok[win_essay])
        n_content = hi - lo
        src_base = group_starts(n_tok)[win_essay] + lo  # index of each window's first content token

        n_pre, n_suf = len(self.prefix), len(self.suffix)
        out_len = n_content + n_pre + n_suf
        out_off = np.zeros(len(out_len) + 1, np.int64)
        np.cumsum(out_len, out=out_off[1:])
        win = np.repeat(np.arange(len(out_len)), out_len)
        pos = np.arange(out_off[-1]) - out_off[:-1][win]
        rel = pos - n_pre  # position among the window's content tokens
        content = (rel >= 0) & (rel < n_content[win])
        src = np.where(content, src_base[win] + rel, 0)

        specials = np.asarray(self.prefix + self.suffix + [0], np.int32)
        special_at = np.clip(np.where(rel < 0, pos, n_pre + rel - n_content[win]), 0, len(specials) - 1)
        out_ids = np.where(content, ids[src] if len(ids) else 0, specials[special_at])
        columns = {
            "input_ids": _list_array(out_off, out_ids.astype(np.int32)),
            "attention_mask": _list_array(out_off, np.ones(len(out_ids), np.int8)),
        }
        if labels is not None:
            out_labels = np.where(content, labels[src] if len(labels) else 0, IGNORE_INDEX)
            columns["labels"] = _list_array(out_off, out_labels.astype(np.int8))
        out_words = np.where(content, words[src] if len(words) else 0, -1)
        columns["word_ids"] = _list_array(out_off, out_words.astype(np.int32))
        columns["essay_index"] = pa.array(essay_index[win_essay].astype(np.int64))
        columns[LENGTH_COLUMN] = pa.array(out_len.astype(np.int32))
        return pa.table(columns)


def token_word_ids(
    word_start: np.ndarray, word_end: np.ndarray, token_start: np.ndarray, token_end: np.ndarray
) -> np.ndarray:
    """The word of each token, -1 for none: the word holding the token's first non-space character, i.e. the first
    word ending after the token's start, provided it starts before the token's end; tokens of only whitespace (or
    empty) get -1. Words and tokens are character offsets on one axis, words sorted and disjoint."""
    w = np.searchsorted(word_end, token_start, side="right")
    inside = (w < len(word_end)) & (token_end > token_start)
    inside[inside] = word_start[w[inside]] < token_end[inside]
    return np.where(inside, w, -1)


def _warn_untokenized(
    w: np.ndarray, n_words: np.ndarray, essay_index: np.ndarray, ids: list[str] | None = None
) -> None:
    """Warn about words no token maps to (characters the tokenizer drops): they can get no prediction."""
    seen = np.zeros(int(n_words.sum()), bool)
    seen[w[w >= 0]] = True
    missing = np.flatnonzero(~seen)
    if len(missing):
        rows = essay_index[np.unique(np.searchsorted(np.cumsum(n_words), missing, side="right"))]
        named = [ids[r] for r in rows[:5]] if ids is not None else rows[:5].tolist()
        logger.warning("%d words in %d essays have no token: the tokenizer drops all their characters (e.g. "
                       "control or zero-width characters), so each takes the prediction of the word before it (O at "
                       "an essay's start); essays: %s%s", len(missing),
                       len(rows), ", ".join(map(str, named)), " ..." if len(rows) > 5 else "")


def _flat_lists(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Values (int64) and lengths of an arrow list column."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    lengths = pc.list_value_length(arr).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    return arr.flatten().to_numpy(zero_copy_only=False).astype(np.int64, copy=False), lengths


def _list_array(offsets: np.ndarray, values: np.ndarray) -> pa.ListArray:
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(values))


@dataclass
class _Essays:
    """The word table's essays as flat arrays (``n_words`` per essay); ``ids`` name rows in error messages."""

    ids: list[str]
    texts: list[str]
    word_start: np.ndarray
    word_end: np.ndarray
    n_words: np.ndarray
    labels: np.ndarray | None
    n_ends: np.ndarray
    n_labels: np.ndarray | None

    @classmethod
    def from_table(cls, table: pd.DataFrame) -> _Essays:
        missing = [c for c in ("text", "word_start", "word_end") if c not in table.columns]
        if missing:
            raise ValueError(f"word table: missing column(s) {missing}; build it with wordtable.build_word_table")
        ids = table["id"].astype(str).tolist() if "id" in table.columns else [str(i) for i in range(len(table))]
        texts = table["text"].tolist()
        for row, text in enumerate(texts):
            if not isinstance(text, str):
                _fail(ids, row, f"text is {type(text).__name__}, expected str")
        starts, n_words = _flatten(table["word_start"], "word_start", ids)
        ends, n_ends = _flatten(table["word_end"], "word_end", ids)
        labels, n_labels = _flatten(table["labels"], "labels", ids) if "labels" in table.columns else (None, None)
        return cls(ids, texts, starts, ends, n_words, labels, n_ends, n_labels)

    def validate(self) -> None:
        """One label per word; words increasing, non-empty, non-overlapping, inside the text. Else name the row."""
        n_words = self.n_words
        for row in np.flatnonzero(n_words != self.n_ends)[:1]:
            _fail(self.ids, row, f"{n_words[row]} word_start values but {self.n_ends[row]} word_end values")
        first_word = group_starts(n_words)

        def row_of(k: int) -> int:
            return int(np.searchsorted(first_word, k, side="right") - 1)

        if self.labels is not None:
            for row in np.flatnonzero(self.n_labels != n_words)[:1]:
                _fail(self.ids, row, f"{self.n_labels[row]} labels for {n_words[row]} words")
            for k in np.flatnonzero((self.labels < 0) | (self.labels >= NUM_LABELS))[:1]:
                _fail(self.ids, row_of(k), f"label {self.labels[k]} not in 0..{NUM_LABELS - 1}")
        starts, ends = self.word_start, self.word_end
        # the next word's start, or the text length after an essay's last word
        limit = np.empty_like(ends)
        limit[:-1] = starts[1:]
        has_words = n_words > 0
        limit[(first_word + n_words - 1)[has_words]] = np.fromiter(map(len, self.texts), np.int64)[has_words]
        for k in np.flatnonzero((starts < 0) | (ends <= starts) | (ends > limit))[:1]:
            row = row_of(k)
            _fail(self.ids, row, f"word {k - first_word[row]} has offsets [{starts[k]}, {ends[k]}) that are empty, "
                  "overlap the next word or pass the end of the text")

    def arrow(self) -> pa.Table:
        """Input of the map: ``text``, ``word_start``, ``word_end``, [``labels``], ``essay_index``."""
        offsets = np.zeros(len(self.n_words) + 1, np.int64)
        np.cumsum(self.n_words, out=offsets[1:])
        columns = {
            "text": pa.array(self.texts, pa.large_string()),
            "word_start": _list_array(offsets, self.word_start.astype(np.int32)),
            "word_end": _list_array(offsets, self.word_end.astype(np.int32)),
        }
        if self.labels is not None:
            columns["labels"] = _list_array(offsets, self.labels.astype(np.int8))
        columns["essay_index"] = pa.array(np.arange(len(self.texts), dtype=np.int64))
        return pa.table(columns)

    def digest(self) -> str:
        """Content hash of the essays, words and labels."""
        h = content_hasher()
        h.update("\x00".join(self.texts).encode("utf-8", "surrogatepass"))
        for arr in (self.n_words, self.word_start, self.word_end, self.n_labels, self.labels):
            h.update(b"|" if arr is None else np.ascontiguousarray(arr, np.int64))
        return h.hexdigest()


def _fail(ids: list[str], row: int | np.integer, what: str) -> None:
    raise ValueError(f"word table row {row} (id {ids[row]}): {what}; rebuild it with wordtable.build_word_table")


def _flatten(values: pd.Series, name: str, ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """One int64 array of a list column's values, and the list lengths."""
    rows = values.tolist()
    try:
        lengths = np.fromiter(map(len, rows), np.int64, count=len(rows))
        flat = np.concatenate(rows) if len(rows) else np.zeros(0, np.int64)
    except TypeError:
        bad = next(row for row, v in enumerate(rows) if not isinstance(v, (np.ndarray, list, tuple)))
        _fail(ids, bad, f"{name} is {type(rows[bad]).__name__}, expected a list of integers")
    if flat.dtype.kind not in "iu" and len(flat):
        bad = next(row for row, v in enumerate(rows) if len(v) and np.asarray(v).dtype.kind not in "iu")
        _fail(ids, bad, f"{name} holds {np.asarray(rows[bad]).dtype} values, expected integers")
    return flat.astype(np.int64, copy=False), lengths


def _cached_files(out_dir: Path, key: str) -> list[str]:
    """The complete set of window files cached under ``key`` (one file, or every shard of a num_proc run)."""
    single = out_dir / f"windows-{key}.arrow"
    if single.is_file():
        return [str(single)]
    shards = sorted(out_dir.glob(f"windows-{key}_*_of_*.arrow"))
    for n in sorted({int(p.stem.rsplit("_of_", 1)[1]) for p in shards}):
        files = [out_dir / f"windows-{key}_{rank:05d}_of_{n:05d}.arrow" for rank in range(n)]
        if all(f.is_file() for f in files):
            return [str(f) for f in files]
    return []


def content_hasher() -> Any:
    """A fast 128-bit content hash (xxh3, else blake2b): the windows' cache key, and the model folder's digest."""
    try:  # xxhash comes with datasets and is ~10x faster on the ~100 MB of a full corpus
        import xxhash

        return xxhash.xxh3_128()
    except ImportError:  # pragma: no cover
        return hashlib.blake2b(digest_size=16)


def stride_error(max_length: int, stride: Any, n_special: int = 2) -> str | None:
    """Why ``stride`` cannot cut windows of ``max_length`` tokens, or None when it can: the one rule for configs,
    sweep spaces and :func:`tokenize_windows`. A window holds ``max_length - n_special`` essay tokens (2 special
    tokens for most encoders); consecutive windows share ``stride`` of them, so ``0 <= stride < max_length -
    n_special``."""
    content_len = max_length - n_special
    if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)) or not 0 <= stride < content_len:
        return (
            f"stride={stride!r} must be >= 0 and below max_length-{n_special}={content_len} for max_length="
            f"{max_length} (a window holds {content_len} essay tokens plus {n_special} special tokens; consecutive "
            "windows share stride of them): lower the stride or raise max_length"
        )
    return None


def tokenize_windows(
    table: pd.DataFrame,
    tokenizer: Any,
    max_length: int,
    stride: int,
    label_all_subtokens: bool = False,
    keep_newlines: bool = False,
    num_proc: int = 1,
    cache_dir: str | os.PathLike | None = None,
    token_cache: TokenCache | None = None,
) -> Dataset:
    """The word table's essays as windows of ``max_length`` tokens (specials included) sharing ``stride`` tokens.

    Columns ``input_ids``, ``attention_mask``, ``labels`` (only when ``table`` has labels), ``word_ids`` (-1 for
    special/whitespace/marker tokens), ``essay_index`` (row position in ``table``), ``length`` (tokens of the window:
    what length-grouped batching reads without touching the token lists). Labels: the word's label on its
    first sub-token, -100 on the others (or, with ``label_all_subtokens``, the word's label with B-X turned into I-X).
    ``keep_newlines`` inserts :func:`newline_token_id` at each paragraph break for tokenizers that drop newlines.
    With ``cache_dir`` the windows are cached there as ``windows-<key>*.arrow``, the key hashing the tokenizer, the
    options and the table content; a repeated call loads them. In one process (``num_proc=1``) the essays are
    tokenised in a background thread ahead of the windows being cut, through ``token_cache`` (a :class:`TokenCache`
    of this tokenizer, which may hold them already) or a private one.
    """
    encoder = Encoder(tokenizer)
    backend = encoder.backend
    prefix, suffix = special_tokens(tokenizer)
    n_special = len(prefix) + len(suffix)
    if isinstance(max_length, bool) or not isinstance(max_length, (int, np.integer)) or max_length <= n_special:
        raise ValueError(f"max_length must be an integer above the {n_special} special tokens; got {max_length!r}")
    content_len = int(max_length) - n_special
    problem = stride_error(int(max_length), stride, n_special)
    if problem:
        raise ValueError(problem)
    model_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(model_max, int) and max_length > model_max:
        logger.warning("max_length %d is above the tokenizer's model_max_length %d", max_length, model_max)
    newline_id = _newline_id(backend, tokenizer) if keep_newlines else None
    if keep_newlines and newline_id is None:
        logger.info("keep_newlines: this tokenizer keeps newlines as tokens already; nothing is inserted")

    essays = _Essays.from_table(table)
    has_labels = essays.labels is not None
    maker = _WindowMaker(encoder, prefix, suffix, content_len, int(stride), label_all_subtokens, newline_id, has_labels,
                         ids=essays.ids)
    features = WINDOW_FEATURES if has_labels else Features({k: v for k, v in WINDOW_FEATURES.items() if k != "labels"})
    key_hash = content_hasher()
    for part in (WINDOWS_VERSION, backend.to_str(), repr((prefix, suffix, newline_id, int(max_length), int(stride),
                                                          bool(label_all_subtokens))), essays.digest()):
        key_hash.update(part.encode() + b"\x00")
    key = key_hash.hexdigest()

    procs = int(num_proc) if num_proc and num_proc > 1 else None
    out_dir = Path(cache_dir) if cache_dir is not None else None
    if out_dir is None and procs:  # workers write files rather than pickling every window back
        out_dir = Path(get_temporary_cache_files_directory())
    if out_dir is not None:
        files = _cached_files(out_dir, key)
        if files:
            logger.info("windows: reusing %d cached file(s) %s", len(files), files[0])
            return concatenate_datasets([Dataset.from_file(f) for f in files])
        out_dir.mkdir(parents=True, exist_ok=True)

    essays.validate()
    private_cache = None
    if not procs:
        if token_cache is None:
            token_cache = private_cache = TokenCache(tokenizer)
        elif token_cache.signature != backend.to_str():
            raise ValueError("token_cache was made for another tokenizer; make one TokenCache per tokenizer")
        token_cache.prefetch(essays.texts)
        maker.token_cache = token_cache
    with tempfile.TemporaryDirectory(prefix="feedback_ner_windows_") as tmp, \
            private_cache if private_cache is not None else contextlib.nullcontext():
        source = essays.arrow()
        if procs:
            # a memory-mapped source reaches the workers as a file name instead of being pickled to each of them
            path = os.path.join(tmp, "source.arrow")
            with pa.ipc.new_stream(path, source.schema) as writer:
                writer.write_table(source)
            table_block = MemoryMappedTable.from_file(path)
        else:
            table_block = InMemoryTable(source)
        # an explicit fingerprint spares datasets from hashing the whole input
        ds = Dataset(table_block, fingerprint=f"source-{key}")
        out = ds.with_format("arrow").map(
            maker,
            batched=True,
            batch_size=500,
            num_proc=procs,
            remove_columns=ds.column_names,
            features=features,
            cache_file_name=None if out_dir is None else str(out_dir / f"windows-{key}.arrow"),
            keep_in_memory=out_dir is None,
            new_fingerprint=key,
            desc="tokenize",
        )
        del ds, table_block
    return out.with_format(None)


@dataclass
class FeedbackCollator:
    """Pads a list of windows into a batch of torch long tensors: ``input_ids`` (pad id), ``attention_mask`` (0),
    ``labels`` (-100, when present), ``word_ids`` (-1), plus ``essay_index``. Pads on the right."""

    tokenizer: Any
    pad_to_multiple_of: int | None = None
    pad_id: int = field(init=False)

    def __post_init__(self) -> None:
        pad_id = getattr(self.tokenizer, "pad_token_id", None)
        if pad_id is None:
            raise ValueError("FeedbackCollator: the tokenizer has no pad token; set tokenizer.pad_token first")
        if self.pad_to_multiple_of is not None and self.pad_to_multiple_of < 1:
            raise ValueError(f"pad_to_multiple_of must be a positive integer or None; got {self.pad_to_multiple_of}")
        self.pad_id = int(pad_id)

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        lengths = [len(f["input_ids"]) for f in features]
        width = max(lengths, default=0)
        if self.pad_to_multiple_of:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        pads = {"input_ids": self.pad_id, "attention_mask": 0, "labels": IGNORE_INDEX, "word_ids": -1}
        batch: dict[str, torch.Tensor] = {}
        for name, pad in pads.items():
            if name not in features[0]:
                continue
            out = np.full((len(features), width), pad, np.int64)
            for i, (f, n) in enumerate(zip(features, lengths)):
                out[i, :n] = np.asarray(f[name])
            batch[name] = torch.from_numpy(out)
        if "essay_index" in features[0]:
            batch["essay_index"] = torch.tensor([int(f["essay_index"]) for f in features], dtype=torch.long)
        return batch


class LengthGroupedBatches(torch.utils.data.Sampler):
    """Training order whose consecutive ``batch_size`` windows have similar lengths, the batches in random order.

    Each epoch: a random permutation (torch's global generator unless ``generator`` is given, so ``set_seed`` makes it
    reproducible and every epoch differs), cut into chunks of ``group_batches`` batches, each chunk sorted by length
    and cut into batches; then the batches are shuffled, the one holding the longest window first (an out-of-memory
    error comes at once), a short last batch last. transformers' ``LengthGroupedSampler`` leaves each chunk's batches
    in descending length order, so the model sees long-to-short runs of tens of batches; on the demo that cost ~0.12
    CV F1 against random batches (issue 16). Shuffling the batches keeps the padding and removes the drift.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, group_batches: int = 50,
                 generator: torch.Generator | None = None) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be >= 1")
        self.lengths = torch.as_tensor(np.asarray(lengths, dtype=np.int64))
        self.batch_size = int(batch_size)
        self.group_batches = int(group_batches)
        self.generator = generator

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        perm = torch.randperm(len(self.lengths), generator=self.generator)
        chunk = self.batch_size * max(1, min(self.group_batches, len(perm) // (4 * self.batch_size)))
        batches = []
        for part in perm.split(chunk):
            part = part[torch.argsort(self.lengths[part], descending=True, stable=True)]
            batches.extend(part.split(self.batch_size))
        last = batches.pop() if batches and len(batches[-1]) < self.batch_size else None
        order = torch.randperm(len(batches), generator=self.generator).tolist()
        if order:
            longest = max(range(len(batches)), key=lambda b: int(self.lengths[batches[b][0]]))
            at = order.index(longest)
            order[0], order[at] = order[at], order[0]
        out = [batches[b] for b in order] + ([last] if last is not None else [])
        return iter(torch.cat(out).tolist() if out else [])


def pad_multiple_for(config: Any) -> int | None:
    """The length batches must be a multiple of: Longformer's attention window, BigBird's block size (block-sparse
    attention); None for other models."""
    window = getattr(config, "attention_window", None)
    if window is not None:
        return int(max(window)) if isinstance(window, (list, tuple)) else int(window)
    if getattr(config, "attention_type", None) == "block_sparse" and getattr(config, "block_size", None):
        return int(config.block_size)
    return None
