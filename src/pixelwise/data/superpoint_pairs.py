"""SuperPoint training pairs: an image with (pseudo-label) points and its warp by a random homography.

Source of images and points, one of:

- ``source``: any dataset whose items hold ``"image"`` float [1,H,W] and ``"keypoints"`` float
  [N,2] (x, y) (and optionally ``"clean_image"``, ``"valid_mask"``, ``"ok"``), e.g.
  :class:`~pixelwise.data.synthetic_shapes.SyntheticShapes` (ground-truth points, nothing on
  disk) or :class:`~pixelwise.data.sample_images.SampleImages` with ``labels``. Items of an
  unlabelled source (no ``"keypoints"``) make pairs without ``keypoints_a``/``keypoints_b``:
  enough to validate (homography accuracy, matching score), not to train;
- ``root`` + ``labels``: every image under ``root`` with its pseudo-labels ``<labels>/<name>.npz``
  (the export format of homographic adaptation, ``PseudoLabelWriter``). An image without a
  label file is an error naming that file, unless ``skip_missing_labels`` (then it is left out).

Item: ``image_a``/``image_b`` float32 [1,H,W] (independently photometrically augmented),
``keypoints_a``/``keypoints_b`` float32 [N,2] (x, y) (b: the a-points warped by H that land in
B's valid region), ``valid_mask_a``/``valid_mask_b`` bool [H,W], ``homography`` float32 [3,3]
(a -> b pixels, ``B(H p) = A(p)``), ``kind`` ``"v"`` (a viewpoint pair, for the HPatches
evaluator) and ``index``. A sampled homography that is singular or leaves less than
``min_valid_fraction`` of B valid is resampled (up to ``max_tries``), then replaced by the
identity; both are counted in ``resampled`` / ``skipped`` (per process).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from pixelwise.data.images import Images, list_images
from pixelwise.data.photometric import photometric_augment
from pixelwise.geometry.homography import (
    merge_homography_params,
    sample_homography,
    warp_images,
    warp_points,
    warp_valid_mask,
)

__all__ = ["SuperPointPairs", "TRAINING_HOMOGRAPHY"]

log = logging.getLogger("pixelwise")

# The paper's / rpautrat superpoint_coco.yaml homographic augmentation of the training pairs.
TRAINING_HOMOGRAPHY: dict[str, Any] = {
    "perspective": True,
    "scaling": True,
    "rotation": True,
    "translation": True,
    "scaling_amplitude": 0.2,
    "perspective_amplitude_x": 0.2,
    "perspective_amplitude_y": 0.2,
    "patch_ratio": 0.85,
    "max_angle": math.pi / 2,
    "allow_artifacts": True,
}


class SuperPointPairs(Dataset):
    """Pairs (A, B = A warped by a random H) with points, valid masks and H; see the module docstring.

    ``size`` (H, W) for ``root`` mode (a ``source`` gives its own size); ``homography``
    overrides keys of :data:`TRAINING_HOMOGRAPHY`; ``photometric`` augments both images
    independently; ``deterministic`` draws every random choice from (``seed``, index) (for
    validation), else from torch's RNG (new pairs every epoch); ``valid_border_margin``
    erodes B's valid mask; ``length`` limits or repeats the source (default: its length).
    """

    def __init__(
        self,
        source: Dataset | None = None,
        root: str | os.PathLike | None = None,
        labels: str | os.PathLike | None = None,
        size: Sequence[int] = (240, 320),
        resize: str = "crop",
        skip_missing_labels: bool = False,
        length: int | None = None,
        homography: dict[str, Any] | None = None,
        photometric: bool = True,
        deterministic: bool = False,
        seed: int = 0,
        valid_border_margin: int = 3,
        min_valid_fraction: float = 0.2,
        max_tries: int = 10,
    ) -> None:
        if (source is None) == (root is None):
            raise ValueError(
                "SuperPointPairs: give exactly one of source (a dataset with image + keypoints) "
                f"or root (+ labels); got source={type(source).__name__}, root={root!r}"
            )
        if root is not None:
            if labels is None:
                raise ValueError(
                    f"SuperPointPairs: root={root!r} needs labels=DIR of <name>.npz pseudo-labels"
                )
            source = _labelled_images(root, labels, size, resize, skip_missing_labels)
        params = merge_homography_params(
            TRAINING_HOMOGRAPHY, homography, "SuperPointPairs: homography"
        )
        if not 0.0 <= min_valid_fraction < 1.0:
            raise ValueError(
                f"SuperPointPairs: min_valid_fraction={min_valid_fraction}: expected in [0, 1)"
            )
        if max_tries < 1:
            raise ValueError(f"SuperPointPairs: max_tries={max_tries}: expected >= 1")
        if length is not None and length < 1:
            raise ValueError(f"SuperPointPairs: length={length}: expected null or >= 1")
        if len(source) == 0:
            raise ValueError("SuperPointPairs: the source dataset is empty")
        self.source = source
        self.length = int(length) if length is not None else len(source)
        self.homography = params
        self.photometric = bool(photometric)
        self.deterministic = bool(deterministic)
        self.seed = int(seed)
        self.valid_border_margin = int(valid_border_margin)
        self.min_valid_fraction = float(min_valid_fraction)
        self.max_tries = int(max_tries)
        self.resampled = 0
        self.skipped = 0

    def __len__(self) -> int:
        return self.length

    def _rng(self, index: int) -> np.random.Generator:
        if self.deterministic:
            return np.random.default_rng([self.seed, index])
        return np.random.default_rng(int(torch.randint(0, 2**62, ()).item()))

    def sample_homography(
        self, shape: tuple[int, int], rng: np.random.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A usable H [3,3] for an image of ``shape`` and B's valid mask [H,W] (identity after max_tries)."""
        generator = torch.Generator().manual_seed(int(rng.integers(0, 2**62)))
        for attempt in range(self.max_tries):
            h = sample_homography(1, shape, generator=generator, **self.homography)[0]
            if _usable(h):
                valid = warp_valid_mask(shape, h, border_margin=self.valid_border_margin)[0]
                if valid.float().mean().item() >= max(self.min_valid_fraction, 1e-9):
                    self.resampled += attempt
                    return h, valid
        self.skipped += 1
        log.warning(
            "SuperPointPairs: no usable homography in %d tries (singular or out of view); "
            "using the identity (%d so far)",
            self.max_tries,
            self.skipped,
        )
        return torch.eye(3), torch.ones(shape, dtype=torch.bool)

    def _source_item(self, index: int) -> dict[str, Any]:
        n = len(self.source)
        for k in range(min(n, 10)):
            item = self.source[(index + k) % n]
            if item.get("ok", True):
                return item
        raise RuntimeError(
            f"SuperPointPairs: 10 consecutive source items from {index % n} are unusable"
        )

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -self.length <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} items")
        index = int(index) % self.length
        item = self._source_item(index)
        image = item.get("clean_image", item["image"]).float()
        if image.dim() != 3 or image.shape[0] != 1:
            raise ValueError(
                f"SuperPointPairs: source images must be [1, H, W] gray, got {list(image.shape)}"
            )
        labelled = "keypoints" in item
        keypoints = torch.as_tensor(item.get("keypoints", ()), dtype=torch.float32).reshape(-1, 2)
        shape = (int(image.shape[1]), int(image.shape[2]))
        valid_a = item.get("valid_mask")
        valid_a = (
            torch.ones(shape, dtype=torch.bool)
            if valid_a is None
            else torch.as_tensor(valid_a).bool()
        )
        rng = self._rng(index)
        h, valid_b = self.sample_homography(shape, rng)
        warped = warp_images(image[None], h)[0]
        # The source's invalid region (e.g. a synthetic item's own warp) stays invalid in B.
        if not bool(valid_a.all()):
            moved = warp_images(valid_a[None, None].float(), h)[0, 0]
            valid_b &= moved >= 0.999
        keypoints_b = warp_points(keypoints.double(), h.double()).float()
        keypoints_b = keypoints_b[_inside(keypoints_b, valid_b)]
        image_a = image[0].numpy()
        image_b = warped[0].numpy()
        if self.photometric:
            image_a = photometric_augment(image_a.copy(), rng)
            image_b = photometric_augment(image_b.copy(), rng)
        pair = {
            "image_a": torch.from_numpy(np.ascontiguousarray(image_a, np.float32))[None],
            "image_b": torch.from_numpy(np.ascontiguousarray(image_b, np.float32))[None],
            "valid_mask_a": valid_a,
            "valid_mask_b": valid_b,
            "homography": h.float(),
            "kind": "v",
            "index": index,
        }
        if labelled:
            pair.update(keypoints_a=keypoints, keypoints_b=keypoints_b)
        return pair

    def __repr__(self) -> str:
        return (
            f"SuperPointPairs({len(self)} pairs of {type(self.source).__name__}, "
            f"photometric={self.photometric}, deterministic={self.deterministic})"
        )


