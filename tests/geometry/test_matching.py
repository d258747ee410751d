"""Tests for pixelwise.geometry.matching."""

import math

import pytest
import torch

from pixelwise.geometry.matching import match_descriptors, ransac_homography, ransac_inliers


def brute_force(desc_a, desc_b, mutual, max_distance):
    a = [v / v.norm() for v in desc_a]
    b = [v / v.norm() for v in desc_b]

    def nearest(v, pool):
        dists = [float((v - w).norm()) for w in pool]
        best = min(range(len(pool)), key=lambda i: dists[i])
        return best, dists[best]

    matches = []
    for i, v in enumerate(a):
        j, d = nearest(v, b)
        if mutual and nearest(b[j], a)[0] != i:
            continue
        if max_distance is not None and d > max_distance:
            continue
        matches.append([i, j])
    return torch.tensor(matches, dtype=torch.long).reshape(-1, 2)


class TestMatchDescriptors:
    @pytest.mark.parametrize("mutual", [True, False])
    @pytest.mark.parametrize("max_distance", [None, 0.7, 1.2])
    def test_vs_brute_force(self, mutual, max_distance):
        g = torch.Generator().manual_seed(0)
        desc_a = torch.randn(40, 8, generator=g)
        # b: noisy copies of some a (true matches) plus distractors, shuffled.
        desc_b = torch.cat(
            [desc_a[:25] + 0.3 * torch.randn(25, 8, generator=g), torch.randn(20, 8, generator=g)]
        )
        desc_b = desc_b[torch.randperm(45, generator=g)]
        expected = brute_force(desc_a, desc_b, mutual, max_distance)
        result = match_descriptors(desc_a, desc_b, mutual=mutual, max_distance=max_distance)
        assert result.dtype == torch.long
        assert torch.equal(result, expected)
        assert len(result) > 0

    def test_hand_case(self):
        desc_a = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
        desc_b = torch.tensor([[0.0, 2.0], [3.0, 0.1]])
        # a0 -> b1 (mutual), a1 -> b0 (mutual, b0's nearest a is a1), a2 -> one of them but not mutual.
        assert torch.equal(
            match_descriptors(desc_a, desc_b, max_distance=None), torch.tensor([[0, 1], [1, 0]])
        )
        # a2 at 45 deg: its nearest is b1 (at atan(0.1 / 3) deg), 2 sin(43.09 / 2 deg) ~ 0.735 > 0.7 away.
        non_mutual = match_descriptors(desc_a, desc_b, mutual=False, max_distance=0.7)
        assert torch.equal(non_mutual, torch.tensor([[0, 1], [1, 0]]))
        assert math.isclose(
            2 * math.sin((math.pi / 4 - math.atan(0.1 / 3)) / 2), 0.7346, abs_tol=1e-3
        )
        assert len(match_descriptors(desc_a, desc_b, mutual=False, max_distance=0.8)) == 3

    def test_empty_inputs(self):
        assert match_descriptors(torch.zeros(0, 4), torch.randn(3, 4)).shape == (0, 2)
        assert match_descriptors(torch.randn(3, 4), torch.zeros(0, 4)).shape == (0, 2)

    def test_bad_input(self):
        with pytest.raises(ValueError, match=r"desc_a.*\[N, D\]"):
            match_descriptors(torch.zeros(2, 3, 4), torch.zeros(2, 4))
        with pytest.raises(ValueError, match="descriptor dimension"):
            match_descriptors(torch.zeros(2, 3), torch.zeros(2, 4))
        with pytest.raises(ValueError, match="max_distance"):
            match_descriptors(torch.zeros(2, 3), torch.zeros(2, 3), max_distance=-1.0)


class TestRansacHomography:
    H = torch.tensor([[1.1, 0.05, 3.0], [-0.02, 0.95, -2.0], [1e-4, 0.0, 1.0]], dtype=torch.float64)

    def points(self, n=40):
        g = torch.Generator().manual_seed(0)
        a = torch.rand(n, 2, generator=g, dtype=torch.float64) * 200
        ah = torch.cat([a, torch.ones(n, 1, dtype=torch.float64)], 1) @ self.H.T
        return a, ah[:, :2] / ah[:, 2:]

    def test_recovers_a_known_homography_and_flags_wrong_matches(self):
        a, b = self.points()
        b[:5] += 50.0
        h, inliers = ransac_homography(a, b, threshold=1.0)
        assert inliers.tolist() == [False] * 5 + [True] * 35
        torch.testing.assert_close(h / h[2, 2], self.H, atol=1e-4, rtol=0)

    def test_too_few_or_degenerate_matches_give_none(self):
        a, b = self.points(3)
        h, inliers = ransac_homography(a, b)
        assert h is None and inliers.tolist() == [False] * 3
        same = torch.zeros(6, 2, dtype=torch.float64)
        assert ransac_homography(same, same)[0] is None

    def test_bad_shapes_are_errors(self):
        with pytest.raises(ValueError, match="matched row by row"):
            ransac_homography(torch.zeros(5, 2), torch.zeros(6, 2))
        with pytest.raises(ValueError, match=r"points_b must be \[K, 2\]"):
            ransac_homography(torch.zeros(5, 2), torch.zeros(5, 3))

    def test_ransac_inliers_indexes_the_matches(self):
        a, b = self.points()
        perm = torch.randperm(40, generator=torch.Generator().manual_seed(1))
        matches = torch.stack([torch.arange(40), perm.argsort()], 1)  # a_i <-> b_perm^-1
        h, inliers = ransac_inliers(a, b[perm], matches, threshold=1.0)
        assert inliers.all() and abs(h[0, 0] / h[2, 2] - 1.1) < 1e-4
