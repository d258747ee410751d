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
