"""Nearest-neighbour matching of descriptors."""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["match_descriptors", "ransac_homography", "ransac_inliers"]


def ransac_homography(
    points_a: torch.Tensor, points_b: torch.Tensor, threshold: float = 3.0
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """Matched points [K,2] (x, y) in a and b -> (H float64 [3,3] a -> b or None, inlier bool [K]).

    The project's one RANSAC: OpenCV ``findHomography(RANSAC, threshold)`` (with its refinement
    on the inliers). None (and no inliers) with fewer than 4 matches, a degenerate configuration,
    or a non-finite matrix.
    """
    for name, pts in (("points_a", points_a), ("points_b", points_b)):
        if not isinstance(pts, torch.Tensor) or pts.dim() != 2 or pts.shape[1] != 2:
            got = list(pts.shape) if isinstance(pts, torch.Tensor) else type(pts).__name__
            raise ValueError(f"ransac_homography: {name} must be [K, 2] (x, y), got {got}")
    k = int(points_a.shape[0])
    if k != points_b.shape[0]:
        raise ValueError(
            f"ransac_homography: points_a and points_b must be matched row by row, got "
            f"{k} and {points_b.shape[0]} points"
        )
    none = (None, torch.zeros(k, dtype=torch.bool))
    if k < 4:
        return none
    src = points_a.detach().cpu().double().numpy()
    dst = points_b.detach().cpu().double().numpy()
    try:
        matrix, mask = cv2.findHomography(src, dst, cv2.RANSAC, float(threshold))
    except cv2.error:  # degenerate configurations can raise instead of returning None
        return none
    if matrix is None or matrix.shape != (3, 3) or not np.isfinite(matrix).all():
        return none
    return torch.from_numpy(matrix), torch.from_numpy(mask.ravel().astype(bool))


def ransac_inliers(
    keypoints_a: torch.Tensor,
    keypoints_b: torch.Tensor,
    matches: torch.Tensor,
    threshold: float = 3.0,
) -> tuple[np.ndarray | None, np.ndarray]:
    """Points [N,2], [M,2] and matches [K,2] (index_a, index_b) -> (H [3,3] a -> b or None, inlier bool [K]) as numpy."""
    matches = matches.long().cpu()
    h, inliers = ransac_homography(
        keypoints_a.detach().cpu()[matches[:, 0]],
        keypoints_b.detach().cpu()[matches[:, 1]],
        threshold,
    )
    return (None if h is None else h.numpy()), inliers.numpy()


def match_descriptors(
    desc_a: torch.Tensor,
    desc_b: torch.Tensor,
    mutual: bool = True,
    max_distance: float | None = 0.7,
) -> torch.Tensor:
    """Nearest-neighbour matches of desc_a [N,D] in desc_b [M,D] -> long [K,2] (index_a, index_b), sorted by index_a.

    Distances are Euclidean between L2-normalised descriptors (in [0, 2]). Each a is matched
    to its nearest b (lowest index on ties); with ``mutual`` only pairs that are each other's
    nearest neighbour are kept; with ``max_distance`` only pairs at most that far apart.
    """
    for name, desc in (("desc_a", desc_a), ("desc_b", desc_b)):
        if not isinstance(desc, torch.Tensor) or desc.dim() != 2:
            got = list(desc.shape) if isinstance(desc, torch.Tensor) else type(desc)
            raise ValueError(f"{name} must have shape [N, D], got {got}")
    if desc_a.shape[1] != desc_b.shape[1]:
        raise ValueError(
            f"desc_a and desc_b must have the same descriptor dimension D, got {desc_a.shape[1]} and {desc_b.shape[1]}"
        )
    if max_distance is not None and max_distance < 0:
        raise ValueError(f"max_distance must be >= 0 or None, got {max_distance!r}")
    device = desc_a.device
    if desc_a.shape[0] == 0 or desc_b.shape[0] == 0:
        return torch.zeros(0, 2, dtype=torch.long, device=device)

    a = F.normalize(desc_a.float(), dim=1)
    b = F.normalize(desc_b.float(), dim=1)
    sim = a @ b.T  # [N, M]; ||a - b||^2 = 2 - 2 a.b for unit vectors
    best_sim, nn_ab = sim.max(dim=1)
    index_a = torch.arange(a.shape[0], device=device)
    keep = torch.ones_like(index_a, dtype=torch.bool)
    if mutual:
        nn_ba = sim.argmax(dim=0)
        keep &= nn_ba[nn_ab] == index_a
    if max_distance is not None:
        dist = torch.sqrt((2.0 - 2.0 * best_sim).clamp_min(0.0))
        keep &= dist <= max_distance
    return torch.stack([index_a[keep], nn_ab[keep]], dim=1)
