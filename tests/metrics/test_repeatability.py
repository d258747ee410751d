"""Tests for pixelwise.metrics.repeatability against a hand case and a naive loop."""

import math

import pytest
import torch

from pixelwise.geometry.homography import sample_homography, warp_points
from pixelwise.metrics.repeatability import Repeatability

SHAPE = (64, 80)


def translation(tx, ty):
    return torch.tensor([[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]])


def naive_pair(kp_a, sc_a, kp_b, sc_b, h, shape, eps, k):
    """The reference's steps with Python loops: filter, keep top-k, count both ways."""
    height, width = shape
    h = h.double()
    h_inv = torch.linalg.inv(h)

    def apply(m, p):
        v = m @ torch.tensor([float(p[0]), float(p[1]), 1.0], dtype=torch.float64)
        return (float(v[0] / v[2]), float(v[1] / v[2]))

    def inside(p):
        return 0 <= p[0] < width and 0 <= p[1] < height

    set1 = [(apply(h, p), float(s)) for p, s in zip(kp_a, sc_a, strict=True) if inside(apply(h, p))]
    set2 = [
        ((float(p[0]), float(p[1])), float(s))
        for p, s in zip(kp_b, sc_b, strict=True)
        if inside(apply(h_inv, p))
    ]
    set1 = [p for p, _ in sorted(set1, key=lambda t: -t[1])[:k]]
    set2 = [p for p, _ in sorted(set2, key=lambda t: -t[1])[:k]]
    if not set1 and not set2:
        return None

    def near(p, pool):
        return pool and min(math.dist(p, q) for q in pool) <= eps

    count = sum(bool(near(p, set2)) for p in set1) + sum(bool(near(q, set1)) for q in set2)
    return count / (len(set1) + len(set2))


