"""feedback_ner: fine-tune long-context transformers on the Feedback Prize (PERSUADE) task.

Word probabilities per essay are the meeting point of training, prediction, tuning and ensembles.
In a notebook: ``from feedback_ner.predict import predict``.
"""

from feedback_ner.labels import CLASSES, ID2LABEL, LABEL2ID, LABELS, NUM_LABELS

__version__ = "0.1.0"

__all__ = ["CLASSES", "ID2LABEL", "LABEL2ID", "LABELS", "NUM_LABELS", "SpanPredictor", "__version__"]


def __getattr__(name: str):
    """``feedback_ner.SpanPredictor`` without importing torch and transformers for every ``import feedback_ner``."""
    if name == "SpanPredictor":
        from feedback_ner.pipeline import SpanPredictor

        return SpanPredictor
    raise AttributeError(f"module 'feedback_ner' has no attribute {name!r}")
