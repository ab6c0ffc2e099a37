"""Essays -> token ids and character offsets with the model's fast tokenizer, encoded once and kept.

:class:`Encoder` wraps a private copy of the fast tokenizer's backend (no truncation or padding; special-token
strings inside essays, such as "<s>", read as plain text) and returns, for a batch of texts, the token ids and the
character start/end of every token, end to end, with the number of tokens of each text (:class:`TokenArrays`).

Byte-level BPE (Longformer, RoBERTa, GPT-2) gets these offsets without asking the tokenizer for them: its tokens
spell the text's UTF-8 bytes exactly, in order, so a token's bytes are the cumulative sum of its vocabulary entry's
length, and bytes map to characters through the UTF-8 lead bytes. That skips the tokenizer's own offset tracking
and the Python tuples of ``Encoding.offsets`` (about a third of the encoding time on this corpus). The offsets so
found span the token's leading space (``Ġword`` starts at the space), which the token -> word rule of
:mod:`feedback_ner.windows` reads the same way (the word of the first non-space character). The path is taken only
when the tokenizer is plain byte-level BPE (no normalizer, no prefix space, no added tokens that are not special,
the whole byte alphabet in the vocabulary), and each batch is checked: where a text's token bytes do not add up
to its UTF-8 length, the batch is encoded again with the tokenizer's offsets. Other families (WordPiece,
SentencePiece/Unigram) always use the tokenizer's offsets.

:class:`TokenCache` encodes essays in a background thread (the Rust tokenizer releases the GIL) and keeps them, so
that tokenising overlaps loading and validation, and each essay is tokenised once for all folds and lengths.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import unicodedata
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import chain
from typing import Any, NamedTuple

import numpy as np
from tokenizers import Tokenizer, pre_tokenizers

from feedback_ner.labels import group_starts
from feedback_ner.texts import normalise_newlines

logger = logging.getLogger("feedback_ner.tokens")

# Whitespace to str.split() (so word boundaries) that some tokenizers drop or glue into a token: BERT's text cleaner
# drops \x0b, \x0c, \x1c-\x1f and \x85 ("s\x85a" -> "sa", and word "a" gets no token), keeps \u2028 inside a word.
# Each becomes a plain space before encoding: one character for one, so every offset and word stays where it was.
# Space separators (Unicode Zs: no-break space, ideographic space, ...) are whitespace to every tokenizer family and
# stay as they are, so the tokens of essays without control characters are what they always were.
_ODD_SPACES = "".join(chr(c) for c in range(0x3001) if chr(c).isspace() and chr(c) not in " \t\n\r"
                      and unicodedata.category(chr(c)) != "Zs")
_TO_SPACE = str.maketrans(_ODD_SPACES, " " * len(_ODD_SPACES))
_HAS_ODD_SPACE = re.compile(f"[{re.escape(_ODD_SPACES)}]")


def plain_spaces(text: str) -> str:
    """``text`` with every whitespace character other than space, tab, ``\n`` and ``\r`` as a space (same length,
    same ``text.split()`` words): what the tokenizer is given, so that no tokenizer merges two words or drops one."""
    return text.translate(_TO_SPACE) if _HAS_ODD_SPACE.search(text) else text


class TokenArrays(NamedTuple):
    """Tokens of several texts end to end: ``ids`` (int32), character ``starts``/``ends`` (int64, each relative to
    its own text) and ``n_tokens`` per text."""

    ids: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    n_tokens: np.ndarray

    def split(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """``(ids, starts, ends)`` of each text."""
        if not len(self.n_tokens):
            return []
        cuts = np.cumsum(self.n_tokens)[:-1]
        return list(zip(np.split(self.ids, cuts), np.split(self.starts, cuts), np.split(self.ends, cuts)))

    @classmethod
    def concat(cls, per_text: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> TokenArrays:
        """The inverse of :meth:`split`."""
        n_tok = np.fromiter((len(ids) for ids, _, _ in per_text), np.int64, count=len(per_text))
        if not per_text:
            empty = np.zeros(0, np.int64)
            return cls(empty.astype(np.int32), empty, empty, n_tok)
        return cls(
            np.concatenate([a[0] for a in per_text]).astype(np.int32, copy=False),
            np.concatenate([a[1] for a in per_text]).astype(np.int64, copy=False),
            np.concatenate([a[2] for a in per_text]).astype(np.int64, copy=False),
            n_tok,
        )


def private_backend(tokenizer: Any) -> Tokenizer:
    """A private copy of the fast tokenizer's backend: no truncation or padding left over from other calls, and
    special-token strings inside essays ("<s>", "[SEP]") not matched as special tokens: essays are plain text."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if not isinstance(backend, Tokenizer):
        raise TypeError(
            f"{type(tokenizer).__name__} is not a fast tokenizer (no backend_tokenizer); load it with "
            "AutoTokenizer.from_pretrained(path) from a folder that has tokenizer.json"
        )
    backend = Tokenizer.from_str(backend.to_str())
    backend.no_truncation()
    backend.no_padding()
    backend.encode_special_tokens = True
    return backend


