"""The folder of wheels the offline Kaggle notebook installs from: ``python -m feedback_ner.wheels --out wheels``.

Kaggle scoring notebooks have no internet, so ``pip install --no-index --find-links <wheels> feedback_ner`` must
find every requirement that the Kaggle image does not already satisfy. The folder holds:

- the ``feedback_ner`` wheel, built from this source tree (copied to a temporary folder, so the tree stays clean);
- the runtime dependency closure of ``feedback_ner`` as installed here, pinned to the installed versions (the
  combination the tests ran with), downloaded from PyPI as binary wheels. This covers what a Kaggle image lacks
  (``iterative-stratification``) or has too old (``transformers`` 5 with its ``tokenizers``, ``huggingface-hub``
  and ``safetensors``; ``accelerate``, ``datasets``, ``optuna``; ``lightgbm`` for ``predict --rescore``, whose
  Kaggle version may be older than the one the rescorer's text models were written with).

Left out on purpose, and why:

- ``torch`` and its CUDA stack (``nvidia-*``, ``triton``): Kaggle ships a CUDA build matched to its GPUs and
  drivers; a wheel from here would replace it (several GB, likely a CPU or mismatched CUDA build). The package
  accepts any ``torch>=2.4,<3``. Nothing is collected behind torch either.
- The scientific base (``numpy``, ``pandas``, ``pyarrow``, ``scipy``, ``scikit-learn``, ``matplotlib``): every
  Kaggle image has them at versions above our floors, and many preinstalled packages are compiled against the
  image's builds; nothing is collected behind them. ``--include-base`` adds them anyway.

pip never replaces an installed requirement that already satisfies the constraints, so the extra wheels cost only
upload size. ``--no-deps`` builds the ``feedback_ner`` wheel alone (offline; used by the tests). Binary wheels
are for this interpreter and platform by default; ``--platform manylinux2014_x86_64`` targets another platform of
the same Python (``--python-version`` must be this interpreter's: the pins are). After the list, the command
prints what the bundled wheels require of the packages left out (e.g. ``pyarrow>=24`` for ``datasets``): the
image must have them.
"""

from __future__ import annotations

import importlib.metadata as metadata
import importlib.util
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from feedback_ner.cli import ArgumentParser, command, setup_logging
from feedback_ner.errors import FeedbackError
from feedback_ner.files import check_output

logger = logging.getLogger("feedback_ner.wheels")

PACKAGE = "feedback_ner"
# torch: Kaggle's own CUDA build must stay. The walk does not enter these, so their own dependencies stay out too.
TORCH_STACK = frozenset({"torch", "triton", "torchvision", "torchaudio"})
TORCH_PREFIXES = ("nvidia-",)
KAGGLE_BASE = frozenset({"numpy", "pandas", "pyarrow", "scipy", "scikit-learn", "matplotlib"})
# Files of the source tree that a wheel build needs.
SOURCE_FILES = ("pyproject.toml", "setup.cfg", "setup.py", "MANIFEST.in", "README.md", "LICENSE")
PYTHON_VERSION = re.compile(r"\d+(\.\d+){0,2}")  # what pip's --python-version takes: 3, 3.11, 3.11.4, 311


def source_root() -> Path:
    """The source tree of the installed package (the folder holding ``pyproject.toml`` next to ``feedback_ner/``)."""
    here = Path(__file__).resolve().parent.parent
    if not (here / "pyproject.toml").is_file():
        raise FileNotFoundError(
            f"{here}: no pyproject.toml next to the feedback_ner package; build the wheels from a source checkout "
            "(pip install -e .)"
        )
    return here


