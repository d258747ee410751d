"""The HPatches protocol of the SuperPoint paper (Table 4) as one torchmetrics ``Metric``.

:class:`HPatchesEvaluator` takes one pair at a time: the features (``{"keypoints" [N,2] (x, y),
"scores" [N], "descriptors" [N,D]}``) of both images of an HPatches pair (as
:class:`pixelwise.data.hpatches.HPatches` gives them: ``"homography"`` (a -> b), ``"kind"``
``"i"`` | ``"v"``) and computes the paper's metrics:

- detector: repeatability at ``repeatability_distance`` (3 px) with the ``repeatability_top_k``
  (300) best points, and the mean localization error of the repeated points, by
  :class:`pixelwise.metrics.Repeatability` (rpautrat's formula);
- homography estimation: in each image the ``top_k`` (1000) best points of the shared region
  (rpautrat's ``keep_shared_points``), matched by mutual nearest neighbours with no distance
  threshold (rpautrat's ``BFMatcher(crossCheck=True)``; :func:`pixelwise.geometry.match_descriptors`),
  RANSAC, accuracy at eps = 1, 3, 5 px of the mean corner error
  (:class:`~pixelwise.metrics.homography_accuracy.HomographyAccuracy`);
- descriptors: NN mAP and matching score at 3 px on the same ``top_k`` points
  (:class:`~pixelwise.metrics.descriptor_metrics.DescriptorMetrics`).

The paper computes repeatability at 240x320 with 300 points and the other metrics at 480x640 with
1000 points: feed the two resolutions' pairs with ``part="detector"`` and ``part="descriptors"``.
Scoring any extractor over a dataset outside Lightning, and the paper's table layout, are in
:mod:`pixelwise.hpatches_report`.

Splits: the evaluator keeps one instance of every metric per kind (``"i"`` illumination,
``"v"`` viewpoint), each exact under DDP; the ``all`` figures merge the two instances' states
(``Metric.merge_state``), so each pair is scored once and ``all`` is the mean over all pairs (not
the mean of the two split means). Keys of the result: ``"<split>/<metric>"`` for split in
``illumination``, ``viewpoint``, ``all`` and metric in :attr:`HPatchesEvaluator.metric_names`;
a split without pairs gives NaN. This module does not import Lightning.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torchmetrics import Metric
from torchmetrics.aggregation import SumMetric

from pixelwise.geometry.matching import match_descriptors
from pixelwise.metrics.descriptor_metrics import DescriptorMetrics, keep_shared_points
from pixelwise.metrics.homography_accuracy import HomographyAccuracy
from pixelwise.metrics.repeatability import Repeatability

__all__ = ["HPatchesEvaluator", "PARTS", "SPLIT_NAMES", "shared_mutual_matches"]

Features = Mapping[str, torch.Tensor]

SPLIT_NAMES = {"i": "illumination", "v": "viewpoint"}


def _check_features(features: Features, where: str, need_descriptors: bool) -> None:
    keys = ("keypoints", "scores", "descriptors") if need_descriptors else ("keypoints", "scores")
    if not isinstance(features, Mapping) or any(k not in features for k in keys):
        got = sorted(features) if isinstance(features, Mapping) else type(features).__name__
        raise ValueError(f"{where}: features must be a dict with keys {list(keys)}, got {got}")
    kp, sc = features["keypoints"], features["scores"]
    if kp.dim() != 2 or kp.shape[1] != 2 or sc.shape != (kp.shape[0],):
        raise ValueError(
            f"{where}: keypoints must be [N, 2] (x, y) and scores [N], got {list(kp.shape)} and {list(sc.shape)}"
        )
    if need_descriptors:
        desc = features["descriptors"]
        if desc.dim() != 2 or desc.shape[0] != kp.shape[0]:
            raise ValueError(
                f"{where}: descriptors must be [N, D] for N = {kp.shape[0]} keypoints, got {list(desc.shape)}"
            )


def shared_mutual_matches(
    features_a: Features,
    features_b: Features,
    homography: torch.Tensor,
    shape_a: tuple[int, int],
    shape_b: tuple[int, int],
    top_k: int | None = 1000,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Matched points ([K,2], [K,2]) (x, y): top_k shared-region points of each image, mutual NN of descriptors, no threshold.

    rpautrat's ``compute_homography`` selection (``keep_shared_points`` with the true H [3,3],
    a -> b) and matching (``BFMatcher(crossCheck=True)``), via :func:`match_descriptors`.
    """
    h = homography.detach().cpu().double()
    kp_a, kp_b = features_a["keypoints"].detach().cpu(), features_b["keypoints"].detach().cpu()
    keep_a = keep_shared_points(kp_a, features_a["scores"].detach().cpu(), h, shape_b, top_k)
    keep_b = keep_shared_points(
        kp_b, features_b["scores"].detach().cpu(), torch.linalg.inv(h), shape_a, top_k
    )
    desc_a = features_a["descriptors"].detach().cpu()[keep_a]
    desc_b = features_b["descriptors"].detach().cpu()[keep_b]
    matches = match_descriptors(desc_a, desc_b, mutual=True, max_distance=None)
    return kp_a[keep_a][matches[:, 0]], kp_b[keep_b][matches[:, 1]]


