"""``python -m benchmarks [names...] [--quick] [--list]``: run the ``benchmarks/bench_*.py`` modules in turn."""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

import benchmarks

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PREFIX = "bench_"
# Run on their own (their own make target), never by `make bench`: bench_quality fine-tunes a pretrained encoder.
STANDALONE = {"quality"}


def available() -> list[str]:
    """Names of the benchmarks (``bench_<name>.py`` modules in this package), sorted."""
    names = (m.name[len(PREFIX) :] for m in pkgutil.iter_modules(benchmarks.__path__) if m.name.startswith(PREFIX))
    return sorted(n for n in names if n not in STANDALONE)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Speed benchmarks; each prints `name: value` lines. Runs all of them unless names are given.",
    )
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all; see --list)")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    names = available()
    if args.list:
        for name in names:
            doc = (importlib.import_module(f"benchmarks.{PREFIX}{name}").__doc__ or "").strip().splitlines()
            print(f"{name:<12} {doc[0] if doc else ''}")
        return 0
    unknown = [n for n in args.names if n not in names]
    if unknown:
        print(f"error: unknown benchmark(s) {', '.join(unknown)}; choose from: {', '.join(names)}", file=sys.stderr)
        return 2
    selected = args.names or names
    failed: list[str] = []
    total_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="feedback_ner_bench_") as tmp:
        for name in selected:
            print(f"== {name} ({'quick' if args.quick else 'full'}) ==", flush=True)
            start = time.perf_counter()
            run_args = argparse.Namespace(quick=args.quick, workdir=Path(tmp) / name)
            run_args.workdir.mkdir()
            try:
                importlib.import_module(f"benchmarks.{PREFIX}{name}").run(run_args)
            except Exception:  # one failing benchmark must not hide the others' figures
                traceback.print_exc()
                failed.append(name)
                print(f"FAILED {name}", flush=True)
            print(f"bench_wall_s_{name}: {time.perf_counter() - start:.1f}", flush=True)
    print(f"== total ({len(selected)} benchmarks, {len(failed)} failed) ==")
    print(f"bench_total_s: {time.perf_counter() - total_start:.1f}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
