"""``UserError``: a mistake in the command line or config, reported in one line without a traceback."""

from __future__ import annotations

__all__ = ["UserError"]


class UserError(Exception):
    """A mistake in the command line or config: reported in one line, no traceback."""
