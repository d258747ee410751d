"""Unlabelled images (any folder tree, COCO 2014) as grey float tensors of one size.

Every dataset here yields dict items:

- ``"image"`` float32 [1, H, W] in [0, 1] (photometrically augmented when ``photometric``),
- ``"clean_image"`` the same image without augmentation (only when ``photometric``),
- ``"name"`` the image's path relative to the root without its suffix, ``/``-separated
  (``"sub/dir/img"``): pseudo-labels of this image are ``<labels dir>/<name>.npz``,
- ``"path"`` where the image came from, ``"index"`` the item index,
- ``"ok"`` False for an image that could not be used (unreadable, corrupt, too small with
  ``small="reject"``, no pseudo-label file): its ``"image"`` is zeros and it is skipped by the
  export and by the loss; a warning names the file and the reason,
- with ``labels=DIR``: ``"keypoints"`` float32 [N, 2] (x, y) read from ``DIR/<name>.npz``.

A dataset never raises on one bad file: an export over 80k COCO images must not die on
image 41 327. Missing roots, empty folders and bad arguments are errors at construction.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from pixelwise.data.info import DatasetInfo
from pixelwise.data.photometric import photometric_augment

__all__ = [
    "IMAGE_SUFFIXES",
    "RESIZE_MODES",
    "SMALL_POLICIES",
    "ImageDataset",
    "Images",
    "COCO",
    "UnusableImage",
    "fit_to_size",
    "to_gray_float",
    "list_images",
    "read_pseudo_labels",
]

log = logging.getLogger("pixelwise")

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".pgm")
RESIZE_MODES = ("crop", "stretch")
SMALL_POLICIES = ("upscale", "reject")


class UnusableImage(Exception):
    """One image cannot be used (unreadable, too small under ``small="reject"``, no labels)."""


def to_gray_float(image: np.ndarray) -> np.ndarray:
    """Any image array [H,W], [H,W,1], [H,W,3|4] (uint8/uint16/bool/float in [0,1]) -> float32 [H,W] in [0,1].

    Colour is converted with BT.601 weights (``cv2.COLOR_RGB2GRAY``); alpha is dropped.
    """
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim == 3 and array.shape[2] in (3, 4):
        array = array[..., :3]
        if array.dtype == np.uint16:
            array = (array / 257.0).astype(np.float32)
        elif array.dtype == bool:
            array = array.astype(np.float32)
        array = cv2.cvtColor(np.ascontiguousarray(array), cv2.COLOR_RGB2GRAY)
    if array.ndim != 2:
        raise ValueError(f"expected an image [H,W] or [H,W,C], got shape {list(array.shape)}")
    if array.dtype == np.uint8:
        return array.astype(np.float32) / np.float32(255.0)
    if array.dtype == np.uint16:
        return array.astype(np.float32) / np.float32(65535.0)
    return np.clip(array.astype(np.float32), 0.0, 1.0)


def fit_to_size(
    image: np.ndarray, size: Sequence[int], resize: str = "crop", small: str = "upscale"
) -> np.ndarray:
    """Grey image float32 [h,w] -> [H,W] = ``size``.

    ``resize="crop"``: scale preserving the aspect ratio so the image just covers ``size``, then
    cut the centre (the SuperPoint reference's ``ratio_preserving_resize``); ``"stretch"``:
    resize to ``size`` ignoring the aspect ratio. An image smaller than ``size`` in height or
    width is upscaled (``small="upscale"``) or raises :class:`UnusableImage` (``"reject"``).
    """
    height, width = int(size[0]), int(size[1])
    h, w = image.shape[:2]
    if h < 1 or w < 1:
        raise UnusableImage(f"empty image ({h}x{w})")
    if (h < height or w < width) and small == "reject":
        raise UnusableImage(
            f"image of {h}x{w} is smaller than data size {height}x{width} "
            "(small=reject; small=upscale would enlarge it)"
        )
    if resize == "stretch":
        if (h, w) == (height, width):
            return image
        interp = cv2.INTER_AREA if h >= height and w >= width else cv2.INTER_LINEAR
        return cv2.resize(image, (width, height), interpolation=interp)
    scale = max(height / h, width / w)
    # Rounding could leave one pixel short of the target: never below it.
    nh, nw = max(height, round(h * scale)), max(width, round(w * scale))
    if (nh, nw) != (h, w):
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        image = cv2.resize(image, (nw, nh), interpolation=interp)
    y0, x0 = (nh - height) // 2, (nw - width) // 2
    return np.ascontiguousarray(image[y0 : y0 + height, x0 : x0 + width])


def list_images(root: str | os.PathLike, suffixes: Sequence[str] = IMAGE_SUFFIXES) -> list[str]:
    """Relative ``/``-paths of the image files under ``root`` (recursive, sorted; hidden entries skipped)."""
    root = os.fspath(root)
    wanted = tuple(s.lower() for s in suffixes)
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel = os.path.relpath(dirpath, root)
        for f in filenames:
            if not f.startswith(".") and f.lower().endswith(wanted):
                found.append(f if rel == "." else f"{Path(rel).as_posix()}/{f}")
    return sorted(found)


def read_pseudo_labels(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """A pseudo-label file (see ``PseudoLabelWriter``) -> {"keypoints" float32 [N,2] (x,y), "scores" [N], ...}."""
    with np.load(path) as data:
        out = {k: data[k] for k in data.files}
    kps = out.get("keypoints")
    if kps is None or kps.ndim != 2 or kps.shape[1] != 2:
        got = None if kps is None else list(kps.shape)
        raise UnusableImage(f"{path}: expected 'keypoints' [N, 2] (x, y), got {got}")
    out["keypoints"] = kps.astype(np.float32)
    return out


class ImageDataset(Dataset):
    """Base of the unlabelled image datasets: subclasses give ``names``, ``sources`` and ``load``.

    ``size`` (H, W), ``resize`` and ``small`` as :func:`fit_to_size`; ``photometric`` applies
    the SuperPoint reference's photometric augmentation to ``"image"`` (``"clean_image"`` keeps
    the original); ``labels`` a directory of pseudo-labels ``<name>.npz``; ``label_heatmaps``
    also reads each label file's adapted ``"heatmap"`` (an export with
    ``task.run.export.save_heatmap=true``, at this dataset's ``size``) into ``"heatmap"`` float32
    [1,H,W]; ``repeats`` lists every image that many times (evaluation under several
    homographies per image).
    """

    def __init__(
        self,
        size: Sequence[int] = (240, 320),
        resize: str = "crop",
        small: str = "upscale",
        photometric: bool = False,
        labels: str | os.PathLike | None = None,
        repeats: int = 1,
        label_heatmaps: bool = False,
    ) -> None:
        if len(size) != 2 or int(size[0]) < 8 or int(size[1]) < 8:
            raise ValueError(f"size={list(size)}: expected [H, W] with H, W >= 8")
        if resize not in RESIZE_MODES:
            raise ValueError(f"resize={resize!r}: expected one of {list(RESIZE_MODES)}")
        if small not in SMALL_POLICIES:
            raise ValueError(f"small={small!r}: expected one of {list(SMALL_POLICIES)}")
        if int(repeats) < 1:
            raise ValueError(f"repeats={repeats}: expected >= 1")
        self.size = (int(size[0]), int(size[1]))
        self.resize = resize
        self.small = small
        self.photometric = bool(photometric)
        self.repeats = int(repeats)
        self.labels = Path(labels) if labels is not None else None
        self.label_heatmaps = bool(label_heatmaps)
        self.names: list[str] = []
        self.sources: list[str] = []

    @property
    def info(self) -> DatasetInfo:
        """What this dataset declares: where its pseudo-labels are (None: it has none)."""
        return DatasetInfo(labels_path=None if self.labels is None else str(self.labels))

    # -- subclass interface -------------------------------------------------------------------

    def load(self, j: int) -> np.ndarray:
        """Image ``j`` as an array (any layout :func:`to_gray_float` accepts); raise on failure."""
        raise NotImplementedError

    # -- shared ---------------------------------------------------------------------------------

    def _check_labels(self) -> None:
        """Keep only images that have a pseudo-label file (warn with a count, error if none has)."""
        if self.labels is None:
            if self.label_heatmaps:
                raise ValueError(
                    "label_heatmaps=true reads the heatmaps of the pseudo-labels: set data.labels=DIR"
                )
            return
        if not self.labels.is_dir():
            raise FileNotFoundError(
                f"labels={self.labels}: no such directory (expected <name>.npz pseudo-labels "
                "written by task.run.mode=export)"
            )
        have = [(self.labels / f"{n}.npz").is_file() for n in self.names]
        missing = [n for n, h in zip(self.names, have) if not h]
        if len(missing) == len(self.names):
            raise FileNotFoundError(
                f"labels={self.labels}: none of the {len(self.names)} images has a pseudo-label "
                f"file (looked for e.g. {self.labels / (self.names[0] + '.npz')})"
            )
        if missing:
            log.warning(
                "%d of %d images have no pseudo-label file in %s and are left out (e.g. %s)",
                len(missing),
                len(self.names),
                self.labels,
                ", ".join(missing[:5]),
            )
            keep = [i for i, h in enumerate(have) if h]
            self.names = [self.names[i] for i in keep]
            self.sources = [self.sources[i] for i in keep]

    def __len__(self) -> int:
        return len(self.names) * self.repeats

    def _image(self, j: int) -> np.ndarray:
        try:
            array = self.load(j)
        except UnusableImage:
            raise
        except Exception as err:  # noqa: BLE001 — any decoder failure means "unreadable"
            raise UnusableImage(f"unreadable ({type(err).__name__}: {err})") from None
        if array is None:
            raise UnusableImage("unreadable or corrupt (the decoder returned nothing)")
        return fit_to_size(to_gray_float(array), self.size, self.resize, self.small)

    def __getitem__(self, index: int) -> dict[str, Any]:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} items")
        index = int(index) % n
        j = index % len(self.names)
        item: dict[str, Any] = {
            "name": self.names[j],
            "path": self.sources[j],
            "index": index,
            "ok": True,
        }
        try:
            image = self._image(j)
            labels = self._labels(j) if self.labels is not None else {}
        except UnusableImage as err:
            log.warning("skipping image %s: %s", self.sources[j], err)
            item["ok"] = False
            image = np.zeros(self.size, np.float32)
            labels = {"keypoints": np.zeros((0, 2), np.float32), "heatmap": np.zeros(self.size)}
        clean = image
        if self.photometric and item["ok"]:
            # Torch's RNG: seeded by seed_everything and per DataLoader worker and epoch, so every
            # epoch sees new augmentations of the few images.
            rng = np.random.default_rng(int(torch.randint(0, 2**62, ()).item()))
            image = photometric_augment(image.copy(), rng)
        item["image"] = torch.from_numpy(np.ascontiguousarray(image, np.float32))[None]
        if self.photometric:
            item["clean_image"] = torch.from_numpy(np.ascontiguousarray(clean, np.float32))[None]
        if self.labels is not None:
            item["keypoints"] = torch.from_numpy(labels["keypoints"])
        if self.label_heatmaps and self.labels is not None:
            item["heatmap"] = torch.from_numpy(labels["heatmap"].astype(np.float32))[None]
        return item

    def _labels(self, j: int) -> dict[str, np.ndarray]:
        path = self.labels / f"{self.names[j]}.npz"
        try:
            labels = read_pseudo_labels(path)
        except UnusableImage:
            raise
        except Exception as err:  # noqa: BLE001
            raise UnusableImage(f"pseudo-labels {path} unreadable ({err})") from None
        if self.label_heatmaps:
            # A missing or misfit heatmap is a config error (the export's settings), not one bad image.
            heat = labels.get("heatmap")
            if heat is None:
                raise ValueError(
                    f"{path}: no 'heatmap' (label_heatmaps=true needs an export run with "
                    "task.run.export.save_heatmap=true)"
                )
            if tuple(heat.shape) != self.size:
                raise ValueError(
                    f"{path}: heatmap of shape {tuple(heat.shape)}, expected {self.size} (data.size): "
                    "export at the size the training data uses"
                )
        return labels


class Images(ImageDataset):
    """Every jpg/jpeg/png/ppm/pgm under ``root`` (recursive), grey, fitted to ``size``.

    ``name`` of an item is its path relative to ``root`` without suffix, so outputs mirror
    the input tree. Two files differing only in suffix (``a.jpg``, ``a.png``) would share
    a name: an error at construction. ``options``: those of :class:`ImageDataset` (size, resize,
    small, photometric, labels, repeats).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        suffixes: Sequence[str] = IMAGE_SUFFIXES,
        limit: int | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"root={self.root}: no such directory of images")
        files = list_images(self.root, suffixes)
        if not files:
            raise FileNotFoundError(
                f"root={self.root}: no image files ({', '.join(suffixes)}) in it or below it"
            )
        if limit is not None:
            files = files[: int(limit)]
        names = [f.rsplit(".", 1)[0] for f in files]
        if len(set(names)) != len(names):
            seen: dict[str, str] = {}
            for f, n in zip(files, names):
                if n in seen:
                    raise ValueError(
                        f"root={self.root}: {seen[n]} and {f} would share the output name {n}.npz; "
                        "rename one of them"
                    )
                seen[n] = f
        self.names = names
        self.sources = [str(self.root / f) for f in files]
        self._check_labels()

    def load(self, j: int) -> np.ndarray | None:
        """Decode image ``j`` as 8-bit grey with OpenCV (None if it cannot be decoded)."""
        return cv2.imread(self.sources[j], cv2.IMREAD_GRAYSCALE)

    def __repr__(self) -> str:
        return (
            f"Images(root={str(self.root)!r}, {len(self.names)} images, size={list(self.size)}, "
            f"resize={self.resize!r}, small={self.small!r}, photometric={self.photometric}, "
            f"labels={None if self.labels is None else str(self.labels)!r})"
        )


class COCO(Images):
    """MS-COCO 2014 images, ``root/train2014/*.jpg`` or ``root/val2014/*.jpg``; names ``<split>/<file stem>``.

    ``labels``, ``limit`` as :class:`Images`; ``options``: those of :class:`ImageDataset`.
    """

    SPLITS = ("train2014", "val2014", "test2014", "train2017", "val2017", "test2017")

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train2014",
        *,
        labels: str | os.PathLike | None = None,
        limit: int | None = None,
        **options: Any,
    ) -> None:
        if split not in self.SPLITS:
            raise ValueError(f"COCO split={split!r}: expected one of {list(self.SPLITS)}")
        folder = Path(root) / split
        if not folder.is_dir():
            raise FileNotFoundError(
                f"COCO: {folder} not found; expected the COCO layout {root}/train2014/*.jpg, "
                f"{root}/val2014/*.jpg (data.root={root}, split={split})"
            )
        # labels are checked once the names carry the split (below)
        super().__init__(folder, suffixes=(".jpg", ".jpeg"), limit=limit, labels=None, **options)
        self.split = split
        self.names = [f"{split}/{n}" for n in self.names]
        self.labels = Path(labels) if labels is not None else None
        self._check_labels()
