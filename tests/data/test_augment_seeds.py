"""albumentations pipelines follow the run's seed, differ between DataLoader workers, and repeat;
how the workers start."""

import sys

import albumentations as A
import numpy as np
import pytest
import torch
from torch.utils.data import ConcatDataset, Dataset, Subset

from pixelwise.data.augment_seeds import seed_augmentations
from pixelwise.data.datamodule import DataModule, TaggedSplits


class Flips(Dataset):
    """Item i: whether the pipeline flipped a ramp (its first pixel is then its largest), and a numpy draw."""

    def __init__(self, n=16):
        self.n = n
        self.transform = A.Compose([A.HorizontalFlip(p=0.5)])

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        ramp = np.arange(8, dtype=np.uint8)[None, :, None].repeat(2, axis=0)
        out = self.transform(image=ramp)["image"]
        return {
            "flipped": torch.tensor(bool(out[0, 0, 0] > out[0, -1, 0])),
            "numpy_draw": torch.tensor(np.random.rand()),
        }


def draws(seed, **loader):
    """The flips of the 16 validation items (one per batch, in order) of a DataModule built under ``seed``."""
    torch.manual_seed(seed)
    dm = DataModule(val=Flips, eval_batch_size=1, **loader)
    return [bool(batch["flipped"]) for batch in dm.val_dataloader()]


def test_the_run_seed_decides_the_augmentations():
    # albumentations seeds its own generators from the OS: without the DataModule's seeding, two
    # builds under one seed agree on 16 fair flips with probability 2^-16.
    assert draws(1) == draws(1)
    assert draws(1) != draws(2)


@pytest.mark.parametrize("context", ["fork", "forkserver", None])
def test_workers_draw_their_own_augmentations_and_repeat(context):
    loader = {"num_workers": 2, "multiprocessing_context": context}
    first = draws(3, **loader)
    # With one item per batch the two workers alternate: before, each forked worker inherited
    # the same generator state and the two halves were equal.
    assert first[0::2] != first[1::2]
    assert first == draws(3, **loader)
    assert first != draws(4, **loader)


def test_lightning_worker_seeding_is_kept(monkeypatch):
    """Our worker_init_fn replaces the one Lightning adds under seed_everything(workers=True)."""
    monkeypatch.setenv("PL_SEED_WORKERS", "1")

    def numpy_draws():
        torch.manual_seed(5)
        dm = DataModule(val=Flips, eval_batch_size=1, num_workers=2, multiprocessing_context="fork")
        return [float(batch["numpy_draw"]) for batch in dm.val_dataloader()]

    values = numpy_draws()
    assert values == numpy_draws()
    assert values[0::2] != values[1::2]


def test_pipelines_are_found_through_wrappers():
    inner = Flips()
    wrapped = TaggedSplits([("a", Subset(inner, [0, 1])), ("b", ConcatDataset([Flips(), Flips()]))])
    assert seed_augmentations(wrapped, 0) == 3
    assert seed_augmentations(Flips(), 0) == 1
    assert seed_augmentations(Subset(inner, [0]), 0) == 1


def test_an_unknown_start_method_is_named():
    with pytest.raises(ValueError, match=r"data.multiprocessing_context='thread': expected one of"):
        DataModule(num_workers=2, multiprocessing_context="thread")


def test_workers_are_not_forked_from_the_training_process_before_python_3_12():
    """CPython < 3.12 can hang a child forked from a multi-threaded process (cpython#112275)."""
    loader = DataModule(val=Flips, num_workers=2).val_dataloader()
    start = getattr(loader.multiprocessing_context, "_name", loader.multiprocessing_context)
    assert start == ("forkserver" if sys.version_info < (3, 12) else None)
    explicit = DataModule(val=Flips, num_workers=2, multiprocessing_context="fork")
    assert explicit.val_dataloader().multiprocessing_context._name == "fork"
    assert DataModule(val=Flips, num_workers=0).val_dataloader().multiprocessing_context is None
