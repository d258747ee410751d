"""The command-line arguments every synthetic-scene export takes (COCO detection, Cityscapes panoptic)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

__all__ = ["add_scene_export_arguments"]


def add_scene_export_arguments(
    parser: argparse.ArgumentParser, count: int, size: Sequence[int]
) -> None:
    """Add ``directory [--split val] [--count N] [--size H W] [--seed 0]`` with these defaults."""
    parser.add_argument("directory", type=Path)
    parser.add_argument("--split", default="val", choices=["train", "val", "test"])
    parser.add_argument("--count", type=int, default=count)
    parser.add_argument("--size", type=int, nargs=2, default=list(size), metavar=("H", "W"))
    parser.add_argument("--seed", type=int, default=0)
