"""feedback_ner: fine-tune long-context transformers on the Feedback Prize (PERSUADE) task.

Word probabilities per essay are the meeting point of training, prediction, tuning and ensembles.
In a notebook: ``from feedback_ner.predict import predict``.
"""

from feedback_ner.labels import CLASSES, ID2LABEL, LABEL2ID, LABELS, NUM_LABELS

__version__ = "0.1.0"

__all__ = ["CLASSES", "ID2LABEL", "LABEL2ID", "LABELS", "NUM_LABELS", "__version__"]
