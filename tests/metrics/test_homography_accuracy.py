"""HomographyAccuracy: exact recovery from perfect matches, known corner errors, failures, outliers."""

from __future__ import annotations

import math

import pytest
import torch

from pixelwise.geometry.homography import warp_points
from pixelwise.metrics.homography_accuracy import (
    HomographyAccuracy,
    corner_error,
    estimate_homography,
    image_corners,
)

SHAPE = (100, 200)  # (H, W)
H_TRUE = torch.tensor(
    [[0.9, 0.12, 14.0], [-0.08, 1.05, -6.0], [2e-4, -1e-4, 1.0]], dtype=torch.float64
)


def grid_points(n: int = 60, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 2, generator=g, dtype=torch.float64) * torch.tensor([199.0, 99.0])


def test_image_corners_are_x_y_of_the_four_pixel_centres():
    assert image_corners(SHAPE).tolist() == [[0, 0], [199, 0], [0, 99], [199, 99]]


class TestEstimation:
    def test_perfect_matches_recover_h(self):
        a = grid_points()
        estimated = estimate_homography(a, warp_points(a, H_TRUE))
        assert estimated is not None
        assert torch.allclose(estimated / estimated[2, 2], H_TRUE, atol=1e-6, rtol=1e-5)
        assert corner_error(estimated, H_TRUE, SHAPE) < 1e-4

    def test_ransac_ignores_outliers(self):
        a = grid_points(100)
        b = warp_points(a, H_TRUE)
        g = torch.Generator().manual_seed(1)
        b[:30] = torch.rand(30, 2, generator=g, dtype=torch.float64) * 200  # 30% wrong matches
        assert corner_error(estimate_homography(a, b), H_TRUE, SHAPE) < 1e-3

    def test_too_few_matches_fail(self):
        a = grid_points(3)
        assert estimate_homography(a, warp_points(a, H_TRUE)) is None
        assert corner_error(None, H_TRUE, SHAPE) == math.inf

    def test_mismatched_inputs_raise(self):
        with pytest.raises(ValueError, match="matched row by row"):
            estimate_homography(grid_points(5), grid_points(6))
        with pytest.raises(ValueError, match=r"points_b must be \[K, 2\]"):
            estimate_homography(grid_points(5), torch.zeros(5, 3))


class TestCornerError:
    def test_translated_estimate_moves_every_corner_by_the_shift(self):
        shift = torch.tensor([[1.0, 0, 2.0], [0, 1.0, 1.0], [0, 0, 1.0]], dtype=torch.float64)
        assert corner_error(shift @ H_TRUE, H_TRUE, SHAPE) == pytest.approx(math.sqrt(5.0))

    def test_scaled_estimate_hand_value_uses_width_and_height(self):
        # H_est = diag(1.01) vs identity on a 100x200 (H x W) image: corners move by 1% of their position
        scaled = torch.diag(torch.tensor([1.01, 1.01, 1.0], dtype=torch.float64))
        expected = (0.0 + 1.99 + 0.99 + math.hypot(1.99, 0.99)) / 4
        assert corner_error(scaled, torch.eye(3, dtype=torch.float64), SHAPE) == pytest.approx(
            expected
        )
        # (rpautrat's (row, col) corners would give (0 + 0.99 + 1.99 + ...)/4 only for square images)
        assert corner_error(scaled, torch.eye(3, dtype=torch.float64), (200, 100)) == pytest.approx(
            expected
        )

    def test_corner_at_infinity_is_a_failure(self):
        bad = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [-1.0 / 199.0, 0, 1.0]], dtype=torch.float64)
        assert corner_error(bad, torch.eye(3, dtype=torch.float64), SHAPE) == math.inf


class TestMetric:
    def test_perfect_matches_give_accuracy_one(self):
        metric = HomographyAccuracy()
        a = grid_points()
        metric.update(
            [a, a[:20]],
            [warp_points(a, H_TRUE), warp_points(a[:20], H_TRUE)],
            torch.stack([H_TRUE] * 2),
            SHAPE,
        )
        out = metric.compute()
        assert set(out) == {
            "accuracy@1",
            "accuracy@3",
            "accuracy@5",
            "median_corner_error",
            "failure_rate",
        }
        assert out["accuracy@1"] == 1 and out["accuracy@3"] == 1 and out["accuracy@5"] == 1
        assert out["median_corner_error"] < 1e-5 and out["failure_rate"] == 0

    def test_known_errors_and_failures_per_threshold(self):
        """Pairs with corner errors 0, sqrt(5) (shift (2, 1)), 4.5 (shift (4.5, 0)) and a failure."""
        metric = HomographyAccuracy(thresholds=(1, 3, 5))
        a = grid_points()
        b = warp_points(a, H_TRUE)
        metric.update(
            [a, a],
            [b, b + torch.tensor([2.0, 1.0], dtype=torch.float64)],
            torch.stack([H_TRUE] * 2),
            SHAPE,
        )
        metric.update(
            [a, a[:3]],
            [b + torch.tensor([4.5, 0.0], dtype=torch.float64), b[:3]],
            torch.stack([H_TRUE] * 2),
            SHAPE,
        )
        out = metric.compute()
        assert out["accuracy@1"] == pytest.approx(1 / 4)
        assert out["accuracy@3"] == pytest.approx(2 / 4)
        assert out["accuracy@5"] == pytest.approx(3 / 4)
        assert out["failure_rate"] == pytest.approx(1 / 4)
        assert out["median_corner_error"] == pytest.approx(
            math.sqrt(5.0), abs=1e-4
        )  # lower median of 4
        errors = torch.cat(metric.corner_errors)
        assert errors[1] == pytest.approx(math.sqrt(5.0), abs=1e-5) and errors[2] == pytest.approx(
            4.5, abs=1e-5
        )

    def test_split_updates_merge_like_one_metric(self):
        a = grid_points()
        b = warp_points(a, H_TRUE)
        pairs = ([a, a, a[:2]], [b, b + 2.5, b[:2]])
        whole = HomographyAccuracy()
        whole.update(*pairs, torch.stack([H_TRUE] * 3), SHAPE)
        first, second = HomographyAccuracy(), HomographyAccuracy()
        first.update(pairs[0][:1], pairs[1][:1], H_TRUE[None], SHAPE)
        second.update(pairs[0][1:], pairs[1][1:], torch.stack([H_TRUE] * 2), SHAPE)
        first.merge_state(second)  # what DDP's cat reduction does
        for key, value in whole.compute().items():
            assert first.compute()[key] == pytest.approx(float(value))

    def test_bad_inputs(self):
        with pytest.raises(ValueError, match="thresholds"):
            HomographyAccuracy(thresholds=())
        with pytest.raises(ValueError, match="ransac_threshold"):
            HomographyAccuracy(ransac_threshold=0)
        metric = HomographyAccuracy()
        with pytest.raises(ValueError, match=r"\[B, 3, 3\]"):
            metric.update([grid_points()], [grid_points()], torch.eye(2), SHAPE)
        with pytest.raises(ValueError, match="points_b has 0 entries, homography has B=1"):
            metric.update([grid_points()], [], torch.eye(3)[None], SHAPE)
