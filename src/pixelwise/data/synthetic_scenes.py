"""SyntheticScenes: procedurally rendered street scenes with class, instance and boundary labels.

Each item is rendered on the fly from ``np.random.SeedSequence([seed, split_id, index])``, so an
item is the same whatever the worker count or access order, and the splits are disjoint streams.
The renderer (camera model, objects, textures) lives in :mod:`pixelwise.data.scene_render`.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from pixelwise.data.info import DatasetInfo
from pixelwise.data.scene_render import (
    SCENE_CLASSES,
    SCENE_PALETTE,
    THING_CLASSES,
    render_scene,
    segment_boundaries,
)

__all__ = [
    "SCENE_CLASSES",
    "SCENE_PALETTE",
    "THING_CLASSES",
    "SPLIT_IDS",
    "SyntheticScenes",
    "segment_boundaries",
]

SPLIT_IDS: dict[str, int] = {"train": 0, "val": 1, "test": 2}
MIN_SIDE = 32  # below this the far scene collapses into a few pixels
MAX_SIDE = 4096


def _check_size(size: Any) -> tuple[int, int]:
    ok = isinstance(size, Sequence) and not isinstance(size, str) and len(size) == 2
    ok = ok and all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in size)
    ok = ok and all(MIN_SIDE <= s <= MAX_SIDE for s in size)
    if not ok:
        raise ValueError(
            f"SyntheticScenes: size={size!r} is invalid; expected (height, width), two ints "
            f"in [{MIN_SIDE}, {MAX_SIDE}], e.g. (96, 128)"
        )
    return int(size[0]), int(size[1])


class SyntheticScenes(Dataset):
    """Street scenes for segmentation: image [3,H,W] float in [0,1], mask/instances long [H,W],
    boundaries bool [H,W].

    Classes are :data:`SCENE_CLASSES` ("unknown" = street clutter, a real class); instances are
    numbered 1..n per image on car, truck and pedestrian pixels (0 elsewhere); boundaries mark
    pixels whose (class, instance) differs from one of their 4-neighbours.
    """

    num_classes: int = len(SCENE_CLASSES)
    class_names: tuple[str, ...] = SCENE_CLASSES
    palette: np.ndarray = SCENE_PALETTE
    ignore_index: int = 255
    # What DataModule.info reads (the config's data.* keys win where they are set).
    info = DatasetInfo(
        num_classes=len(SCENE_CLASSES), class_names=SCENE_CLASSES, palette=SCENE_PALETTE
    )

    def __init__(
        self,
        size: Sequence[int] = (96, 128),
        length: int = 2000,
        seed: int = 0,
        split: str = "train",
        transform: Callable[..., dict[str, Any]] | None = None,
    ) -> None:
        self.size = _check_size(size)
        if not isinstance(length, (int, np.integer)) or isinstance(length, bool) or length < 0:
            raise ValueError(f"SyntheticScenes: length={length!r} is invalid; expected an int >= 0")
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"SyntheticScenes: seed={seed!r} is invalid; expected an int >= 0")
        if split not in SPLIT_IDS:
            raise ValueError(
                f"SyntheticScenes: split={split!r} is invalid; expected one of {sorted(SPLIT_IDS)}"
            )
        if transform is not None and not callable(transform):
            raise TypeError(
                f"SyntheticScenes: transform={transform!r} is not callable; expected an "
                "albumentations transform (e.g. A.Compose) or None"
            )
        self.length = int(length)
        self.seed = int(seed)
        self.split = split
        self.transform = transform

    def __len__(self) -> int:
        """Number of scenes."""
        return self.length

    def _index(self, index: Any) -> int:
        i = operator.index(index)
        if i < 0:
            i += self.length
        if not 0 <= i < self.length:
            raise IndexError(
                f"SyntheticScenes: index {index} is out of range for a dataset of length {self.length}"
            )
        return i

    def render(self, index: int) -> dict[str, np.ndarray]:
        """Scene `index` as numpy: image uint8 [H,W,3] RGB, mask uint8 [H,W], instances int32 [H,W],
        boundaries bool [H,W]; no transform applied."""
        i = self._index(index)
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, SPLIT_IDS[self.split], i]))
        return render_scene(rng, *self.size)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        """Scene `index`: image float32 [3,H,W] in [0,1], mask long [H,W], instances long [H,W],
        boundaries bool [H,W] (the transform, if any, applied jointly to all four)."""
        # Rendering is single-threaded by design; cv2's own pool would fight DataLoader workers.
        cv2.setNumThreads(0)
        item = self.render(index)
        image, mask, inst, bnd = item["image"], item["mask"], item["instances"], item["boundaries"]
        if self.transform is not None:
            out = self.transform(image=image, masks=[mask, inst, bnd.astype(np.uint8)])
            image = out["image"]
            mask, inst, bnd = out["masks"]
        # Conversions in numpy, wrapped zero-copy: torch ops on small tensors in the main process
        # would go through its intra-op thread pool, which costs milliseconds on a busy machine.
        return {
            "image": _image_tensor(image),
            "mask": _label_tensor(mask, np.int64),
            "instances": _label_tensor(inst, np.int64),
            "boundaries": _label_tensor(bnd, np.bool_),
        }


def _label_tensor(label: np.ndarray | torch.Tensor, dtype: type) -> torch.Tensor:
    """[H,W] label map as a tensor of dtype (int64 or bool)."""
    if isinstance(label, torch.Tensor):
        label = label.numpy()
    return torch.from_numpy(np.ascontiguousarray(label, dtype=dtype))


def _image_tensor(image: np.ndarray | torch.Tensor) -> torch.Tensor:
    """float32 [3,H,W] from uint8 (scaled by 1/255) or float [H,W,3]; a tensor is taken as [C,H,W]."""
    if isinstance(image, torch.Tensor):  # e.g. after ToTensorV2: already channels-first
        image = image.numpy()
        chw = image
    else:
        image = np.asarray(image)
        chw = (image[..., None] if image.ndim == 2 else image).transpose(2, 0, 1)
    out = np.ascontiguousarray(chw, dtype=np.float32)
    if image.dtype == np.uint8:
        out /= np.float32(255)
    return torch.from_numpy(out)


if __name__ == "__main__":  # python -m pixelwise.data.synthetic_scenes export-coco DIR ...
    from pixelwise.data.coco_export import main

    main()