PARTS = ("both", "detector", "descriptors")


class HPatchesEvaluator(Metric):
    """Table-4 metrics per split, a torchmetrics ``Metric``: feed pairs with :meth:`update`, read :meth:`compute`.

    ``update(features_a, features_b, H, kind, shape_a, shape_b, part="both")``: ``part`` =
    ``"detector"`` (repeatability, localization error; :meth:`update_detector`),
    ``"descriptors"`` (homography accuracy, NN mAP, matching score; :meth:`update_descriptors`)
    or ``"both"`` (one resolution for all metrics). Holds, for each kind ``"i"`` / ``"v"``, a
    :class:`Repeatability` (with localization error), a :class:`HomographyAccuracy` and a
    :class:`DescriptorMetrics` as child metrics (each DDP-reduced by its own states), and pair
    counters. The options are those of the module docstring; their defaults are the paper's.
    """

    is_differentiable = False
    full_state_update = False

    def __init__(
        self,
        repeatability_distance: float = 3.0,
        repeatability_top_k: int | None = 300,
        top_k: int | None = 1000,
        thresholds: Sequence[float] = (1.0, 3.0, 5.0),
        ransac_threshold: float = 3.0,
        correct_distance: float = 3.0,
        recall_base: str = "correspondences",
        mutual_matching_score: bool = False,
        **kwargs: Any,
    ) -> None:
        # No compute cache: compute() reads child metrics that keep changing.
        super().__init__(**{"compute_with_cache": False, **kwargs})
        self.top_k = top_k
        self.thresholds = tuple(float(t) for t in thresholds)
        # No compute cache: the 'all' instances are copies merged after a split may have been computed.
        plain = {"compute_with_cache": False}
        self.metrics = nn.ModuleDict(
            {
                kind: nn.ModuleDict(
                    {
                        "detector": Repeatability(
                            distance=repeatability_distance,
                            top_k=repeatability_top_k,
                            localization_error=True,
                            **plain,
                        ),
                        "homography": HomographyAccuracy(
                            thresholds=self.thresholds, ransac_threshold=ransac_threshold, **plain
                        ),
                        "descriptors": DescriptorMetrics(
                            distance=correct_distance,
                            top_k=top_k,
                            recall_base=recall_base,
                            mutual_matching_score=mutual_matching_score,
                            **plain,
                        ),
                    }
                )
                for kind in SPLIT_NAMES
            }
        )
        self.counts = self._new_counts()

    @staticmethod
    def _new_counts() -> nn.ModuleDict:
        """Pair counters per kind and part, metrics themselves so that they are summed over DDP ranks."""
        counts = nn.ModuleDict(
            {
                kind: nn.ModuleDict({"detector": SumMetric(), "descriptors": SumMetric()})
                for kind in SPLIT_NAMES
            }
        )
        for parts in counts.values():
            for counter in parts.values():
                counter.update(0.0)  # defined on every rank, even one that never sees a pair
        return counts

    @property
    def metric_names(self) -> tuple[str, ...]:
        """Names of the metrics :meth:`compute` reports for each split."""
        return (
            *(f"homography_accuracy@{t:g}" for t in self.thresholds),
            "repeatability",
            "localization_error",
            "nn_map",
            "matching_score",
            "median_corner_error",
            "homography_failure_rate",
            "detector_pairs",
            "descriptor_pairs",
        )

    @staticmethod
    def _kind(kind: str) -> str:
        if kind not in SPLIT_NAMES:
            raise ValueError(
                f"HPatchesEvaluator: kind={kind!r} is invalid; expected 'i' (illumination) or 'v' (viewpoint)"
            )
        return kind

    def update(
        self,
        features_a: Features,
        features_b: Features,
        homography: torch.Tensor,
        kind: str,
        shape_a: tuple[int, int],
        shape_b: tuple[int, int],
        part: str = "both",
    ) -> None:
        """One pair: features of a and b, H [3,3] (a -> b), kind "i"/"v", image shapes (H, W); ``part`` of the metrics.

        ``part="detector"`` needs keypoints [N,2] and scores [N] only; the other parts need
        descriptors [N,D] too.
        """
        if part not in PARTS:
            raise ValueError(f"HPatchesEvaluator: part={part!r}: expected one of {list(PARTS)}")
        kind = self._kind(kind)
        need_descriptors = part != "detector"
        for side, features in (("a", features_a), ("b", features_b)):
            _check_features(features, f"HPatchesEvaluator ({part}): image {side}", need_descriptors)
        a = {k: v.detach().cpu() for k, v in features_a.items()}
        b = {k: v.detach().cpu() for k, v in features_b.items()}
        h = homography.detach().cpu().double()
        shape_a, shape_b = tuple(shape_a), tuple(shape_b)
        if part in ("both", "detector"):
            self.metrics[kind]["detector"].update(
                [a["keypoints"]],
                [a["scores"]],
                [b["keypoints"]],
                [b["scores"]],
                h[None],
                shape_a,
                shape_b,
            )
            self.counts[kind]["detector"].update(1.0)
        if part in ("both", "descriptors"):
            points_a, points_b = shared_mutual_matches(a, b, h, shape_a, shape_b, self.top_k)
            self.metrics[kind]["homography"].update([points_a], [points_b], h[None], shape_a)
            self.metrics[kind]["descriptors"].update(
                [a["keypoints"]],
                [a["scores"]],
                [a["descriptors"]],
                [b["keypoints"]],
                [b["scores"]],
                [b["descriptors"]],
                h[None],
                shape_a,
                shape_b,
            )
            self.counts[kind]["descriptors"].update(1.0)

    def update_detector(self, *args: Any) -> None:
        """:meth:`update` with ``part="detector"`` (keypoints [N,2] and scores [N] suffice)."""
        self.update(*args, part="detector")

    def update_descriptors(self, *args: Any) -> None:
        """:meth:`update` with ``part="descriptors"`` (descriptors [N,D] needed)."""
        self.update(*args, part="descriptors")

    def _values(self, metrics: dict[str, Metric], n_det: int, n_desc: int) -> dict[str, float]:
        # Every metric is computed on every call, pairs or not: under DDP compute() is a
        # collective, so all ranks must make the same calls; a split without pairs reads NaN.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*was called before the ``update``.*")
            det = metrics["detector"].compute()
            hom = metrics["homography"].compute()
            desc = metrics["descriptors"].compute()
        nan = float("nan")
        out = {name: nan for name in self.metric_names}
        out["detector_pairs"], out["descriptor_pairs"] = float(n_det), float(n_desc)
        if n_det:
            out["repeatability"] = float(det["repeatability"])
            out["localization_error"] = float(det["localization_error"])
        if n_desc:
            for t in self.thresholds:
                out[f"homography_accuracy@{t:g}"] = float(hom[f"accuracy@{t:g}"])
            out["median_corner_error"] = float(hom["median_corner_error"])
            out["homography_failure_rate"] = float(hom["failure_rate"])
            out["nn_map"] = float(desc["nn_map"])
            out["matching_score"] = float(desc["matching_score"])
        return out

    def compute(self) -> dict[str, float]:
        """-> {"<split>/<metric>": value} for split in illumination, viewpoint, all (NaN where a split has no pairs)."""
        counts = {
            kind: {part: int(counter.compute()) for part, counter in parts.items()}
            for kind, parts in self.counts.items()
        }
        out: dict[str, float] = {}
        for kind, split in SPLIT_NAMES.items():
            values = self._values(
                self.metrics[kind], counts[kind]["detector"], counts[kind]["descriptors"]
            )
            out.update({f"{split}/{k}": v for k, v in values.items()})
        # 'all': copies of the illumination metrics with the viewpoint states merged in
        merged = {}
        for part in ("detector", "homography", "descriptors"):
            metric = copy.deepcopy(self.metrics["i"][part])
            metric.merge_state(self.metrics["v"][part])
            merged[part] = metric
        n_det = sum(c["detector"] for c in counts.values())
        n_desc = sum(c["descriptors"] for c in counts.values())
        out.update({f"all/{k}": v for k, v in self._values(merged, n_det, n_desc).items()})
        return out

    def reset(self) -> None:
        """Forget every pair."""
        super().reset()
        for metrics in self.metrics.values():
            for metric in metrics.values():
                metric.reset()
        self.counts = self._new_counts().to(self.device)
