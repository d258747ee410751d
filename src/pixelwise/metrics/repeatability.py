"""Detector repeatability under a known homography (SuperPoint paper, rpautrat's evaluation code)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn
from torchmetrics import Metric

from pixelwise.geometry.homography import warp_points
from pixelwise.metrics.pair_batches import PairMetric

__all__ = [
    "Repeatability",
    "RepeatabilityGain",
    "pair_repeatability",
    "relative_gain",
    "top_k_for_area",
]


def _inside(points: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """[N] bool: 0 <= x < W and 0 <= y < H (the reference's test)."""
    height, width = shape
    x, y = points[:, 0], points[:, 1]
    return (x >= 0) & (x < width) & (y >= 0) & (y < height)


def _top_k(points: torch.Tensor, scores: torch.Tensor, k: int | None) -> torch.Tensor:
    if k is None or points.shape[0] <= k:
        return points
    order = torch.argsort(scores, descending=True, stable=True)[:k]
    return points[order]


def top_k_for_area(
    top_k: int | None, shape: Sequence[int], top_k_size: Sequence[int] | None
) -> int | None:
    """Points kept per image of ``shape`` (H, W): ``top_k`` per image of ``top_k_size`` (H, W), scaled by area.

    The paper keeps 300 points at 240x320; 75 at 120x160 keeps its density of points, which
    repeatability depends on. ``top_k_size=None`` or ``top_k=None``: ``top_k`` as is.
    """
    if top_k is None or top_k_size is None:
        return top_k
    area = int(shape[0]) * int(shape[1])
    return max(1, round(top_k * area / (int(top_k_size[0]) * int(top_k_size[1]))))


def relative_gain(value: float, reference: float) -> float:
    """value / reference - 1 (the paper's "+21%" repeatability gain); 0 when the reference is not > 0."""
    return value / reference - 1.0 if reference > 0 else 0.0


def pair_repeatability(
    keypoints_a: torch.Tensor,
    scores_a: torch.Tensor,
    keypoints_b: torch.Tensor,
    scores_b: torch.Tensor,
    homography: torch.Tensor,
    shape_a: tuple[int, int],
    shape_b: tuple[int, int],
    distance: float = 3.0,
    top_k: int | None = 300,
) -> tuple[int, int, float]:
    """One pair: keypoints [N,2]/[M,2] (x, y), scores [N]/[M], H [3,3] (a -> b) -> (repeated count, N1 + N2, sum of their errors).

    Repeatability of the pair = repeated count / (N1 + N2); localization error = error sum / repeated count.
    """
    h = homography.double()
    kp_a, kp_b = keypoints_a.double(), keypoints_b.double()
    # b-points whose preimage lies in a; a-points warped into b and lying there.
    keep_b = (
        _inside(warp_points(kp_b, torch.linalg.inv(h)), shape_a)
        if len(kp_b)
        else kp_b.new_zeros(0).bool()
    )
    warped_a = warp_points(kp_a, h) if len(kp_a) else kp_a
    keep_a = _inside(warped_a, shape_b) if len(kp_a) else kp_a.new_zeros(0).bool()
    pts1 = _top_k(warped_a[keep_a], scores_a[keep_a], top_k)
    pts2 = _top_k(kp_b[keep_b], scores_b[keep_b], top_k)
    n1, n2 = pts1.shape[0], pts2.shape[0]
    if n1 == 0 or n2 == 0:
        return 0, n1 + n2, 0.0
    dist = torch.cdist(pts1, pts2, compute_mode="donot_use_mm_for_euclid_dist")
    min1 = dist.min(dim=1).values
    min2 = dist.min(dim=0).values
    hit1, hit2 = min1 <= distance, min2 <= distance
    count = int(hit1.sum()) + int(hit2.sum())
    error = float(min1[hit1].sum() + min2[hit2].sum())
    return count, n1 + n2, error


class Repeatability(PairMetric):
    """Repeatability of keypoints between image pairs related by a known homography.

    The paper's definition as computed by rpautrat/SuperPoint
    (``evaluations/detector_evaluation.compute_repeatability``): for each pair, the points of
    b whose preimage ``H^-1 p`` lies in image a (0 <= x < W, 0 <= y < H) and the points of a
    warped by ``H`` that lie in image b are kept; of each set the ``top_k`` by score remain
    (N1 warped a-points, N2 b-points). With ``count1`` the warped a-points that have a
    b-point within ``distance`` pixels and ``count2`` the b-points that have a warped
    a-point within ``distance``, the pair's repeatability is (count1 + count2) / (N1 + N2).
    ``compute()`` is the mean over pairs with N1 + N2 > 0 (0 if there are none). With
    ``localization_error=True`` it returns {"repeatability", "localization_error"}, the
    latter the per-pair mean distance of those repeated points, averaged over pairs that
    have any. Score ties in the top-k are broken by keypoint order (the reference's
    unstable sort leaves them arbitrary). With ``top_k_size`` (H, W), ``top_k`` is per image of
    that size and scaled by area for each pair's image size (:func:`top_k_for_area`).
    """

    def __init__(
        self,
        distance: float = 3.0,
        top_k: int | None = 300,
        localization_error: bool = False,
        top_k_size: Sequence[int] | None = None,
        **kwargs,
    ) -> None:
        if top_k_size is not None and (len(top_k_size) != 2 or min(top_k_size) < 1):
            raise ValueError(f"Repeatability: top_k_size={top_k_size}: expected None or [H, W] > 0")
        super().__init__(distance, top_k, **kwargs)
        self.top_k_size = None if top_k_size is None else (int(top_k_size[0]), int(top_k_size[1]))
        self.localization_error = localization_error
        self.add_state(
            "repeatability_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum"
        )
        self.add_state("error_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("localized_pairs", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(
        self,
        keypoints_a: Sequence[torch.Tensor],
        scores_a: Sequence[torch.Tensor],
        keypoints_b: Sequence[torch.Tensor],
        scores_b: Sequence[torch.Tensor],
        homography: torch.Tensor,
        shape: tuple[int, int],
        shape_b: tuple[int, int] | None = None,
    ) -> None:
        """Add B pairs: lists of keypoints [N,2] (x, y) and scores [N] per image, H [B,3,3] (a -> b), image (H, W)."""
        lists = {
            "keypoints_a": keypoints_a,
            "scores_a": scores_a,
            "keypoints_b": keypoints_b,
            "scores_b": scores_b,
        }
        homography, shape_a, shape_b = self.checked_pairs(homography, lists, shape, shape_b)
        top_k = top_k_for_area(self.top_k, shape_a, self.top_k_size)
        for i in range(homography.shape[0]):
            count, total, error = pair_repeatability(
                keypoints_a[i],
                scores_a[i],
                keypoints_b[i],
                scores_b[i],
                homography[i],
                shape_a,
                shape_b,
                self.distance,
                top_k,
            )
            if total == 0:
                continue
            self.repeatability_sum += count / total
            self.pairs += 1
            if count > 0:
                self.error_sum += error / count
                self.localized_pairs += 1

    def compute(self) -> torch.Tensor | dict[str, torch.Tensor]:
        """Mean repeatability over pairs (scalar), or a dict with the localization error too."""
        rep = self.repeatability_sum / self.pairs.clamp_min(1)
        if not self.localization_error:
            return rep.float()
        loc = self.error_sum / self.localized_pairs.clamp_min(1)
        return {"repeatability": rep.float(), "localization_error": loc.float()}


class RepeatabilityGain(Metric):
    """Repeatability of several models on the same pairs, and the first's gain over the second.

    One :class:`Repeatability` (with localization error) per name in ``models`` (child metrics,
    each DDP-reduced). ``update(detections, homography, shape)`` takes ``{name: (keypoints_a,
    scores_a, keypoints_b, scores_b)}`` (lists over the batch) for every model. ``compute()`` ->
    ``{"<name>/repeatability", "<name>/localization_error"}`` per model and, with two or more
    models, ``"gain"`` = :func:`relative_gain` of the first over the second (the paper's "+21%").
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(
        self,
        models: Sequence[str],
        distance: float = 3.0,
        top_k: int | None = 300,
        top_k_size: Sequence[int] | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**{"compute_with_cache": False, **kwargs})
        if not models:
            raise ValueError("RepeatabilityGain: models must name at least one model")
        self.models = tuple(str(m) for m in models)
        self.per_model = nn.ModuleDict(
            {
                m: Repeatability(
                    distance, top_k, localization_error=True, top_k_size=top_k_size, **kwargs
                )
                for m in self.models
            }
        )

    def update(
        self,
        detections: Mapping[str, Sequence[Sequence[torch.Tensor]]],
        homography: torch.Tensor,
        shape: tuple[int, int],
    ) -> None:
        """{model: (keypoints_a, scores_a, keypoints_b, scores_b)} lists over B pairs, H [B,3,3] (a -> b), (H, W)."""
        missing = [m for m in self.models if m not in detections]
        if missing:
            raise KeyError(
                f"RepeatabilityGain: no detections of {missing} (got {sorted(detections)})"
            )
        for m in self.models:
            self.per_model[m].update(*detections[m], homography, shape)

    def compute(self) -> dict[str, torch.Tensor]:
        out = {}
        for m in self.models:
            values = self.per_model[m].compute()
            out[f"{m}/repeatability"] = values["repeatability"]
            out[f"{m}/localization_error"] = values["localization_error"]
        if len(self.models) > 1:
            first, second = (float(out[f"{m}/repeatability"]) for m in self.models[:2])
            out["gain"] = torch.tensor(relative_gain(first, second))
        return out

    def reset(self) -> None:
        super().reset()
        for metric in self.per_model.values():
            metric.reset()
