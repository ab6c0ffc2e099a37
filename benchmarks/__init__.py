"""Speed benchmarks, run by ``make bench`` / ``python -m benchmarks [names...] [--quick]``.

A benchmark is a module ``benchmarks/bench_<name>.py`` (found automatically; run one with
``python -m benchmarks <name>``) holding::

    def run(args: argparse.Namespace) -> None:
        '''First docstring line: what is timed.'''
        ...
        print(f"<name>_<what>_s: {seconds:.4f}")   # one `name: value` line per figure

``args`` carries ``quick`` (bool: smaller sizes, for a smoke run) and ``workdir`` (a fresh empty ``Path`` for this
benchmark's files, removed afterwards). Read them with ``getattr(args, "quick", False)`` so a module also runs
standalone. Print figures only as ``name: value`` lines (names unique across benchmarks, lower case, seconds end
in ``_s``), so that runs can be compared line by line; raise to report a failure (e.g. two implementations
disagree). The runner prints a header before each benchmark, its wall time after it, and the total at the end.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path


def sample_corpus(out_dir: Path, n: int, seed: int = 0, n_test: int = 5) -> Path:
    """A synthetic corpus in the Kaggle layout under ``out_dir`` (written once, reused after)."""
    from feedback_ner.synthetic.corpus import write_corpus

    out_dir = Path(out_dir)
    if not (out_dir / "train.csv").exists():
        write_corpus(out_dir, n=n, seed=seed, n_test=n_test)
    return out_dir


def median_time(fn: Callable[[], object], repeat: int, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` over ``repeat`` calls, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