def byte_level_lengths(backend: Tokenizer) -> np.ndarray | None:
    """Bytes of text spelled by each token id, when ``backend`` is plain byte-level BPE (see the module doc); else
    None. Special tokens, which essays never produce here, get their string's length."""
    spec = json.loads(backend.to_str())
    model, pre = spec.get("model") or {}, spec.get("pre_tokenizer") or {}
    if (
        model.get("type") != "BPE"
        or model.get("continuing_subword_prefix") or model.get("end_of_word_suffix") or model.get("byte_fallback")
        or spec.get("normalizer") is not None
        or pre.get("type") != "ByteLevel" or pre.get("add_prefix_space")
        or any(not token.get("special") for token in spec.get("added_tokens") or [])
    ):
        return None
    vocab = backend.get_vocab(with_added_tokens=True)
    alphabet = set(pre_tokenizers.ByteLevel.alphabet())
    if not alphabet <= vocab.keys():  # a byte without a token would be dropped from the text
        return None
    lengths = np.zeros(max(vocab.values()) + 1, np.int64)
    for token, index in vocab.items():
        lengths[index] = len(token)  # one alphabet character per byte
    return lengths


class Encoder:
    """Encodes texts with a private backend of ``tokenizer``: :meth:`encode` gives their :class:`TokenArrays`.
    ``byte_offsets=False`` always asks the tokenizer for the offsets (the byte-level path off; for comparison)."""

    def __init__(self, tokenizer: Any, byte_offsets: bool = True) -> None:
        self.backend = private_backend(tokenizer)
        self.byte_lengths = byte_level_lengths(self.backend) if byte_offsets else None

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.backend.encode_special_tokens = True  # tokenizer.json has no such field: pickling loses it

    def encode(self, texts: Sequence[str]) -> TokenArrays:
        """Tokens of ``texts`` (no special tokens added), end to end, offsets into the texts as given. The tokenizer
        reads them through :func:`plain_spaces` and with every line end as ``\\n`` (``texts.normalise_newlines``),
        so an essay stored with ``\\r\\n`` or ``\\r`` line ends has the tokens of the same essay with ``\\n``:
        training, a Kaggle test folder and a notebook's dict get the same model input whatever their line ends."""
        texts = [plain_spaces(t) for t in texts]
        read = [normalise_newlines(t) for t in texts]
        found = self._encode_bytes(read) if self.byte_lengths is not None and read else None
        if found is None:
            found = TokenArrays.concat(_token_arrays(self.backend.encode_batch(read, add_special_tokens=False)))
        return _offsets_as_given(found, texts)

    def _encode_bytes(self, texts: list[str]) -> TokenArrays | None:
        """The byte-level path: ids from the tokenizer, offsets from the bytes each token spells; None where a
        text's bytes do not add up (then the caller asks the tokenizer)."""
        encodings = self.backend.encode_batch_fast(texts, add_special_tokens=False)
        n_tok = np.fromiter(map(len, encodings), np.int64, count=len(encodings))
        ids = np.fromiter(chain.from_iterable(e.ids for e in encodings), np.int32, count=int(n_tok.sum()))
        del encodings
        size = self.byte_lengths[ids]
        ends = np.cumsum(size)
        first = group_starts(n_tok)
        before = np.r_[0, ends][first]  # bytes of the texts before each text
        ends -= np.repeat(before, n_tok)
        totals = np.r_[ends, 0][first + n_tok - 1]
        totals[n_tok == 0] = 0
        ascii_text = np.fromiter((t.isascii() for t in texts), bool, count=len(texts))
        n_bytes = np.fromiter((len(t) if a else len(t.encode("utf-8")) for t, a in zip(texts, ascii_text)),
                              np.int64, count=len(texts))
        if not np.array_equal(totals, n_bytes):
            logger.debug("byte-level offsets: token bytes differ from the text's; using the tokenizer's offsets")
            return None
        starts = ends - size
        for i in np.flatnonzero(~ascii_text):  # bytes -> characters: the character holding each byte
            lo, hi = first[i], first[i] + n_tok[i]
            utf8 = np.frombuffer(texts[i].encode("utf-8"), np.uint8)
            char_of_byte = np.cumsum((utf8 & 0xC0) != 0x80) - 1
            starts[lo:hi] = char_of_byte[starts[lo:hi]]
            ends[lo:hi] = char_of_byte[ends[lo:hi] - 1] + 1
        return TokenArrays(ids, starts, ends, n_tok)


