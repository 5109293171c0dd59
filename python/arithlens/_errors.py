"""The exceptions arithlens raises, each carrying the Rust library's message.

Every one is an :class:`ArithlensError`, and also the built-in exception Python code expects:
a bad question or value is a ``ValueError``, a missing model a ``FileNotFoundError``, a file
that cannot be read or written an ``OSError``.
"""


class ArithlensError(Exception):
    """Base class of every error arithlens raises."""


class InvalidValueError(ArithlensError, ValueError):
    """A bad question, option or value (e.g. ``"123+4="`` for a 5-digit model)."""


class ModelNotFoundError(ArithlensError, FileNotFoundError):
    """No model file or run folder at the path given."""


class FileError(ArithlensError, OSError):
    """A file that cannot be read or written, or that arithlens will not replace."""
