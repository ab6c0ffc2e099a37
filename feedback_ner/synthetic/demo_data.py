"""The demo's data: the sample corpus and a tiny model, written once into a folder and reused afterwards."""

from __future__ import annotations

from pathlib import Path

# The embedded default: `make demo` and, on a fresh clone, `make sweep` generate these.
DEMO_ESSAYS = 450
DEMO_SEED = 0


def ensure_corpus(corpus: Path, n: int = DEMO_ESSAYS, seed: int = DEMO_SEED) -> bool:
    """Write the sample corpus into ``corpus`` unless one is there; whether it was written."""
    if (Path(corpus) / "train.csv").is_file():
        return False
    from feedback_ner.synthetic.corpus import write_corpus

    write_corpus(corpus, n=n, seed=seed)
    return True


def ensure_tiny(arch: str, corpus: Path, model_dir: Path, seed: int = DEMO_SEED) -> bool:
    """Build the tiny model of ``arch`` from ``corpus`` into ``model_dir`` unless one is there; whether it was built."""
    if (Path(model_dir) / "config.json").is_file():
        return False
    from feedback_ner.synthetic.models import build_tiny

    build_tiny(arch, corpus, model_dir, seed=seed)
    return True
