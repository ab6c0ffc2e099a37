"""The self-describing checkpoint: model + tokenizer (``save_pretrained``) + ``feedback_ner.json``.

``feedback_ner.json`` holds what prediction needs to reproduce training-time evaluation exactly: the label map,
the window length and stride, the sub-token rule, newline handling and the post-processing config.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from feedback_ner.labels import LABELS

INFERENCE_FILE = "feedback_ner.json"


@dataclass
class InferenceConfig:
    """How a checkpoint turns essays into windows and word probabilities into spans."""

    max_length: int = 1024
    stride: int = 128
    subtoken_rule: str = "first"
    keep_newlines: bool = False
    label_all_subtokens: bool = False
    labels: list[str] = field(default_factory=lambda: list(LABELS))
    postprocess: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def save(self, folder: str | os.PathLike) -> Path:
        """Write ``feedback_ner.json`` into ``folder``."""
        path = Path(folder) / INFERENCE_FILE
        path.write_text(json.dumps(asdict(self), indent=2))
        return path

    @classmethod
    def load(cls, folder: str | os.PathLike) -> InferenceConfig:
        """Read ``feedback_ner.json`` from a checkpoint folder, with a clear error if it is missing or broken."""
        path = Path(folder) / INFERENCE_FILE
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: not a feedback_ner checkpoint (no {INFERENCE_FILE}); point to a fold's model folder, "
                "e.g. runs/<name>/fold_0/model."
            )
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: corrupt JSON ({e.msg} at line {e.lineno}); re-copy the checkpoint.") from e
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"{path}: unknown fields {sorted(unknown)}; was it written by a newer feedback_ner?")
        config = cls(**data)
        if list(config.labels) != list(LABELS):
            raise ValueError(f"{path}: label map {config.labels} differs from this package's {list(LABELS)}.")
        return config