def _offsets_as_given(arrays: TokenArrays, texts: Sequence[str]) -> TokenArrays:
    """Token offsets found in ``normalise_newlines`` of ``texts`` moved onto ``texts`` themselves: each ``\\r`` it
    dropped from a ``\\r\\n`` is put back before the ``\\n`` (a lone ``\\r`` became one ``\\n``: nothing moves)."""
    crlf = [i for i, t in enumerate(texts) if "\r\n" in t]
    if not crlf:
        return arrays
    starts, ends = arrays.starts.copy(), arrays.ends.copy()
    first = group_starts(arrays.n_tokens)
    for i in crlf:
        codes = np.frombuffer(texts[i].encode("utf-32-le"), np.uint32)
        dropped = np.zeros(len(codes), bool)
        dropped[:-1] = (codes[:-1] == 13) & (codes[1:] == 10)
        position = np.append(np.flatnonzero(~dropped), len(codes))  # where each character read sits in the text
        lo, hi = first[i], first[i] + arrays.n_tokens[i]
        s, e = arrays.starts[lo:hi], arrays.ends[lo:hi]
        starts[lo:hi] = position[s]
        ends[lo:hi] = np.where(e > s, position[np.maximum(e - 1, 0)] + 1, position[s])
    return TokenArrays(arrays.ids, starts, ends, arrays.n_tokens)


def _token_arrays(encodings: Sequence[Any]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``(ids, starts, ends)`` arrays of each encoding from the tokenizer's offsets. One essay at a time: the offset
    tuples die young, so the garbage collector never walks millions of them (holding all of them at once makes this
    step several times slower)."""
    out = []
    for e in encodings:
        n = len(e)
        offsets = np.fromiter(chain.from_iterable(e.offsets), np.int32, count=2 * n)
        out.append((np.fromiter(e.ids, np.int32, count=n), offsets[0::2], offsets[1::2]))
    return out


class TokenCache:
    """Tokens of essays by one tokenizer (:class:`TokenArrays`, no special tokens), encoded ahead of use in a
    background thread and kept in memory.

    The Rust tokenizer releases the GIL while it encodes, so :meth:`prefetch` lets tokenising overlap other work:
    validating the data and building the word table (``wordtable.load_word_table(..., token_cache=)``), or cutting the
    windows of the essays encoded just before. :meth:`arrays` waits for the texts it needs, and encodes at once any
    text never prefetched. One cache serves every call of ``windows.tokenize_windows`` with this tokenizer (e.g. the
    folds of a run), so each essay is tokenised once. Use it as a context manager, or call :meth:`close`, to drop
    the work still queued.
    """

    def __init__(self, tokenizer: Any, chunk_size: int = 1024) -> None:
        self.encoder = Encoder(tokenizer)
        self.signature = self.encoder.backend.to_str()
        self.chunk_size = int(chunk_size)
        self._tokenizer = tokenizer
        self._inline: Encoder | None = None  # a second backend, so that the main thread never shares the worker's
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="feedback_ner-tokenize")
        self._lock = threading.Lock()
        self._pending: dict[str, tuple[Future, int]] = {}
        self._done: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def __enter__(self) -> TokenCache:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Cancel the encoding still queued (what is done stays usable) and stop the worker thread."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            self._pending = {t: job for t, job in self._pending.items() if job[0].done() and not job[0].cancelled()}

    def __len__(self) -> int:
        """Texts encoded and collected so far."""
        return len(self._done)

    def __contains__(self, text: object) -> bool:
        """Whether ``text`` is encoded or queued."""
        with self._lock:
            return text in self._done or text in self._pending

    def prefetch(self, texts: Iterable[str]) -> None:
        """Queue ``texts`` (those not already done or queued) for encoding in the background, in order."""
        with self._lock:
            seen = set(self._done) | set(self._pending)
            todo = [t for t in dict.fromkeys(texts) if t not in seen]
            for i in range(0, len(todo), self.chunk_size):
                chunk = todo[i : i + self.chunk_size]
                try:
                    future = self._pool.submit(_encode_split, self.encoder, chunk)
                except RuntimeError:  # closed: what is not queued gets encoded when asked for
                    return
                self._pending.update((t, (future, j)) for j, t in enumerate(chunk))

    def arrays(self, texts: Sequence[str]) -> TokenArrays:
        """Tokens of ``texts``, end to end."""
        per_text = []
        missing = []
        for text in texts:
            hit = self._done.get(text)
            if hit is None:
                with self._lock:
                    job = self._pending.pop(text, None)
                if job is not None and not job[0].cancelled():
                    hit = self._done[text] = job[0].result()[job[1]]
                else:
                    missing.append(text)
            per_text.append(hit)
        if missing:
            if self._inline is None:
                self._inline = Encoder(self._tokenizer)
            encoded = dict(zip(missing, _encode_split(self._inline, missing)))
            self._done.update(encoded)
            per_text = [encoded[t] if hit is None else hit for t, hit in zip(texts, per_text)]
        return TokenArrays.concat(per_text)


def _encode_split(encoder: Encoder, texts: list[str]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    return encoder.encode(texts).split()
