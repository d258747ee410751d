"""Errors a user can cause and fix: reported by the command-line tools in a line or two, without a traceback.

``UserError`` is a mistake in the command line or config; ``UnreadableFileError`` a dataset file
that exists but cannot be decoded. Data-format errors of the datasets (``DatasetLayoutError``,
``CocoFormatError``, ...) are reported the same way (``pixelwise.cli``).
"""

from __future__ import annotations

__all__ = ["UserError", "UnreadableFileError"]


class UserError(Exception):
    """A mistake in the command line or config: reported in one line, no traceback."""


class UnreadableFileError(OSError):
    """A file that exists but cannot be decoded (corrupt, truncated, not the expected format)."""
