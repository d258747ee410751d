"""One LightningDataModule for every task: datasets come in as factories from the config."""

from __future__ import annotations

import bisect
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, Dataset, Subset

from pixelwise.data.augment_seeds import (
    augmentation_seed,
    seed_augmentations,
    seed_worker,
    split_key,
)
from pixelwise.data.collate import DictCollate
from pixelwise.data.info import DatasetInfo, info_of
from pixelwise.data.worker_start import resolve_start_method, worker_context

DatasetFactory = Callable[[], Dataset]

# Top-level keys of the data configs that only feed interpolations of the dataset configs
# (``data.root=DIR`` is what users type); accepted and not kept. Any other key that is neither a
# DataModule argument nor a DatasetInfo field is an error.
CONFIG_VARIABLES = (
    "root",
    "resize",
    "small",
    "skip_missing_labels",
    "label_mode",
    "label_threshold",
    "min_pixels",
    "with_masks",
    "label_heatmaps",
    # Recipe variables that transforms interpolate (experiment/base/unet_gpu.yaml).
    "crop_size",
    "color_jitter",
)
SPLITS = ("train", "val", "test", "predict", "detector_test")
_ARGUMENTS = (
    *SPLITS,
    "batch_size",
    "eval_batch_size",
    "num_workers",
    "pin_memory",
    "persistent_workers",
    "multiprocessing_context",
    "list_keys",
    "info",
)


class TaggedSplits(Dataset):
    """The items of several splits one after the other, each dict item with ``"split"``: its split's name."""

    def __init__(self, parts: Sequence[tuple[str, Dataset]]) -> None:
        self.parts = list(parts)
        self.ends = list(np.cumsum([len(dataset) for _, dataset in self.parts]))

    def __len__(self) -> int:
        return int(self.ends[-1]) if self.ends else 0

    def __getitem__(self, index: int) -> dict[str, Any]:
        part = bisect.bisect_right(self.ends, index)
        name, dataset = self.parts[part]
        start = int(self.ends[part - 1]) if part else 0
        return {**dataset[index - start], "split": name}


