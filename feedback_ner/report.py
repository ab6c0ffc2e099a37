"""Tables and charts a person would rather look at than read: CV tables, before/after tuning, sweep results."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from feedback_ner.files import PNG_SOURCE, atomic_write


def format_table(df: pd.DataFrame, floatfmt: str = ".4f", index_name: str | None = None) -> str:
    """A plain-text, aligned table of ``df`` (index included), floats with ``floatfmt``."""
    cells = df.copy()
    for col in cells.columns:
        if pd.api.types.is_float_dtype(cells[col]):
            cells[col] = cells[col].map(lambda v: "" if pd.isna(v) else format(v, floatfmt))
        else:
            cells[col] = cells[col].astype(str)
    header = [index_name if index_name is not None else (df.index.name or "")] + [str(c) for c in cells.columns]
    rows = [[str(i)] + list(map(str, r)) for i, r in zip(cells.index, cells.itertuples(index=False))]
    widths = [max(len(x) for x in col) for col in zip(header, *rows)]

    def line(values: list[str]) -> str:
        first = values[0].ljust(widths[0])
        return "  ".join([first] + [v.rjust(w) for v, w in zip(values[1:], widths[1:])])

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), sep] + [line(r) for r in rows])


def bar_chart(df: pd.DataFrame, path: str | os.PathLike, title: str, ylabel: str = "F1") -> Path:
    """Grouped bar chart: one group per row of ``df``, one bar per column; saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(df.index) + 2), 4.2))
    df.plot.bar(ax=ax, rot=30, width=0.8)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncol=min(len(df.columns), 6))
    return save_figure(fig, path)


def save_figure(fig, path: str | os.PathLike, dpi: int = 110, maker: str = "chart") -> Path:  # noqa: ANN001
    """Lay out ``fig`` (a matplotlib Figure), write it as a PNG at ``path`` (folders created), close it; the path
    written. The PNG's ``Source`` text says ``feedback_ner <maker>``: a command whose ``--png`` is a file of another
    maker (a run's ``cv.png``) refuses to replace it (:func:`files.check_output`)."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    tag = {"metadata": {"Source": f"{PNG_SOURCE} {maker}"}} if str(path).lower().endswith(".png") else {}
    try:  # an interrupted write keeps the old chart
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, **tag))
    finally:
        plt.close(fig)
    return Path(path)
