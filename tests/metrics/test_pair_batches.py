"""The pair-batch checks of Repeatability and DescriptorMetrics: messages name the metric and the list."""

from __future__ import annotations

import pytest
import torch

from pixelwise.metrics import DescriptorMetrics, Repeatability
from pixelwise.metrics.pair_batches import check_pair_batch, pair_shapes


def test_a_single_homography_becomes_a_batch_of_one():
    h = check_pair_batch("M", torch.eye(3), {"keypoints_a": [torch.zeros(0, 2)]})
    assert h.shape == (1, 3, 3)


def test_pair_shapes_default_b_to_a():
    assert pair_shapes((4.0, 5), None) == ((4, 5), (4, 5))
    assert pair_shapes((4, 5), (6, 7)) == ((4, 5), (6, 7))


def test_errors_name_the_metric_and_the_list():
    kp, sc = [torch.zeros(0, 2)], [torch.zeros(0)]
    with pytest.raises(
        ValueError, match=r"Repeatability: homography must have shape \[B, 3, 3\], got \[2, 3, 4\]"
    ):
        Repeatability().update(kp, sc, kp, sc, torch.zeros(2, 3, 4), (8, 8))
    with pytest.raises(
        ValueError, match="DescriptorMetrics: scores_b has 2 entries, homography has B=1"
    ):
        desc = [torch.zeros(0, 4)]
        DescriptorMetrics().update(kp, sc, desc, kp, sc * 2, desc, torch.eye(3)[None], (8, 8))


def test_pair_features_are_checked_before_any_pair_is_added():
    good, bad = torch.zeros(2, 2), torch.zeros(2, 3)
    scores = [torch.zeros(2), torch.zeros(2)]
    metric = Repeatability()
    with pytest.raises(ValueError, match=r"Repeatability: pair 1: keypoints_b must be \[N, 2\]"):
        metric.update(
            [good, good], scores, [good, bad], scores, torch.eye(3).repeat(2, 1, 1), (8, 8)
        )
    assert int(metric.pairs) == 0


def test_pair_features_check_descriptor_dimensions():
    kp, sc = [torch.zeros(2, 2)], [torch.zeros(2)]
    with pytest.raises(
        ValueError, match=r"DescriptorMetrics: pair 0: descriptor dimensions differ \(4 vs 5\)"
    ):
        DescriptorMetrics().update(
            kp, sc, [torch.zeros(2, 4)], kp, sc, [torch.zeros(2, 5)], torch.eye(3), (8, 8)
        )


def test_point_options():
    with pytest.raises(ValueError, match="Repeatability: distance must be >= 0, got -1"):
        Repeatability(distance=-1)
    with pytest.raises(
        ValueError, match="DescriptorMetrics: top_k must be a positive int or None, got 0"
    ):
        DescriptorMetrics(top_k=0)
