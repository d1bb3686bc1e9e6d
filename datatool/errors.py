"""Exceptions that mean "cannot continue".

Data problems are *findings* (see :mod:`datatool.findings`) and never raise.
A :class:`DatatoolError` is a problem the user can fix (a missing folder, a bad
plan file, an unreadable checkpoint); the command line shows its message as one
line and exits non-zero, without a traceback.
"""

from __future__ import annotations


class DatatoolError(Exception):
    """A problem the user can fix; its message names the file and what is wrong.

    ``exit_code`` is what the command line exits with (1 by default).
    """

    exit_code: int = 1


class UsageError(DatatoolError):
    """The command was called wrongly (missing root, not a directory, bad option)."""

    exit_code = 2


class ImageReadError(DatatoolError):
    """An image file cannot be decoded (missing, zero bytes, truncated, not an image).

    ``code`` is the finding code a check reports it under: ``"unreadable"`` by
    default, ``"too-large"`` (over the pixel budget), ``"not-regular-file"``
    (a FIFO, a device), ``"bad-values"`` (NaN, negative or unscaled values) or
    ``"ambiguous-alpha"``.
    """

    def __init__(self, path: object, reason: str, code: str = "unreadable") -> None:
        self.path = str(path)
        self.reason = reason
        self.code = code
        super().__init__(f"{path}: {reason}")
