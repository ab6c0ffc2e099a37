"""Spans from essay texts in two lines: the ``essay-discourse`` pipeline and :class:`SpanPredictor`.

``import feedback_ner.pipeline`` registers ``essay-discourse`` with transformers' pipeline registry, so that
``pipeline("essay-discourse", model="runs/x/fold_0/model")("essay text")`` returns the essay's spans;
``SpanPredictor(dirs)`` does the same with several checkpoints averaged at the word level (the folds of a run,
other runs). Both accept one text (-> a list of spans) or a list of texts (-> a list of lists) and ``batch_size``.

A span is ``{"class", "words" (word indices of text.split()), "start", "end" (character offsets into the text as
given), "text", "score"}``. The path is :func:`predict.predict`'s: the checkpoint's windows
(:func:`predict.predict_word_probs`), weighted word-level average, then the post-processing ``predict`` chooses
(:func:`artifacts.choose_postprocess`) through :func:`postprocess.filter_spans`, so the spans are those ``predict``
writes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from feedback_ner.artifacts import InferenceConfig, choose_postprocess, plan_prediction, run_dir_of
from feedback_ner.errors import InvalidInputError
from feedback_ner.inference import (
    Checkpoint,
    check_batch_size,
    load_checkpoint,
    predict_word_probs,
    read_texts,
    resolve_device,
)
from feedback_ner.postprocess import PostprocessConfig, candidate_spans, filter_spans
from feedback_ner.wordtable import test_word_table

logger = logging.getLogger("feedback_ner.pipeline")

TASK = "essay-discourse"


class SpanPredictor:
    """Loaded checkpoints (kept in memory) that turn essay texts into spans; see the module docstring.

    ``models``: checkpoint folders, glob patterns or run folders; ``weights`` one per checkpoint (default equal);
    ``postprocess``: a :class:`PostprocessConfig`, a dict or a JSON path, else what ``predict`` would use (the run's
    tuned ``postprocess.json``, else the first checkpoint's: :func:`artifacts.choose_postprocess`; one log line says
    which). Mistakes are one :class:`FeedbackError` each, as in ``predict``.
    """

    def __init__(
        self,
        models: Sequence[str | os.PathLike] | str | os.PathLike,
        weights: Sequence[float] | None = None,
        postprocess: PostprocessConfig | Mapping | str | os.PathLike | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        plan = plan_prediction(models, weights, postprocess)  # the checks and choices of predict
        dev = resolve_device(device)
        logger.info("%s", plan.decoder.describe())
        self.checkpoints = [load_checkpoint(f, dev) for f in plan.folders]
        self.weights = plan.weights
        self.postprocess = plan.postprocess.config

    @classmethod
    def from_checkpoint(cls, ckpt: Checkpoint, postprocess: Any = None) -> SpanPredictor:
        """A predictor over one already loaded checkpoint (what the pipeline holds), decoding as ``predict`` would."""
        self = cls.__new__(cls)
        self.checkpoints = [ckpt]
        self.weights = np.ones(1)
        chosen = choose_postprocess(postprocess, None, run_dir_of(ckpt.folder), ckpt.folder)
        logger.info("post-processing: %s (threshold decoder)", chosen.source)
        self.postprocess = chosen.config
        return self

    def word_probs(self, texts: Mapping[str, str], batch_size: int = 8) -> tuple[Any, dict[str, np.ndarray]]:
        """The word table of ``texts`` (``{id: text}``) and their weighted word probabilities."""
        check_batch_size(batch_size)
        table = test_word_table(read_texts(dict(texts)))
        ids = table["id"].tolist()
        total: dict[str, np.ndarray] = {}
        for ckpt, weight in zip(self.checkpoints, self.weights, strict=True):
            if weight == 0:
                continue
            probs = predict_word_probs(ckpt, table, batch_size, desc=f"predict {ckpt.folder.name}")
            for k in ids:
                total[k] = total[k] + np.float32(weight) * probs[k] if k in total else np.float32(weight) * probs[k]
        return table, total

    def __call__(
        self, texts: str | Sequence[str] | Mapping[str, str], batch_size: int = 8
    ) -> list[dict[str, Any]] | list[list[dict]] | dict[str, list[dict]]:
        """Spans of one text (a list of dicts), of each text of a list (a list of lists) or of each essay of a
        dict ``{id: text}`` (a dict of lists, same keys)."""
        if isinstance(texts, Mapping):
            keys = list(texts)
            return dict(zip(keys, self([texts[k] for k in keys], batch_size), strict=True))
        single = isinstance(texts, str)
        if not single and not isinstance(texts, Sequence):
            raise InvalidInputError(f"texts: a {type(texts).__name__}; pass a str, a list of str or a dict "
                                    "{id: text}")
        items = [texts] if single else list(texts)
        for i, t in enumerate(items):
            if not isinstance(t, str):
                raise InvalidInputError(f"text {i} is a {type(t).__name__}; pass a str, a list of str or a dict "
                                        "{id: text}")
        essays = {str(i): t for i, t in enumerate(items)}
        if not essays:
            return []
        table, probs = self.word_probs(essays, batch_size)
        spans = filter_spans(candidate_spans(probs), self.postprocess, with_predictionstring=False)
        out: list[list[dict[str, Any]]] = [[] for _ in items]
        by_id = {k: (text, ws, we) for k, text, ws, we in zip(table["id"], table["text"], table["word_start"],
                                                                table["word_end"], strict=True)}
        for essay_id, cls, start, end, score in zip(spans["id"], spans["class"], spans["start"], spans["end"],
                                                    spans["score"], strict=True):
            text, ws, we = by_id[essay_id]
            lo, hi = int(ws[start]), int(we[end - 1])
            out[int(essay_id)].append({
                "class": cls, "words": list(range(int(start), int(end))), "start": lo, "end": hi,
                "text": text[lo:hi], "score": float(score),
            })
        return out[0] if single else out


def _pipeline_class() -> type:
    from transformers import Pipeline

    class EssayDiscoursePipeline(Pipeline):
        """``pipeline("essay-discourse", model=<fold model folder>)``: essay text(s) -> spans."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            folder = Path(self.model.config.name_or_path)
            ckpt = Checkpoint(folder, InferenceConfig.load(folder), self.tokenizer, self.model.eval())
            self.predictor = SpanPredictor.from_checkpoint(ckpt)

        def __call__(self, inputs: str | Sequence[str], batch_size: int | None = None, **kwargs: Any):
            return self.predictor(inputs, batch_size=batch_size or self._batch_size or 8)

        # transformers' abstract steps, for callers that drive a pipeline step by step
        def _sanitize_parameters(self, batch_size: int | None = None, **kwargs: Any):
            return {}, {"batch_size": batch_size or 8}, {}

        def preprocess(self, inputs: str, **kwargs: Any) -> dict[str, Any]:
            return {"text": inputs}

        def _forward(self, model_inputs: dict[str, Any], batch_size: int = 8) -> dict[str, Any]:
            return {"spans": self.predictor(model_inputs["text"], batch_size=batch_size)}

        def postprocess(self, model_outputs: dict[str, Any], **kwargs: Any) -> list[dict[str, Any]]:
            return model_outputs["spans"]

    return EssayDiscoursePipeline


def register() -> type:
    """Register ``essay-discourse`` with transformers' pipeline registry (idempotent); returns the class."""
    from transformers import AutoModelForTokenClassification
    from transformers.pipelines import PIPELINE_REGISTRY

    import feedback_ner.modeling  # noqa: F401  (our heads must be known to the Auto classes before loading)

    if TASK in PIPELINE_REGISTRY.get_supported_tasks():
        return PIPELINE_REGISTRY.check_task(TASK)[1]["impl"]
    cls = _pipeline_class()
    PIPELINE_REGISTRY.register_pipeline(TASK, pipeline_class=cls, pt_model=AutoModelForTokenClassification,
                                        type="text")
    return cls


EssayDiscoursePipeline = register()
