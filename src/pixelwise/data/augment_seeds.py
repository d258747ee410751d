"""Seeds for albumentations pipelines: from the run's seed, per split, DDP rank and DataLoader worker.

albumentations 2 draws from generators of its own, seeded from the OS when ``Compose(seed=None)``
(its documented default): ``seed_everything`` does not reach them. So a run's augmentations could
not be repeated, and forked DataLoader workers all inherited one generator state and drew the same
augmentations in the same order. The DataModule re-seeds every pipeline of a dataset it builds
(:func:`seed_augmentations`) and again in each worker (:func:`seed_worker`).
"""

from __future__ import annotations

import os
import zlib
from typing import Any

import numpy as np
from albumentations.core.composition import BaseCompose
from albumentations.core.transforms_interface import BasicTransform
from lightning.fabric.utilities.seed import pl_worker_init_function
from torch.utils.data import Dataset, get_worker_info

__all__ = ["augmentation_seed", "seed_augmentations", "seed_worker", "split_key"]

# Wrappers nest datasets a few levels deep (TaggedSplits -> tuple -> Subset -> dataset) and hold
# a few of them; a longer list or tuple is a dataset's own data (file names, annotations), not read.
_MAX_DEPTH = 6
_MAX_WRAPPED = 64


def augmentation_seed(*keys: int) -> int:
    """A 32-bit seed mixed from non-negative integer ``keys`` (numpy's SeedSequence)."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0])


def split_key(split: str) -> int:
    """A stable integer for a split's name (``hash()`` of a str changes between processes)."""
    return zlib.crc32(split.encode())


def seed_augmentations(dataset: Any, seed: int) -> int:
    """Seed every albumentations pipeline held by ``dataset`` from ``seed``; how many were found.

    Looks through the dataset's attributes, and into datasets it wraps (``Subset.dataset``,
    ``ConcatDataset.datasets``, ``TaggedSplits.parts``); each pipeline found gets its own seed.
    """
    seen: set[int] = set()
    found = 0

    def visit(obj: Any, depth: int) -> None:
        nonlocal found
        if depth > _MAX_DEPTH or id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, (BaseCompose, BasicTransform)):
            obj.set_random_seed(augmentation_seed(seed, found))
            found += 1
        elif isinstance(obj, (list, tuple)) and len(obj) <= _MAX_WRAPPED:
            for item in obj:
                visit(item, depth + 1)
        elif isinstance(obj, Dataset):
            for value in vars(obj).values():
                visit(value, depth + 1)

    visit(dataset, 0)
    return found


def seed_worker(worker_id: int, rank: int) -> None:
    """DataLoader ``worker_init_fn``: Lightning's per-worker seeding when the run seeds workers
    (``seed_everything(workers=True)``, which it would otherwise add itself), then the dataset's
    augmentations from this worker's seed and the rank (ranks share the loader's base seed)."""
    if int(os.environ.get("PL_SEED_WORKERS", 0)):
        pl_worker_init_function(worker_id, rank)
    info = get_worker_info()
    seed_augmentations(info.dataset, augmentation_seed(info.seed, rank))
