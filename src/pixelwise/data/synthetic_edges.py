"""Edge maps of the synthetic street scenes, drawn by K simulated annotators who disagree.

An annotator traces the boundaries between the scene's regions (connected pieces of one
class and instance), one pixel wide. Like the BSDS annotators, they differ in detail and
care: annotator k skips boundaries of regions smaller than a_k pixels and boundaries whose
two sides differ in mean colour by less than c_k, and draws each boundary piece (the
boundary between one pair of regions) shifted by one pixel with probability `shift_prob`.
The thresholds a_k, c_k are spread from "keeps everything" (k = 0) to the given maxima, with
a random offset per image. Everything is deterministic per (seed, split, index).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
from skimage.measure import label as connected_regions

from pixelwise.data.edge_labels import EdgeDataset
from pixelwise.data.synthetic_scenes import SPLIT_IDS, SyntheticScenes

# The eight one-pixel shifts (dy, dx) an annotator's stroke may be off by.
_SHIFTS = np.array([(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)])


def region_boundaries(regions: np.ndarray) -> tuple[np.ndarray, ...]:
    """Region ids [H,W] -> boundary pixels (y, x) and the two regions (a, b) each one separates.

    A pixel is on a boundary when its right or lower neighbour is in another region, so
    boundaries are one pixel wide (on the upper/left side); a pixel on two boundaries appears
    once per boundary.
    """
    ys, xs = np.nonzero(regions[:, :-1] != regions[:, 1:])
    yv, xv = np.nonzero(regions[:-1, :] != regions[1:, :])
    y = np.concatenate([ys, yv])
    x = np.concatenate([xs, xv])
    a = regions[y, x]
    b = np.concatenate([regions[ys, xs + 1], regions[yv + 1, xv]])
    return y, x, a, b


def simulate_annotators(
    image: np.ndarray,
    mask: np.ndarray,
    instances: np.ndarray,
    rng: np.random.Generator,
    annotators: int = 4,
    shift_prob: float = 0.25,
    max_drop_area: float = 0.003,
    max_drop_contrast: float = 0.1,
) -> np.ndarray:
    """Scene (uint8 image [H,W,3], class mask [H,W], instances [H,W]) -> annotations bool [K,H,W].

    `max_drop_area` is a fraction of the image area, `max_drop_contrast` a difference of
    mean colour (max over channels, in [0,1]); annotator k drops a boundary below
    max * (k + u) / K with u uniform in [0,1) per image.
    """
    if annotators < 1:
        raise ValueError(f"simulate_annotators: annotators={annotators}: expected >= 1")
    if not 0.0 <= shift_prob <= 1.0:
        raise ValueError(f"simulate_annotators: shift_prob={shift_prob}: expected in [0,1]")
    h, w = mask.shape
    key = instances.astype(np.int64) * 256 + mask.astype(np.int64)
    regions = connected_regions(key + 1, background=0, connectivity=1)
    n = int(regions.max()) + 1
    area = np.bincount(regions.ravel(), minlength=n)
    colour = (
        np.stack(
            [
                np.bincount(regions.ravel(), image[..., c].ravel().astype(np.float64), n)
                for c in range(3)
            ],
            axis=1,
        )
        / np.maximum(area, 1)[:, None]
    )

    y, x, a, b = region_boundaries(regions)
    # One id per unordered pair of regions: the "boundary piece" an annotator draws or skips.
    pair = np.minimum(a, b) * n + np.maximum(a, b)
    pieces, piece_of = np.unique(pair, return_inverse=True)
    pa, pb = pieces // n, pieces % n
    piece_area = np.minimum(area[pa], area[pb])
    piece_contrast = np.abs(colour[pa] - colour[pb]).max(axis=1) / 255.0

    out = np.zeros((annotators, h, w), dtype=bool)
    spread = (np.arange(annotators) + rng.random()) / annotators
    for k in range(annotators):
        keep = (piece_area >= spread[k] * max_drop_area * h * w) & (
            piece_contrast >= spread[k] * max_drop_contrast
        )
        shifted = rng.random(len(pieces)) < shift_prob
        offset = _SHIFTS[rng.integers(0, len(_SHIFTS), len(pieces))] * shifted[:, None]
        drawn = keep[piece_of]
        yy = np.clip(y[drawn] + offset[piece_of[drawn], 0], 0, h - 1)
        xx = np.clip(x[drawn] + offset[piece_of[drawn], 1], 0, w - 1)
        out[k, yy, xx] = True
    return out


class SyntheticEdges(EdgeDataset):
    """Synthetic street scenes with the boundaries drawn by `annotators` simulated annotators.

    Items as `edge_item`: "image" [3,H,W], "edges" bool [K,H,W], "targets"/"weights" from
    `label_mode`, "name". The scene itself comes from `SyntheticScenes.render(index)`.
    """

    def __init__(
        self,
        split: str = "train",
        size: Sequence[int] = (96, 128),
        length: int = 1000,
        seed: int = 0,
        annotators: int = 4,
        shift_prob: float = 0.25,
        max_drop_area: float = 0.003,
        max_drop_contrast: float = 0.1,
        label_mode: str = "each",
        label_threshold: float = 0.5,
        transform: Any = None,
    ) -> None:
        super().__init__(label_mode, label_threshold, transform)
        if annotators < 1:
            raise ValueError(f"SyntheticEdges: annotators={annotators}: expected >= 1")
        # The scenes hold the split and the seed; the annotators' stream below reads them there.
        self.scenes = SyntheticScenes(split=split, size=size, length=length, seed=seed)
        self.annotators = annotators
        self.shift_prob = shift_prob
        self.max_drop_area = max_drop_area
        self.max_drop_contrast = max_drop_contrast

    def __len__(self) -> int:
        return len(self.scenes)

    def render(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Item `index` untransformed: uint8 image [H,W,3] and annotations bool [K,H,W]."""
        scene = self.scenes.render(index)
        # Its own stream, so the annotators do not change when the scene generator draws more.
        rng = np.random.default_rng([self.scenes.seed, SPLIT_IDS[self.scenes.split], index, 0xED6E])
        annotations = simulate_annotators(
            scene["image"],
            scene["mask"],
            scene["instances"],
            rng,
            self.annotators,
            self.shift_prob,
            self.max_drop_area,
            self.max_drop_contrast,
        )
        return scene["image"], annotations

    def __getitem__(self, index: int) -> dict[str, Any]:
        # Rendering is single-threaded by design; cv2's own pool would fight DataLoader workers.
        cv2.setNumThreads(0)
        image, annotations = self.render(index)
        return self.item(image, f"{self.scenes.split}_{index:05d}", annotations=annotations)