class TestRepeatability:
    def test_hand_case(self):
        kp_a = torch.tensor([[10.0, 10.0], [20.0, 20.0], [50.0, 50.0]])
        # H shifts by (5, 0): a-points land at (15, 10), (25, 20), (55, 50).
        kp_b = torch.tensor([[15.0, 10.0], [25.0, 22.0], [78.0, 30.0]])
        # (78, 30) comes from (73, 30), inside a: kept, but nothing within 3 px of it.
        # count1 = 2 ((15,10) and (25,20)), count2 = 2, N1 = 3, N2 = 3 -> 4/6.
        metric = Repeatability(distance=3.0)
        metric.update(
            [kp_a], [torch.ones(3)], [kp_b], [torch.ones(3)], translation(5, 0)[None], SHAPE
        )
        assert math.isclose(float(metric.compute()), 4 / 6, rel_tol=1e-6)

    def test_points_outside_the_shared_region_are_dropped(self):
        kp_a = torch.tensor([[10.0, 10.0], [2.0, 30.0]])  # (2, 30) -> (-8, 30): outside b
        kp_b = torch.tensor([[0.0, 10.0], [75.0, 5.0]])  # (75, 5) <- (85, 5): outside a
        # Left: (10,10) -> (0,10) matches (0,10) exactly -> 2 / 2.
        metric = Repeatability()
        metric.update(
            [kp_a], [torch.ones(2)], [kp_b], [torch.ones(2)], translation(-10, 0)[None], SHAPE
        )
        assert math.isclose(float(metric.compute()), 1.0)

    def test_top_k_keeps_best_scores(self):
        kp_a = torch.tensor([[10.0, 10.0], [30.0, 30.0]])
        kp_b = torch.tensor([[10.0, 10.0], [60.0, 40.0]])
        eye = torch.eye(3)[None]
        # top-1: a keeps (30,30) (score 0.9), b keeps (10,10) (score 0.8): no repeat.
        metric = Repeatability(top_k=1)
        metric.update(
            [kp_a], [torch.tensor([0.1, 0.9])], [kp_b], [torch.tensor([0.8, 0.2])], eye, SHAPE
        )
        assert float(metric.compute()) == 0.0
        # top-2: count1 = 1, count2 = 1 -> 2 / 4.
        metric = Repeatability(top_k=2)
        metric.update(
            [kp_a], [torch.tensor([0.1, 0.9])], [kp_b], [torch.tensor([0.8, 0.2])], eye, SHAPE
        )
        assert math.isclose(float(metric.compute()), 0.5)

    def test_vs_naive_loop_over_batches(self):
        g = torch.Generator().manual_seed(0)
        homs = sample_homography(6, SHAPE, generator=g)
        kps_a, scs_a, kps_b, scs_b, expected = [], [], [], [], []
        for i in range(6):
            kp_a = torch.rand(40, 2, generator=g) * torch.tensor([SHAPE[1] - 1.0, SHAPE[0] - 1.0])
            # b: some true points warped with noise, plus random ones.
            true_b = warp_points(kp_a[:25], homs[i]) + torch.randn(25, 2, generator=g) * 2.0
            kp_b = torch.cat(
                [
                    true_b,
                    torch.rand(20, 2, generator=g) * torch.tensor([SHAPE[1] - 1.0, SHAPE[0] - 1.0]),
                ]
            )
            sc_a, sc_b = torch.rand(40, generator=g), torch.rand(45, generator=g)
            kps_a.append(kp_a)
            kps_b.append(kp_b)
            scs_a.append(sc_a)
            scs_b.append(sc_b)
            expected.append(naive_pair(kp_a, sc_a, kp_b, sc_b, homs[i], SHAPE, 3.0, 30))
        metric = Repeatability(distance=3.0, top_k=30)
        metric.update(kps_a[:4], scs_a[:4], kps_b[:4], scs_b[:4], homs[:4], SHAPE)
        metric.update(kps_a[4:], scs_a[4:], kps_b[4:], scs_b[4:], homs[4:], SHAPE)
        values = [e for e in expected if e is not None]
        assert len(values) == 6
        assert math.isclose(float(metric.compute()), sum(values) / len(values), rel_tol=1e-6)
        assert 0.1 < float(metric.compute()) < 0.95

    def test_localization_error(self):
        kp_a = torch.tensor([[10.0, 10.0], [20.0, 20.0]])
        kp_b = torch.tensor([[10.0, 11.0], [22.0, 20.0]])
        # Each point's nearest is 1 and 2 px away in both directions: mean (1 + 2 + 1 + 2) / 4.
        metric = Repeatability(localization_error=True)
        metric.update([kp_a], [torch.ones(2)], [kp_b], [torch.ones(2)], torch.eye(3)[None], SHAPE)
        out = metric.compute()
        assert math.isclose(float(out["repeatability"]), 1.0)
        assert math.isclose(float(out["localization_error"]), 1.5, rel_tol=1e-6)

    def test_empty_pairs_are_skipped(self):
        metric = Repeatability()
        empty = torch.zeros(0, 2)
        metric.update(
            [empty], [torch.zeros(0)], [empty], [torch.zeros(0)], torch.eye(3)[None], SHAPE
        )
        assert float(metric.compute()) == 0.0 and int(metric.pairs) == 0
        # One side empty: a pair with N1 + N2 > 0 and nothing repeated.
        metric.update(
            [torch.tensor([[5.0, 5.0]])],
            [torch.ones(1)],
            [empty],
            [torch.zeros(0)],
            torch.eye(3)[None],
            SHAPE,
        )
        assert float(metric.compute()) == 0.0 and int(metric.pairs) == 1

    def test_bad_input(self):
        metric = Repeatability()
        kp = [torch.zeros(2, 2)]
        sc = [torch.ones(2)]
        with pytest.raises(ValueError, match="keypoints_b has 2 entries"):
            metric.update(kp, sc, kp * 2, sc * 2, torch.eye(3)[None], SHAPE)
        with pytest.raises(ValueError, match=r"homography.*\[B, 3, 3\]"):
            metric.update(kp, sc, kp, sc, torch.eye(4)[None], SHAPE)
        with pytest.raises(ValueError, match=r"keypoints_a must be \[N, 2\]"):
            metric.update([torch.zeros(2, 3)], sc, kp, sc, torch.eye(3)[None], SHAPE)
        with pytest.raises(ValueError, match="top_k"):
            Repeatability(top_k=0)


class TestRepeatabilityGain:
    def test_two_models_on_the_same_pairs_and_the_gain(self):
        from pixelwise.metrics.repeatability import RepeatabilityGain

        def pts(*p):
            return torch.tensor(p, dtype=torch.float32)

        def dets(a, b):
            return ([a], [torch.ones(len(a))], [b], [torch.ones(len(b))])

        metric = RepeatabilityGain(["student", "teacher"], distance=3.0, top_k=None)
        # student: both points repeat -> 1; teacher: only (10,10) repeats, both ways -> 2 / 4
        metric.update(
            {
                "student": dets(pts([10, 10], [20, 20]), pts([10, 10], [21, 20])),
                "teacher": dets(pts([10, 10], [20, 20]), pts([10, 10], [50, 50])),
            },
            torch.eye(3)[None],
            (64, 64),
        )
        out = metric.compute()
        assert float(out["student/repeatability"]) == pytest.approx(1.0)
        assert float(out["student/localization_error"]) == pytest.approx(0.5)
        assert float(out["teacher/repeatability"]) == pytest.approx(0.5)
        assert float(out["gain"]) == pytest.approx(1.0)  # 1 / 0.5 - 1
        metric.reset()
        assert float(metric.compute()["gain"]) == 0.0  # no pairs: a reference of 0 gives 0
        with pytest.raises(KeyError, match="teacher"):
            metric.update({"student": dets(pts([1, 1]), pts([1, 1]))}, torch.eye(3)[None], (8, 8))
