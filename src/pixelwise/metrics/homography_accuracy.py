"""Homography estimation accuracy (SuperPoint paper, Table 4; rpautrat's ``compute_homography``).

For each pair, a homography ``H_est`` is estimated from point matches with OpenCV's
``findHomography(points_a, points_b, RANSAC, ransac_threshold)`` (rpautrat passes no threshold:
OpenCV's default 3 px, our default too; RANSAC is followed by OpenCV's refinement on the
inliers). The *corner error* is the mean distance between the four image corners of image a
warped by the true ``H`` and by ``H_est``::

    e = 1/4 sum_j || H c_j - H_est c_j ||,   c_j in {(0, 0), (W-1, 0), (0, H-1), (W-1, H-1)}

and the pair is correct at tolerance eps iff ``e <= eps``. Accuracy at eps is the fraction of
correct pairs. A pair whose estimation fails (fewer than 4 matches, OpenCV returns no matrix, or a
corner maps to infinity) has ``e = inf``: it counts as wrong at every eps (rpautrat's later
version scores it 0 too).

Differences from rpautrat, on purpose: the corners are the image corners in (x, y) (rpautrat
builds them as ``[0, shape[1]-1]``... from ``(rows, cols)`` and feeds them to H as (x, y), which
for a non-square image are not the corners); the matches are given by the caller, so any matcher
can be scored (the HPatches protocol, :mod:`pixelwise.metrics.hpatches_protocol`, makes them the
way rpautrat does: top-k points in the shared region, mutual nearest neighbours).

The per-pair errors are a ``cat`` state, so the result under DDP equals the single-process one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from pixelwise.geometry.homography import warp_points
from pixelwise.geometry.matching import ransac_homography
from pixelwise.metrics.pair_batches import check_pair_batch

__all__ = ["HomographyAccuracy", "estimate_homography", "corner_error", "image_corners"]


def image_corners(shape: tuple[int, int]) -> torch.Tensor:
    """The four corner pixel centres of an image of shape (H, W) as float64 [4, 2] (x, y)."""
    height, width = int(shape[0]), int(shape[1])
    return torch.tensor(
        [[0.0, 0.0], [width - 1.0, 0.0], [0.0, height - 1.0], [width - 1.0, height - 1.0]],
        dtype=torch.float64,
    )


def estimate_homography(
    points_a: torch.Tensor, points_b: torch.Tensor, ransac_threshold: float = 3.0
) -> torch.Tensor | None:
    """Matched points [K,2] (x, y) in a and b -> H [3,3] float64 (a -> b) by OpenCV RANSAC, or None if it fails."""
    try:
        return ransac_homography(points_a, points_b, ransac_threshold)[0]
    except ValueError as err:
        raise ValueError(str(err).replace("ransac_homography", "estimate_homography")) from None


def corner_error(
    estimated: torch.Tensor | None, homography: torch.Tensor, shape: tuple[int, int]
) -> float:
    """Mean distance (px) of image a's 4 corners (shape (H, W)) warped by H_est [3,3] and the true H [3,3]; inf if no estimate."""
    if estimated is None:
        return float("inf")
    corners = image_corners(shape)
    true = warp_points(corners, homography.detach().cpu().double())
    est = warp_points(corners, estimated.detach().cpu().double())
    error = float((true - est).norm(dim=1).mean())
    return error if np.isfinite(error) else float("inf")


class HomographyAccuracy(Metric):
    """Fraction of pairs whose RANSAC homography from matches has mean corner error <= eps, for each eps.

    ``update(points_a, points_b, homography, shape)``: lists (one entry per pair) of matched
    points [K,2] (x, y) in image a and b, row i of one matched to row i of the other; the true
    H [B,3,3] (a -> b); image a's (H, W). ``compute()`` -> ``{"accuracy@<eps>"}`` for each
    threshold, ``"median_corner_error"`` (px, failures as inf) and ``"failure_rate"``. See the
    module docstring for the definitions.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(
        self,
        thresholds: Sequence[float] = (1.0, 3.0, 5.0),
        ransac_threshold: float = 3.0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        thresholds = tuple(float(t) for t in thresholds)
        if not thresholds or any(t < 0 for t in thresholds):
            raise ValueError(
                f"HomographyAccuracy: thresholds must be a non-empty list of numbers >= 0, got {thresholds}"
            )
        if ransac_threshold <= 0:
            raise ValueError(
                f"HomographyAccuracy: ransac_threshold must be > 0, got {ransac_threshold}"
            )
        self.thresholds = thresholds
        self.ransac_threshold = float(ransac_threshold)
        self.add_state("corner_errors", default=[], dist_reduce_fx="cat")

    def update(
        self,
        points_a: Sequence[torch.Tensor],
        points_b: Sequence[torch.Tensor],
        homography: torch.Tensor,
        shape: tuple[int, int],
    ) -> None:
        """Add B pairs: matched points [K,2] per pair in a and b (lists), H [B,3,3] (a -> b), image a's (H, W)."""
        homography = check_pair_batch(
            "HomographyAccuracy", homography, {"points_a": points_a, "points_b": points_b}
        )
        batch = homography.shape[0]
        errors = []
        for i in range(batch):
            estimated = estimate_homography(points_a[i], points_b[i], self.ransac_threshold)
            errors.append(corner_error(estimated, homography[i], shape))
        # float32 like the placeholder torchmetrics gathers from a rank without pairs
        self.corner_errors.append(torch.tensor(errors, dtype=torch.float32, device=self.device))

    def compute(self) -> dict[str, torch.Tensor]:
        """-> {"accuracy@<eps>": fraction of pairs with corner error <= eps, "median_corner_error", "failure_rate"}."""
        # a list of per-update tensors, or one tensor after a DDP sync (len() works for both)
        errors = (
            dim_zero_cat(self.corner_errors)
            if len(self.corner_errors)
            else torch.zeros(0, dtype=torch.float32, device=self.device)
        )
        n = max(errors.numel(), 1)
        out = {f"accuracy@{t:g}": ((errors <= t).sum() / n).float() for t in self.thresholds}
        out["median_corner_error"] = (
            errors.median().float() if errors.numel() else errors.new_tensor(float("nan")).float()
        )
        out["failure_rate"] = (torch.isinf(errors).sum() / n).float()
        return out
