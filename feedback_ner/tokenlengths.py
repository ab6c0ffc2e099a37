"""The max_length advisor (library): token lengths of the essays per tokenizer and what each window length costs.

An essay's length is its token count as :func:`windows.tokenize_windows` sees it (the tokens of the text, no special
tokens; with ``keep_newlines`` plus one marker per paragraph break) plus the tokenizer's special tokens. At a window
length ``L`` with overlap ``stride``, an essay of ``n`` content tokens takes ``1`` window when it fits in the
``L - specials`` content tokens, else ``1 + ceil((n - content) / (content - stride))`` — the windows the package cuts.
*Coverage* is the share of essays that fit in one window; the *padding share* is the share of window positions that
are padding when every window is padded to ``L`` (batches of long windows come close to that).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from feedback_ner.report import save_figure
from feedback_ner.tokens import Encoder
from feedback_ner.windows import _BREAK, newline_token_id, special_tokens, stride_error  # _BREAK: paragraph marks

LENGTHS = (512, 1024, 1536, 2048, 4096)
QUANTILES = (0.90, 0.95, 0.99)


@dataclass
class TokenLengths:
    """One tokenizer's lengths: ``content`` tokens per essay (ids order) and the number of special tokens."""

    name: str
    ids: list[str]
    content: np.ndarray
    n_special: int

    @property
    def total(self) -> np.ndarray:
        """Tokens per essay with the special tokens."""
        return self.content + self.n_special

    def windows(self, max_length: int, stride: int) -> np.ndarray:
        """Windows per essay at ``max_length`` (special tokens included) and ``stride`` (tokenize_windows' rule)."""
        problem = stride_error(int(max_length), stride, self.n_special)
        if problem:
            raise ValueError(problem)
        content_len = int(max_length) - self.n_special
        step = content_len - stride
        n = self.content
        return np.where(n > content_len, 1 + -(-(n - content_len) // step), 1).astype(np.int64)

    def padding_share(self, max_length: int, stride: int) -> float:
        """Share of positions that are padding when every window is padded to ``max_length``."""
        n_win = self.windows(max_length, stride)
        content_len = max_length - self.n_special
        step = content_len - stride
        # every window but the last is full; the last holds what is left after (n_win - 1) steps
        used = (n_win - 1) * content_len + (self.content - (n_win - 1) * step) + n_win * self.n_special
        return float(1 - used.sum() / (n_win.sum() * max_length)) if n_win.sum() else 0.0


def token_lengths(name: str, tokenizer: Any, texts: Mapping[str, str], keep_newlines: bool = False) -> TokenLengths:
    """Token counts of ``texts`` (``{id: text}``) with ``tokenizer``, as the windows would hold them."""
    ids = list(texts)
    arrays = Encoder(tokenizer).encode([texts[k] for k in ids])
    content = np.asarray(arrays.n_tokens, dtype=np.int64)
    if keep_newlines and newline_token_id(tokenizer) is not None:
        content = content + np.array([len(_BREAK.findall(texts[k])) for k in ids], dtype=np.int64)
    prefix, suffix = special_tokens(tokenizer)
    return TokenLengths(name, ids, content, len(prefix) + len(suffix))


def summary(lengths: Sequence[TokenLengths], max_lengths: Sequence[int] = LENGTHS, stride: int = 128) -> pd.DataFrame:
    """One row per (tokenizer, max_length): coverage, windows per essay (mean, max), total windows, padding share.

    A ``stride`` that training would refuse for a length (it must stay below the window's content,
    :func:`windows.stride_error`) is lowered to half the window's content for that length (column ``stride``; the
    command prints a note); any stride training accepts is used as given, so the counts are the windows it cuts."""
    rows = []
    for tl in lengths:
        for length in max_lengths:
            fits = not stride_error(int(length), int(stride), tl.n_special)
            used = int(stride) if fits else (int(length) - tl.n_special) // 2
            n_win = tl.windows(length, used)
            rows.append({
                "tokenizer": tl.name, "max_length": int(length), "stride": used,
                "coverage": float((tl.total <= length).mean()),
                "windows_per_essay": float(n_win.mean()), "max_windows": int(n_win.max()),
                "windows": int(n_win.sum()),
                "padding_share": tl.padding_share(length, used),
            })
    return pd.DataFrame(rows)


def length_quantiles(lengths: Sequence[TokenLengths], quantiles: Sequence[float] = QUANTILES) -> pd.DataFrame:
    """Per tokenizer: mean, median, max tokens per essay (specials included) and the length covering each share of
    essays (the smallest length at least that share fits in)."""
    rows = []
    for tl in lengths:
        total = np.sort(tl.total)
        row: dict[str, Any] = {"tokenizer": tl.name, "essays": len(total), "mean": float(total.mean()),
                               "median": float(np.median(total)), "max": int(total.max())}
        for q in quantiles:
            row[f"covers_{int(round(q * 100))}%"] = int(total[min(len(total) - 1, int(np.ceil(q * len(total))) - 1)])
        rows.append(row)
    return pd.DataFrame(rows).set_index("tokenizer")


def histogram_png(
    lengths: Sequence[TokenLengths], path: str | os.PathLike, max_lengths: Sequence[int] = LENGTHS
) -> Path:
    """Histogram of tokens per essay, one series per tokenizer, with the window lengths as vertical lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.2))
    top = max(int(tl.total.max()) for tl in lengths)
    bins = np.linspace(0, top * 1.02 + 1, 50)
    for tl in lengths:
        ax.hist(tl.total, bins=bins, alpha=0.5, label=f"{tl.name} (median {int(np.median(tl.total))})")
    for length in max_lengths:
        if length <= top * 1.3:
            ax.axvline(length, color="k", ls="--", lw=0.8)
            ax.text(length, ax.get_ylim()[1] * 0.95, f" {length}", fontsize=8, va="top")
    ax.set_xlabel("tokens per essay (special tokens included)")
    ax.set_ylabel("essays")
    ax.set_title("Essay lengths in tokens")
    ax.legend(fontsize=8)
    return save_figure(fig, path, maker="lengths")