def build_package_wheel(out: Path, root: Path | None = None) -> Path:
    """Builds the ``feedback_ner`` wheel into ``out`` from a temporary copy of the source tree."""
    root = root or source_root()
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob(f"{PACKAGE}-*.whl"):  # one version only, so --find-links cannot pick a stale one
        old.unlink()
    with tempfile.TemporaryDirectory(prefix="feedback_ner-src-") as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for name in SOURCE_FILES:
            if (root / name).is_file():
                shutil.copy2(root / name, src / name)
        shutil.copytree(root / PACKAGE, src / PACKAGE, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        cmd = [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--quiet", "--wheel-dir", str(out)]
        if importlib.util.find_spec("setuptools") is not None:
            cmd.append("--no-build-isolation")  # offline: build with the setuptools installed here
        _run(cmd, "building the feedback_ner wheel")
    wheels = sorted(out.glob(f"{PACKAGE}-*.whl"))
    if len(wheels) != 1:
        raise RuntimeError(f"{out}: expected one {PACKAGE} wheel after the build, found {[w.name for w in wheels]}")
    return wheels[0]


def _skipped(name: str, include_base: bool) -> bool:
    if name in TORCH_STACK or name.startswith(TORCH_PREFIXES):
        return True
    return not include_base and name in KAGGLE_BASE


def dependency_pins(package: str = PACKAGE, include_base: bool = False) -> list[str]:
    """``name==version`` of the installed runtime dependency closure of ``package``, minus the skipped ones."""
    return _closure(package, include_base)[0]


def image_requirements(package: str = PACKAGE, include_base: bool = False) -> dict[str, list[str]]:
    """What the bundled wheels require of the packages left out (torch, and the scientific base unless
    ``include_base``): ``{name: ["pyarrow>=24.0.0 (datasets)", ...]}``. The Kaggle image must satisfy them, or
    the offline install fails; our own floors alone do not say it (a dependency may need more)."""
    return _closure(package, include_base)[1]


def _closure(package: str, include_base: bool) -> tuple[list[str], dict[str, list[str]]]:
    pins: dict[str, str] = {}
    needs: dict[str, list[str]] = {}
    todo = [package]
    seen = {canonicalize_name(package)}
    while todo:
        dist = metadata.distribution(todo.pop())
        for spec in dist.requires or []:
            req = Requirement(spec)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue  # an extra's or another platform's requirement
            name = canonicalize_name(req.name)
            if _skipped(name, include_base):
                if str(req.specifier):
                    needs.setdefault(name, []).append(f"{name}{req.specifier} ({dist.metadata['Name']})")
                continue
            if name in seen:
                continue
            seen.add(name)
            try:
                version = metadata.version(req.name)
            except metadata.PackageNotFoundError:
                raise RuntimeError(
                    f"{req.name} (required by {dist.metadata['Name']}) is not installed here; install the package "
                    "with its dependencies first (make install)"
                ) from None
            pins[name] = version
            todo.append(req.name)
    return [f"{name}=={version}" for name, version in sorted(pins.items())], {k: needs[k] for k in sorted(needs)}


def download_wheels(pins: Iterable[str], out: Path, python_version: str | None = None,
                    platform: str | None = None) -> None:
    """Binary wheels of exactly ``pins`` (no resolution: the pins are the closure) into ``out``, from PyPI."""
    pins = list(pins)
    if not pins:
        return
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet", "--dest", str(out)]
    if python_version:
        cmd += ["--python-version", python_version]
    if platform:
        cmd += ["--platform", platform]
    _run(cmd + pins, f"downloading {len(pins)} dependency wheels")


def _run(cmd: list[str], what: str) -> None:
    logger.info("%s: %s", what, " ".join(cmd))
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise RuntimeError(f"{what} failed (exit {done.returncode}): " + " | ".join(tail))


def build_wheels(out: str | Path, no_deps: bool = False, include_base: bool = False,
                 python_version: str | None = None, platform: str | None = None) -> list[Path]:
    """Writes the wheels folder (see the module docstring); returns the wheels in it."""
    out = Path(out)
    build_package_wheel(out)
    if not no_deps:
        download_wheels(dependency_pins(include_base=include_base), out, python_version, platform)
    return sorted(out.glob("*.whl"))


def make_parser() -> ArgumentParser:
    """Options of ``feedback_ner.wheels``."""
    parser = ArgumentParser(
        prog="feedback_ner.wheels",
        description="Build the folder of wheels for the offline Kaggle notebook: feedback_ner plus the "
        "dependencies a Kaggle image may lack or have too old (never torch).",
    )
    parser.add_argument("--out", default="wheels", help="folder to write the wheels to (default: wheels)")
    parser.add_argument("--no-deps", action="store_true", help="only the feedback_ner wheel (works offline)")
    parser.add_argument("--include-base", action="store_true",
                        help="also bundle numpy, pandas, pyarrow, scipy, scikit-learn, matplotlib")
    parser.add_argument("--python-version", default=None,
                        help="target Python of the binary wheels: this interpreter's (the pins are this environment's)")
    parser.add_argument("--platform", default=None, help="target platform tag, e.g. manylinux2014_x86_64")
    return parser


def check_out_folder(out: str | Path) -> Path:
    """Refuses, before the build, an ``--out`` that cannot be a folder of wheels: a file, under a file, or not
    writable (the parent checks of :func:`files.check_output`)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FeedbackError(f"--out {out}: is a file, not a folder; give a folder for the wheels")
    if out.is_dir():
        if not os.access(out, os.W_OK):
            raise FeedbackError(f"--out {out}: is not writable; choose another folder")
        return out
    check_output(out, "--out")  # a new folder: its nearest existing parent must be a writable folder
    return out


def check_python_version(value: str | None) -> None:
    """``--python-version`` as pip takes it: up to three dot-separated integers (3, 3.11, 3.11.4) or digits (311),
    and this interpreter's minor version: the pins and their markers are this environment's, which another Python
    may not install (a pin may need a newer Python; a dependency only below 3.11 would be missing)."""
    if value is None:
        return
    if not PYTHON_VERSION.fullmatch(value):
        raise FeedbackError(f"--python-version {value}: not a Python version; give e.g. 3.11 or 311")
    parts = value.split(".") if "." in value else [value[:1], value[1:]] if len(value) > 1 else [value]
    here = sys.version_info[:2]
    if int(parts[0]) != here[0] or (len(parts) > 1 and parts[1] and int(parts[1]) != here[1]):
        raise FeedbackError(f"--python-version {value}: the dependency pins are this environment's (Python "
                            f"{here[0]}.{here[1]}); build the folder with that Python instead (its own "
                            "environment: make install, then python -m feedback_ner.wheels)")


@command("wheels")
def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    args = make_parser().parse_args(argv)
    setup_logging()
    check_python_version(args.python_version)
    check_out_folder(args.out)
    try:
        wheels = build_wheels(args.out, no_deps=args.no_deps, include_base=args.include_base,
                              python_version=args.python_version, platform=args.platform)
    except OSError as err:
        if err.errno is None:  # ours: no source tree to build from
            raise FeedbackError(str(err)) from None
        raise FeedbackError(f"--out {args.out}: cannot write the wheels there ({err.strerror}); choose another "
                            "folder") from None
    except RuntimeError as err:  # a failed pip run
        raise FeedbackError(str(err)) from None
    size = sum(w.stat().st_size for w in wheels) / 2**20
    print(f"wrote {len(wheels)} wheels ({size:.1f} MiB) to {args.out}:")
    for w in wheels:
        print(f"  {w.name}")
    if not args.no_deps:
        needs = image_requirements(include_base=args.include_base)
        if needs:
            print("not bundled: the Kaggle image must already have " + "; ".join(
                ", ".join(v) for v in needs.values()) + " (else the offline install fails: --include-base bundles "
                "the scientific base)")
    print(f"upload {args.out} as a Kaggle dataset; the notebook runs "
          f"pip install --no-index --find-links <that folder> {PACKAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
