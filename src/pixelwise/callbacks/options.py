"""Checks of callbacks' constructor options, so a bad config fails when it is built, not after an epoch."""

from __future__ import annotations

__all__ = ["check_at_least"]


def check_at_least(owner: str, name: str, value: int, minimum: int) -> None:
    """Raise ``ValueError("<owner>.<name>=<value>: expected >= <minimum>")`` when value < minimum."""
    if value < minimum:
        raise ValueError(f"{owner}.{name}={value}: expected >= {minimum}")