class DataModule(L.LightningDataModule):
    """Train/val/test/predict loaders over datasets built lazily by `setup`.

    Each split is a zero-argument factory (Hydra `_partial_: true`), so `setup("fit")` never
    touches the test set. Validation, test and predict loaders use a sampler that neither
    pads nor drops under DDP, so metrics reduced by sum equal the single-process value.
    ``detector_test``: a second test split for an evaluation protocol that scores the detector
    at another resolution (HPatches at 240x320); the test loader then gives the ``test`` pairs,
    then the ``detector_test`` pairs, each item tagged ``"split": "test" | "detector_test"``
    (needs ``eval_batch_size=1``: the two come in different sizes). What the data declares about
    itself is :attr:`info` (a :class:`~pixelwise.data.info.DatasetInfo`).
    """

    def __init__(
        self,
        train: DatasetFactory | None = None,
        val: DatasetFactory | None = None,
        test: DatasetFactory | None = None,
        predict: DatasetFactory | None = None,
        detector_test: DatasetFactory | None = None,
        batch_size: int = 16,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = True,
        multiprocessing_context: str | None = None,
        list_keys: Sequence[str] = (),
        info: DatasetInfo | Mapping[str, Any] | None = None,
        **facts: Any,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"data.batch_size={batch_size}: expected a positive integer")
        if num_workers < 0:
            raise ValueError(f"data.num_workers={num_workers}: expected >= 0")
        if detector_test is not None and (eval_batch_size or batch_size) != 1:
            raise ValueError(
                f"data.detector_test is set, so data.eval_batch_size={eval_batch_size or batch_size} "
                "must be 1: its pairs follow the test pairs in the test loader, in another size"
            )
        for key in CONFIG_VARIABLES:
            facts.pop(key, None)
        unknown = sorted(set(facts) - set(DatasetInfo.config_keys()))
        if unknown:
            raise ValueError(
                f"data.{unknown[0]}: unknown key; expected a DataModule argument "
                f"({', '.join(_ARGUMENTS)}), a dataset fact (DatasetInfo: "
                f"{', '.join(DatasetInfo.config_keys())}) or a config variable "
                f"({', '.join(CONFIG_VARIABLES)})"
            )
        declared = DatasetInfo.from_config(facts)
        if info is not None:
            given = (
                info
                if isinstance(info, DatasetInfo)
                else DatasetInfo.from_config(info, "data.info")
            )
            declared = declared.merged(given)
        self._declared = declared
        self.factories = {
            "train": train,
            "val": val,
            "test": test,
            "predict": predict,
            "detector_test": detector_test,
        }
        self.datasets: dict[str, Dataset] = {}
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.persistent_workers = persistent_workers and num_workers > 0
        # How workers start (pixelwise.data.worker_start): null is forkserver on Python < 3.12,
        # where a fork of the multi-threaded training process can hang a worker for ever.
        start = resolve_start_method(multiprocessing_context)
        self.multiprocessing_context = start if num_workers > 0 else None
        self.collate = DictCollate(list_keys)

    # -- the data contract ---------------------------------------------------------------------

    @property
    def info(self) -> DatasetInfo:
        """What the data declares (the one path for tasks and callbacks): the config's
        ``data.<field>`` keys, then the built datasets' own ``info`` for the fields left unset."""
        info = self._declared
        for split in SPLITS:
            if split in self.datasets:
                info = info.merged(info_of(self.datasets[split]))
        return info

    _STAGE_SPLITS = {
        "fit": ("train", "val"),
        "validate": ("val",),
        "test": ("test",),
        "predict": ("predict",),
    }

    def setup(self, stage: str | None = None) -> None:
        """Build the datasets this stage needs (once)."""
        splits = (
            self._STAGE_SPLITS.get(stage, tuple(self.factories)) if stage else tuple(self.factories)
        )
        for split in splits:
            if split not in self.datasets and self.factories[split] is not None:
                self.datasets[split] = self._build(split)

    def has_split(self, split: str) -> bool:
        """Whether the config gives a dataset for ``split`` (train, val, test, predict, detector_test)."""
        return split in self.datasets or self.factories.get(split) is not None

    def restrict(self, split: str, indices: Sequence[int]) -> None:
        """Keep only the items ``indices`` of a split's dataset (e.g. the images an export still lacks)."""
        dataset = self.dataset(split)
        self.datasets[split] = Subset(dataset, list(indices))

    def dataset(self, split: str) -> Dataset:
        """The dataset of a split; a clear error when the config has none."""
        if split not in self.factories and split not in self.datasets:
            raise ValueError(f"no split {split!r}: expected one of {list(SPLITS)}")
        if split not in self.datasets:
            if self.factories.get(split) is None:
                raise ValueError(f"data.{split} is not set in the data config: no {split} dataset")
            self.datasets[split] = self._build(split)
        return self.datasets[split]

    def _rank(self) -> int:
        trainer = getattr(self, "trainer", None)
        return trainer.global_rank if trainer is not None else 0

    def _build(self, split: str) -> Dataset:
        """A split's dataset, its augmentations seeded from torch's seed, the rank and the split."""
        dataset = self.factories[split]()
        seed = augmentation_seed(torch.initial_seed(), self._rank(), split_key(split))
        seed_augmentations(dataset, seed)
        return dataset

    def _loader(
        self, split: str, shuffle: bool, drop_last: bool, dataset: Dataset | None = None
    ) -> DataLoader:
        dataset = self.dataset(split) if dataset is None else dataset
        sampler = None
        batch_size = self.batch_size if split == "train" else self.eval_batch_size
        trainer = getattr(self, "trainer", None)
        workers = self.num_workers > 0
        if split != "train" and trainer is not None and trainer.world_size > 1:
            # Lightning's default DistributedSampler pads with duplicates, which would bias
            # the metrics; this one gives every sample to exactly one rank.
            sampler = UnrepeatedDistributedSampler(
                dataset, num_replicas=trainer.world_size, rank=trainer.global_rank, shuffle=False
            )
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle if sampler is None else False,
            sampler=sampler,
            drop_last=drop_last and len(dataset) >= batch_size,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
            multiprocessing_context=worker_context(self.multiprocessing_context, dataset),
            worker_init_fn=functools.partial(seed_worker, rank=self._rank()) if workers else None,
            collate_fn=self.collate,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True, drop_last=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False, drop_last=False)

    def test_dataloader(self) -> DataLoader:
        if not self.has_split("detector_test"):
            return self._loader("test", shuffle=False, drop_last=False)
        parts = [(split, self.dataset(split)) for split in ("test", "detector_test")]
        return self._loader("test", shuffle=False, drop_last=False, dataset=TaggedSplits(parts))

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict", shuffle=False, drop_last=False)

    def class_pixel_counts(self, max_items: int = 256, key: str = "mask") -> torch.Tensor:
        """Pixel count per class [num_classes] over up to `max_items` evenly spaced training items."""
        dataset = self.dataset("train")
        k, ignore = self.info.num_classes, self.info.ignore_index
        if k is None:
            raise ValueError("data.num_classes must be set to count class pixels")
        n = len(dataset)
        indices = np.linspace(0, n - 1, num=min(n, max_items)).round().astype(int)
        counts = torch.zeros(k, dtype=torch.long)
        for i in np.unique(indices):
            labels = torch.as_tensor(dataset[int(i)][key]).flatten()
            labels = labels[labels != ignore]
            if labels.numel() and (labels.min() < 0 or labels.max() >= k):
                bad = labels[(labels < 0) | (labels >= k)][0].item()
                raise ValueError(
                    f"training item {i}: label value {bad} outside [0, {k}) "
                    f"and not the ignore index {ignore}"
                )
            counts += torch.bincount(labels, minlength=k)
        return counts

    def describe(self) -> dict[str, Any]:
        """Sizes of the built datasets, for the log."""
        return {split: len(ds) for split, ds in self.datasets.items()}
