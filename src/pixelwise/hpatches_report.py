"""The HPatches report of the SuperPoint paper (Table 4): score any feature extractor, format the table.

``evaluate_features(feature_fn, dataset, detector_dataset=None) -> dict`` runs an extractor
(``image [C,H,W] -> {"keypoints" [N,2] (x, y), "scores" [N], "descriptors" [N,D]}``: a trained
SuperPoint's ``extract``, :class:`pixelwise.nets.ClassicalFeatures`, ...) over HPatches pairs
outside Lightning (a notebook, a script) and returns the metrics of
:class:`~pixelwise.metrics.hpatches_protocol.HPatchesEvaluator`; the detector metrics on
``detector_dataset`` (the paper: 240x320), the rest on ``dataset`` (480x640)::

    evaluate_features(fn, HPatches(root, size=(480, 640)), detector_dataset=HPatches(root, size=(240, 320)))

:func:`format_table` writes such results in the layout of the paper's Table 4, with its published
rows (:data:`PAPER_TABLE4`). Inside a training run, ``SuperPointTask`` and
``pixelwise.callbacks.superpoint.SuperPointEvaluation`` do the same through the trainer's test loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch

from pixelwise.metrics.hpatches_protocol import Features, HPatchesEvaluator

__all__ = ["METRIC_NAMES", "PAPER_TABLE4", "evaluate_features", "format_table"]

FeatureFn = Callable[[torch.Tensor], Features]

# The published Table 4 of DeTone et al. 2018 (HPatches, all 116 sequences), for reference rows.
PAPER_TABLE4: dict[str, dict[str, float]] = {
    "SuperPoint (paper)": {
        "homography_accuracy@1": 0.310,
        "homography_accuracy@3": 0.684,
        "homography_accuracy@5": 0.829,
        "repeatability": 0.581,
        "localization_error": 1.158,
        "nn_map": 0.821,
        "matching_score": 0.470,
    },
    "LIFT (paper)": {
        "homography_accuracy@1": 0.284,
        "homography_accuracy@3": 0.598,
        "homography_accuracy@5": 0.717,
        "repeatability": 0.449,
        "localization_error": 1.102,
        "nn_map": 0.664,
        "matching_score": 0.315,
    },
    "SIFT (paper)": {
        "homography_accuracy@1": 0.424,
        "homography_accuracy@3": 0.676,
        "homography_accuracy@5": 0.759,
        "repeatability": 0.495,
        "localization_error": 0.833,
        "nn_map": 0.694,
        "matching_score": 0.313,
    },
    "ORB (paper)": {
        "homography_accuracy@1": 0.150,
        "homography_accuracy@3": 0.395,
        "homography_accuracy@5": 0.538,
        "repeatability": 0.641,
        "localization_error": 1.157,
        "nn_map": 0.735,
        "matching_score": 0.266,
    },
}


def _items(dataset: Any, max_pairs: int | None) -> Iterable[dict[str, Any]]:
    n = len(dataset) if max_pairs is None else min(len(dataset), max_pairs)
    for i in range(n):
        yield dataset[i]


def _run(
    feature_fn: FeatureFn,
    dataset: Any,
    update: Callable[..., None],
    max_pairs: int | None,
) -> None:
    """Extract features for every pair of dataset and pass them to update (image a's features reused within a sequence)."""
    cached_key, cached = None, None
    for item in _items(dataset, max_pairs):
        for key in ("image_a", "image_b", "homography", "kind"):
            if key not in item:
                raise ValueError(
                    f"evaluate_features: dataset items need keys image_a, image_b, homography, kind; missing {key!r}"
                )
        image_a, image_b = item["image_a"], item["image_b"]
        # Image 1 of an HPatches sequence is image a of its 5 pairs: extract it once.
        key = (item.get("sequence"), tuple(image_a.shape)) if "sequence" in item else None
        if key is not None and key == cached_key:
            features_a = cached
        else:
            features_a = feature_fn(image_a)
            cached_key, cached = key, features_a
        features_b = feature_fn(image_b)
        update(
            features_a,
            features_b,
            item["homography"],
            item["kind"],
            tuple(image_a.shape[-2:]),
            tuple(image_b.shape[-2:]),
        )


@torch.no_grad()
def evaluate_features(
    feature_fn: FeatureFn,
    dataset: Any,
    detector_dataset: Any | None = None,
    max_pairs: int | None = None,
    **options: Any,
) -> dict[str, float]:
    """Score an extractor image [C,H,W] -> {"keypoints" [N,2], "scores" [N], "descriptors" [N,D]} on HPatches pairs -> {"<split>/<metric>": value}.

    Detector metrics on ``detector_dataset`` (default: ``dataset``), homography and descriptor
    metrics on ``dataset``; ``max_pairs`` truncates each dataset (quick runs); ``options`` go to
    :class:`HPatchesEvaluator`.
    """
    evaluator = HPatchesEvaluator(**options)
    if detector_dataset is None:
        _run(feature_fn, dataset, evaluator.update, max_pairs)
    else:
        _run(feature_fn, detector_dataset, evaluator.update_detector, max_pairs)
        _run(feature_fn, dataset, evaluator.update_descriptors, max_pairs)
    return evaluator.compute()


TABLE_COLUMNS = (
    ("homography_accuracy@1", "ε=1"),
    ("homography_accuracy@3", "ε=3"),
    ("homography_accuracy@5", "ε=5"),
    ("repeatability", "Rep."),
    ("localization_error", "MLE"),
    ("nn_map", "NN mAP"),
    ("matching_score", "M. Score"),
)
METRIC_NAMES = tuple(name for name, _ in TABLE_COLUMNS)


def format_table(
    results: Mapping[str, Mapping[str, float]],
    splits: Sequence[str] = ("all", "illumination", "viewpoint"),
    reference: bool = True,
) -> str:
    """Markdown table in the layout of the paper's Table 4: one row per method (and split) of ``{name: evaluate_features(...)}``.

    ``reference`` appends the published rows of :data:`PAPER_TABLE4` (all sequences of the real
    HPatches, so comparable only to ``all`` rows on that data).
    """
    header = "| method | split | " + " | ".join(label for _, label in TABLE_COLUMNS) + " |"
    rule = "|---|---|" + "---:|" * len(TABLE_COLUMNS)
    lines = [header, rule]

    def cell(value: float | None) -> str:
        if value is None or math.isnan(value):
            return "–"
        return f"{value:.3f}"

    for method, values in results.items():
        for split in splits:
            row = [cell(values.get(f"{split}/{name}")) for name, _ in TABLE_COLUMNS]
            lines.append(f"| {method} | {split} | " + " | ".join(row) + " |")
    if reference:
        for method, values in PAPER_TABLE4.items():
            row = [cell(values.get(name)) for name, _ in TABLE_COLUMNS]
            lines.append(f"| {method} | all | " + " | ".join(row) + " |")
    return "\n".join(lines)