def _usable(h: torch.Tensor) -> bool:
    """Finite and not (nearly) singular."""
    if not bool(torch.isfinite(h).all()):
        return False
    sv = torch.linalg.svdvals(h.double())
    return bool(sv[-1] > sv[0] * 1e-8)


def _inside(points: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """bool [N]: points [N,2] (x, y) whose rounded pixel is inside the image and valid [H,W]."""
    height, width = valid.shape
    finite = torch.isfinite(points).all(dim=1)
    xy = torch.where(finite[:, None], points, torch.full_like(points, -1.0)).round().long()
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < width) & (xy[:, 1] >= 0) & (xy[:, 1] < height)
    ok = torch.zeros_like(inside)
    ok[inside] = valid[xy[inside, 1], xy[inside, 0]]
    return ok & finite


def _labelled_images(
    root: str | os.PathLike,
    labels: str | os.PathLike,
    size: Sequence[int],
    resize: str,
    skip_missing_labels: bool,
) -> Images:
    """Images under root with their pseudo-labels; a missing label file is an error unless skipped."""
    root, labels = Path(root), Path(labels)
    if not root.is_dir():
        raise FileNotFoundError(f"data.root={root}: no such directory of images")
    if not labels.is_dir():
        raise FileNotFoundError(
            f"data.labels={labels}: no such directory (expected <name>.npz pseudo-labels "
            "written by homographic adaptation's export)"
        )
    files = list_images(root)
    missing = [
        (f, labels / f"{f.rsplit('.', 1)[0]}.npz")
        for f in files
        if not (labels / f"{f.rsplit('.', 1)[0]}.npz").is_file()
    ]
    if missing and not skip_missing_labels:
        image, label = missing[0]
        raise FileNotFoundError(
            f"pseudo-label file {label} is missing for image {root / image} "
            f"({len(missing)} of {len(files)} images have none): export labels for them or set "
            "data.skip_missing_labels=true to leave them out"
        )
    return Images(root, size=size, resize=resize, labels=labels)
