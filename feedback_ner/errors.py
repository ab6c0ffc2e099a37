"""The one exception type for a user's mistake: every command prints it as one line and exits with code 2.

Library code raises :class:`FeedbackError` (or a subclass such as ``corpus.DataError``) with a message that names
the file, row, field or value and says what to do. Commands turn it into ``feedback-ner <cmd>: error: <message>``
(see ``cli.command``); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class FeedbackError(Exception):
    """An expected mistake in the user's input, settings or files; the message is one line that says what to do."""


class MissingFileError(FeedbackError, FileNotFoundError):
    """A file or folder the user named does not exist (also a ``FileNotFoundError``)."""


class InvalidInputError(FeedbackError, ValueError):
    """A file, setting or value the user gave is unusable (also a ``ValueError``)."""


class DataError(FeedbackError, ValueError):
    """Bad input data; the message is one line naming the file, row and field and what to do."""
