"""Errors a user can cause and fix: reported by the command-line tools in a line or two, without a traceback.

``UserError`` is a mistake in the command line or config; ``DatasetLayoutError`` a dataset file or
folder that is missing or misplaced; ``UnreadableFileError`` a dataset file that exists but cannot
be decoded; ``DataFormatError`` a file whose content breaks its format (the base of
``CocoFormatError``, ``VOCFormatError``, ``PanopticFormatError``, ...). ``pixelwise.cli`` reports
every ``USER_ERRORS`` instance in its own words, so a new dataset's format error only subclasses
``DataFormatError``: no registration anywhere else.
"""

from __future__ import annotations

__all__ = [
    "USER_ERRORS",
    "DataFormatError",
    "DatasetLayoutError",
    "UnreadableFileError",
    "UserError",
]


class UserError(Exception):
    """A mistake in the command line or config: reported in one line, no traceback."""


class UnreadableFileError(OSError):
    """A file that exists but cannot be decoded (corrupt, truncated, not the expected format)."""


class DatasetLayoutError(FileNotFoundError):
    """A dataset root, folder or file is missing or misplaced; the message shows the expected tree."""


class DataFormatError(ValueError):
    """A dataset file's content is not what its format says; the message names file, entry and value."""


# What the command-line tools report in one or two lines, without a traceback.
USER_ERRORS: tuple[type[Exception], ...] = (
    UserError,
    DatasetLayoutError,
    UnreadableFileError,
    DataFormatError,
)
