"""Descriptor metrics of the SuperPoint paper (Table 4): nearest-neighbour mAP and matching score.

The paper (appendix) defines them in words: *NN mAP* "captures how discriminating the
descriptor is by evaluating it at multiple descriptor distance thresholds ... the area under the
precision-recall curve, using the nearest-neighbour matching strategy ... computed symmetrically
across the pair of images and averaged"; the *matching score* is "the ratio of ground-truth
correspondences that can be found by the whole pipeline over the number of features proposed by
the pipeline in the shared viewpoint region ... computed symmetrically ... and averaged".
rpautrat's reference evaluation (``descriptor_evaluation.py``) implements only homography
estimation, so the concrete rules below are ours, chosen to follow those words, the
nearest-neighbour strategy of Mikolajczyk & Schmid (2005) that the paper refers to, and
rpautrat's ``keep_shared_points`` for the point selection:

1. Shared region and top-k (:func:`keep_shared_points`, rpautrat's ``keep_shared_points``): the
   points of a whose ``H`` image lies inside b (``0 <= x < W_b``, ``0 <= y < H_b``), the
   ``top_k`` of them by score; likewise the points of b whose ``H^-1`` image lies inside a.
2. Per direction a -> b, each kept a-point ``i`` is matched to its nearest b-point ``j(i)`` in
   descriptor space (Euclidean distance ``d_i`` between L2-normalised descriptors, as
   :func:`pixelwise.geometry.match_descriptors`; lowest index on ties). The match is *correct*
   iff ``||H x_i - y_j(i)|| <= distance`` (3 px, the paper's correctness threshold). Point i *has a
   correspondence* iff some kept b-point lies within ``distance`` of ``H x_i``; ``n_gt`` counts them.
3. NN AP of the direction: sweep a threshold t over the distinct values of d; the matches with
   ``d_i <= t`` are retrieved; ``precision(t) = correct retrieved / retrieved``,
   ``recall(t) = correct retrieved / n_gt``; ``AP = sum_t (recall(t) - recall(t_prev)) precision(t)``
   (the step integral of scikit-learn's ``average_precision_score``; equal distances form one
   threshold, which matters for binary descriptors). ``recall_base="correct_matches"`` divides by
   the number of correct NN matches instead (recall reaches 1; the ``average_precision_score`` on
   (correct, -d) used by eric-yyjau's pytorch-superpoint, which labels matches by RANSAC
   inliers instead of the true H). A direction with ``n_gt = 0`` has AP 0.
4. Matching score of the direction: correct matches / number of kept a-points (0 if there are
   none). With ``mutual_matching_score=True`` only mutual nearest neighbours count as found
   (the matches the homography estimation uses).
5. Per pair, the mean of the two directions; ``compute()`` is the mean over pairs.

Binary descriptors (ORB): pass the bits as +-1 floats (see
:class:`pixelwise.nets.ClassicalFeatures`): after L2 normalisation the Euclidean distance is
``2 sqrt(hamming / D)``, a monotone function of the Hamming distance, so nearest neighbours and
every AP equal their Hamming-distance values.

States are ``sum`` tensors, so the result under DDP equals the single-process one.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from pixelwise.geometry.homography import warp_points
from pixelwise.metrics.pair_batches import PairMetric

__all__ = [
    "DescriptorMetrics",
    "keep_shared_points",
    "descriptor_distances",
    "nn_average_precision",
    "pair_descriptor_scores",
]

_RECALL_BASES = ("correspondences", "correct_matches")


def keep_shared_points(
    keypoints: torch.Tensor,
    scores: torch.Tensor,
    homography: torch.Tensor,
    shape_other: tuple[int, int],
    top_k: int | None = None,
) -> torch.Tensor:
    """Indices long [K] of keypoints [N,2] (x, y) whose H [3,3] image lies in the other image (H, W), top_k by score [N], best first.

    Inside means ``0 <= x < W`` and ``0 <= y < H`` (rpautrat's ``keep_true_keypoints``). Score
    ties keep keypoint order (stable sort).
    """
    if keypoints.dim() != 2 or keypoints.shape[1] != 2 or scores.shape != (keypoints.shape[0],):
        raise ValueError(
            f"keep_shared_points: keypoints must be [N, 2] (x, y) with scores [N], got "
            f"{list(keypoints.shape)} and {list(scores.shape)}"
        )
    if top_k is not None and top_k < 0:
        raise ValueError(f"keep_shared_points: top_k must be >= 0 or None, got {top_k}")
    if keypoints.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=keypoints.device)
    height, width = int(shape_other[0]), int(shape_other[1])
    warped = warp_points(keypoints.double(), homography.double().to(keypoints.device))
    x, y = warped[:, 0], warped[:, 1]
    inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)  # NaN (point at infinity) is outside
    index = torch.nonzero(inside, as_tuple=True)[0]
    order = torch.argsort(scores[index], descending=True, stable=True)
    index = index[order]
    return index if top_k is None else index[:top_k]


def descriptor_distances(desc_a: torch.Tensor, desc_b: torch.Tensor) -> torch.Tensor:
    """Euclidean distances [N,M] between L2-normalised descriptors desc_a [N,D] and desc_b [M,D] (in [0, 2])."""
    if desc_a.dim() != 2 or desc_b.dim() != 2 or desc_a.shape[1] != desc_b.shape[1]:
        raise ValueError(
            f"descriptor_distances: expected desc_a [N, D] and desc_b [M, D] with the same D, got "
            f"{list(desc_a.shape)} and {list(desc_b.shape)}"
        )
    a = F.normalize(desc_a.float(), dim=1)
    b = F.normalize(desc_b.float(), dim=1)
    # ||a - b||^2 = 2 - 2 a.b for unit vectors, as in match_descriptors (same nearest neighbours)
    return torch.sqrt((2.0 - 2.0 * (a @ b.T)).clamp_min(0.0))


def nn_average_precision(
    distances: torch.Tensor, correct: torch.Tensor, n_gt: int | float
) -> float:
    """AP of matches retrieved by growing distance threshold: distances [N], correct bool [N], #ground-truth correspondences.

    ``sum_t (R_t - R_{t-1}) P_t`` over the distinct distance values t (equal distances are one
    threshold); ``P_t`` = correct among ``d <= t`` / count, ``R_t`` = correct among ``d <= t`` / n_gt.
    0 when ``n_gt`` is 0.
    """
    if distances.shape != correct.shape or distances.dim() != 1:
        raise ValueError(
            f"nn_average_precision: distances and correct must both be [N], got "
            f"{list(distances.shape)} and {list(correct.shape)}"
        )
    if n_gt <= 0 or distances.numel() == 0:
        return 0.0
    order = torch.argsort(distances, stable=True)
    d = distances[order]
    tp = torch.cumsum(correct[order].double(), 0)
    retrieved = torch.arange(1, d.numel() + 1, dtype=torch.float64, device=d.device)
    last = torch.ones_like(d, dtype=torch.bool)
    last[:-1] = d[1:] != d[:-1]  # the last match of each run of equal distances closes a threshold
    precision = tp[last] / retrieved[last]
    recall = tp[last] / float(n_gt)
    previous = torch.cat([recall.new_zeros(1), recall[:-1]])
    return float(((recall - previous) * precision).sum())


def _direction(
    kp_a: torch.Tensor,
    kp_b: torch.Tensor,
    sim: torch.Tensor,
    homography: torch.Tensor,
    distance: float,
    recall_base: str,
    mutual: bool,
) -> tuple[float, float]:
    """(NN AP, matching score) of one direction a -> b from descriptor similarities sim [N, M] (dot products of unit vectors)."""
    n_a, n_b = sim.shape
    if n_a == 0 or n_b == 0:
        return 0.0, 0.0
    # The nearest neighbour in distance is the most similar (||a - b||^2 = 2 - 2 a.b); argmax
    # returns the first maximum, i.e. the lowest index on ties, as match_descriptors.
    nn = sim.argmax(dim=1)
    nn_dist = torch.sqrt((2.0 - 2.0 * sim.gather(1, nn[:, None])[:, 0]).clamp_min(0.0))
    warped = warp_points(kp_a.double(), homography.double())
    # exact differences (not the matrix-product formula): exact at integer distances
    geo = torch.cdist(warped, kp_b.double(), compute_mode="donot_use_mm_for_euclid_dist")
    correct = geo.gather(1, nn[:, None])[:, 0] <= distance
    n_gt = int((geo <= distance).any(dim=1).sum())
    base = n_gt if recall_base == "correspondences" else int(correct.sum())
    ap = nn_average_precision(nn_dist, correct, base)
    found = correct
    if mutual:
        back = sim.argmax(dim=0)  # nearest a for each b
        found = correct & (back[nn] == torch.arange(n_a, device=nn.device))
    return ap, float(found.sum()) / n_a


def pair_descriptor_scores(
    keypoints_a: torch.Tensor,
    scores_a: torch.Tensor,
    descriptors_a: torch.Tensor,
    keypoints_b: torch.Tensor,
    scores_b: torch.Tensor,
    descriptors_b: torch.Tensor,
    homography: torch.Tensor,
    shape_a: tuple[int, int],
    shape_b: tuple[int, int],
    distance: float = 3.0,
    top_k: int | None = 1000,
    recall_base: str = "correspondences",
    mutual_matching_score: bool = False,
) -> tuple[float, float]:
    """One pair: keypoints [N,2]/[M,2] (x, y), scores, descriptors [N,D]/[M,D], H [3,3] (a -> b) -> (NN AP, matching score).

    Both are the mean of the directions a -> b and b -> a (see the module docstring).
    """
    if recall_base not in _RECALL_BASES:
        raise ValueError(
            f"recall_base={recall_base!r} is invalid; expected one of {list(_RECALL_BASES)}"
        )
    h = homography.detach().double().cpu()
    h_inv = torch.linalg.inv(h)
    kp_a, kp_b = keypoints_a.detach().cpu(), keypoints_b.detach().cpu()
    keep_a = keep_shared_points(kp_a, scores_a.detach().cpu(), h, shape_b, top_k)
    keep_b = keep_shared_points(kp_b, scores_b.detach().cpu(), h_inv, shape_a, top_k)
    kp_a, desc_a = kp_a[keep_a], descriptors_a.detach().cpu()[keep_a]
    kp_b, desc_b = kp_b[keep_b], descriptors_b.detach().cpu()[keep_b]
    if desc_a.shape[1] != desc_b.shape[1]:
        raise ValueError(
            f"pair_descriptor_scores: descriptor dimensions differ ({desc_a.shape[1]} vs {desc_b.shape[1]})"
        )
    sim = F.normalize(desc_a.float(), dim=1) @ F.normalize(desc_b.float(), dim=1).T  # [N, M]
    args = (distance, recall_base, mutual_matching_score)
    ap_ab, ms_ab = _direction(kp_a, kp_b, sim, h, *args)
    ap_ba, ms_ba = _direction(kp_b, kp_a, sim.T, h_inv, *args)
    return (ap_ab + ap_ba) / 2.0, (ms_ab + ms_ba) / 2.0


class DescriptorMetrics(PairMetric):
    """Nearest-neighbour mAP and matching score over image pairs related by a known homography.

    ``update(keypoints_a, scores_a, descriptors_a, keypoints_b, scores_b, descriptors_b,
    homography, shape, shape_b=None)``: lists with one tensor per pair (keypoints [N,2] (x, y),
    scores [N], descriptors [N,D]), H [B,3,3] (a -> b), image (H, W) of a (and of b if it
    differs). ``compute()`` -> ``{"nn_map", "matching_score"}``, means over pairs. See the
    module docstring for the definitions and the options.
    """

    def __init__(
        self,
        distance: float = 3.0,
        top_k: int | None = 1000,
        recall_base: str = "correspondences",
        mutual_matching_score: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(distance, top_k, **kwargs)
        if recall_base not in _RECALL_BASES:
            raise ValueError(
                f"DescriptorMetrics: recall_base={recall_base!r} is invalid; expected one of {list(_RECALL_BASES)}"
            )
        self.recall_base = recall_base
        self.mutual_matching_score = mutual_matching_score
        self.add_state("ap_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("ms_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(
        self,
        keypoints_a: Sequence[torch.Tensor],
        scores_a: Sequence[torch.Tensor],
        descriptors_a: Sequence[torch.Tensor],
        keypoints_b: Sequence[torch.Tensor],
        scores_b: Sequence[torch.Tensor],
        descriptors_b: Sequence[torch.Tensor],
        homography: torch.Tensor,
        shape: tuple[int, int],
        shape_b: tuple[int, int] | None = None,
    ) -> None:
        """Add B pairs: per-image lists of keypoints [N,2], scores [N], descriptors [N,D]; H [B,3,3] (a -> b); image (H, W)."""
        lists = {
            "keypoints_a": keypoints_a,
            "scores_a": scores_a,
            "descriptors_a": descriptors_a,
            "keypoints_b": keypoints_b,
            "scores_b": scores_b,
            "descriptors_b": descriptors_b,
        }
        homography, shape_a, shape_b = self.checked_pairs(homography, lists, shape, shape_b)
        for i in range(homography.shape[0]):
            ap, ms = pair_descriptor_scores(
                keypoints_a[i],
                scores_a[i],
                descriptors_a[i],
                keypoints_b[i],
                scores_b[i],
                descriptors_b[i],
                homography[i],
                shape_a,
                shape_b,
                self.distance,
                self.top_k,
                self.recall_base,
                self.mutual_matching_score,
            )
            self.ap_sum += ap
            self.ms_sum += ms
            self.pairs += 1

    def compute(self) -> dict[str, torch.Tensor]:
        """-> {"nn_map": mean NN AP over pairs, "matching_score": mean matching score over pairs} (0 with no pairs)."""
        n = self.pairs.clamp_min(1)
        return {
            "nn_map": (self.ap_sum / n).float(),
            "matching_score": (self.ms_sum / n).float(),
        }
