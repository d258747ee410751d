"""NN mAP and matching score against naive loops, hand-made cases, binary descriptors with ties."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pixelwise.metrics.descriptor_metrics import (
    DescriptorMetrics,
    descriptor_distances,
    keep_shared_points,
    nn_average_precision,
    pair_descriptor_scores,
)

SHAPE_A, SHAPE_B = (60, 80), (70, 90)
H = torch.tensor([[1.05, 0.05, 4.0], [-0.04, 1.1, 2.0], [1e-4, 2e-4, 1.0]], dtype=torch.float64)


# ---------------------------------------------------------------- naive references (plain loops)


def naive_warp(h: np.ndarray, p) -> tuple[float, float]:
    v = h @ np.array([p[0], p[1], 1.0])
    return v[0] / v[2], v[1] / v[2]


def naive_shared(kp, sc, h, shape, top_k):
    keep = []
    for i in range(len(kp)):
        x, y = naive_warp(h, kp[i])
        if 0 <= x < shape[1] and 0 <= y < shape[0]:
            keep.append(i)
    keep.sort(key=lambda i: (-sc[i], i))
    return keep if top_k is None else keep[:top_k]


def naive_direction(ka, da, kb, db, h, distance, recall_base, mutual):
    if not len(ka) or not len(kb):
        return 0.0, 0.0
    unit = lambda v: v / np.linalg.norm(v)  # noqa: E731
    da = [unit(v) for v in da]
    db = [unit(v) for v in db]
    dd = [[float(np.linalg.norm(da[i] - db[j])) for j in range(len(db))] for i in range(len(da))]
    nn, nn_d, correct, n_gt = [], [], [], 0
    for i in range(len(ka)):
        j = min(range(len(kb)), key=lambda j: (dd[i][j], j))
        wx, wy = naive_warp(h, ka[i])
        geo = [math.hypot(wx - kb[m][0], wy - kb[m][1]) for m in range(len(kb))]
        nn.append(j)
        nn_d.append(dd[i][j])
        correct.append(geo[j] <= distance)
        n_gt += any(g <= distance for g in geo)
    base = n_gt if recall_base == "correspondences" else sum(correct)
    ap, prev_recall = 0.0, 0.0
    if base > 0:
        for t in sorted(set(nn_d)):
            retrieved = [i for i in range(len(ka)) if nn_d[i] <= t]
            tp = sum(correct[i] for i in retrieved)
            recall = tp / base
            ap += (recall - prev_recall) * tp / len(retrieved)
            prev_recall = recall
    found = 0
    for i in range(len(ka)):
        if not correct[i]:
            continue
        if mutual:
            back = min(range(len(ka)), key=lambda m: (dd[m][nn[i]], m))
            if back != i:
                continue
        found += 1
    return ap, found / len(ka)


def naive_pair(
    kp_a,
    sc_a,
    d_a,
    kp_b,
    sc_b,
    d_b,
    h,
    distance=3.0,
    top_k=None,
    recall_base="correspondences",
    mutual=False,
):
    h = h.numpy()
    h_inv = np.linalg.inv(h)
    kp_a, kp_b = kp_a.double().numpy(), kp_b.double().numpy()
    d_a, d_b = d_a.double().numpy(), d_b.double().numpy()
    ia = naive_shared(kp_a, sc_a.numpy(), h, SHAPE_B, top_k)
    ib = naive_shared(kp_b, sc_b.numpy(), h_inv, SHAPE_A, top_k)
    ab = naive_direction(kp_a[ia], d_a[ia], kp_b[ib], d_b[ib], h, distance, recall_base, mutual)
    ba = naive_direction(kp_b[ib], d_b[ib], kp_a[ia], d_a[ia], h_inv, distance, recall_base, mutual)
    return (ab[0] + ba[0]) / 2, (ab[1] + ba[1]) / 2


def random_pair(seed: int, dim: int = 32, binary: bool = False, n: int = 40):
    """Keypoints of a and b related by H (with noise, outliers, points outside the other view)."""
    g = torch.Generator().manual_seed(seed)
    kp_a = torch.rand(n, 2, generator=g, dtype=torch.float64) * torch.tensor([79.0, 59.0])
    kp_b = torch.cat(
        [
            torch.from_numpy(np.array([naive_warp(H.numpy(), p) for p in kp_a.numpy()]))[: n // 2]
            + torch.randn(n // 2, 2, generator=g, dtype=torch.float64) * 1.5,
            torch.rand(n // 2, 2, generator=g, dtype=torch.float64) * torch.tensor([89.0, 69.0]),
        ]
    )
    if binary:
        d_a = torch.randint(0, 2, (n, dim), generator=g).double() * 2 - 1
        flip = torch.rand(n, dim, generator=g) < 0.15
        d_b = torch.cat(
            [
                torch.where(flip[: n // 2], -d_a[: n // 2], d_a[: n // 2]),
                torch.randint(0, 2, (n // 2, dim), generator=g).double() * 2 - 1,
            ]
        )
    else:
        d_a = torch.randn(n, dim, generator=g, dtype=torch.float64)
        d_b = torch.cat(
            [
                d_a[: n // 2] + 0.6 * torch.randn(n // 2, dim, generator=g, dtype=torch.float64),
                torch.randn(n // 2, dim, generator=g, dtype=torch.float64),
            ]
        )
    sc_a = torch.rand(n, generator=g, dtype=torch.float64)
    sc_b = torch.rand(n, generator=g, dtype=torch.float64)
    return kp_a.float(), sc_a.float(), d_a.float(), kp_b.float(), sc_b.float(), d_b.float()


# ---------------------------------------------------------------- tests


class TestAgainstNaiveLoops:
    @pytest.mark.parametrize("seed", [0, 1, 2])
    @pytest.mark.parametrize("top_k", [None, 25])
    @pytest.mark.parametrize("recall_base", ["correspondences", "correct_matches"])
    def test_float_descriptors(self, seed, top_k, recall_base):
        pair = random_pair(seed)
        got = pair_descriptor_scores(*pair[:6], H, SHAPE_A, SHAPE_B, 3.0, top_k, recall_base)
        want = naive_pair(*pair, H, 3.0, top_k, recall_base)
        assert got == pytest.approx(want, abs=1e-9)
        assert 0 < got[0] and 0 < got[1] < 1  # not a trivial case

    @pytest.mark.parametrize("seed", [3, 4])
    @pytest.mark.parametrize("mutual", [False, True])
    def test_binary_descriptors_with_distance_ties(self, seed, mutual):
        pair = random_pair(seed, dim=16, binary=True)
        got = pair_descriptor_scores(
            *pair[:6], H, SHAPE_A, SHAPE_B, 3.0, None, "correspondences", mutual
        )
        want = naive_pair(*pair, H, 3.0, None, "correspondences", mutual)
        assert got == pytest.approx(want, abs=1e-9)

    def test_metric_is_the_mean_over_pairs_and_merges(self):
        pairs = [random_pair(s) for s in (5, 6, 7)]
        metric = DescriptorMetrics(top_k=30)
        for p in pairs[:2]:
            metric.update(*[[t] for t in p], H[None], SHAPE_A, SHAPE_B)
        other = DescriptorMetrics(top_k=30)
        other.update(*[[t] for t in pairs[2]], H[None], SHAPE_A, SHAPE_B)
        metric.merge_state(other)  # the DDP sum reduction
        per_pair = [naive_pair(*p, H, 3.0, 30) for p in pairs]
        out = metric.compute()
        assert float(out["nn_map"]) == pytest.approx(np.mean([p[0] for p in per_pair]), abs=1e-6)
        assert float(out["matching_score"]) == pytest.approx(
            np.mean([p[1] for p in per_pair]), abs=1e-6
        )


class TestHandCases:
    def test_nn_average_precision_hand_value(self):
        d = torch.tensor([0.2, 0.1, 0.5, 0.2])
        correct = torch.tensor([True, True, False, False])
        # thresholds 0.1: P 1, R 1/3; 0.2: P 2/3, R 2/3; 0.5: P 1/2, R 2/3
        assert nn_average_precision(d, correct, 3) == pytest.approx(1 / 3 + 1 / 3 * 2 / 3)
        assert nn_average_precision(d, correct, 2) == pytest.approx(1 / 2 + 1 / 2 * 2 / 3)
        assert nn_average_precision(d, correct, 0) == 0.0

    def test_perfect_descriptors_score_one(self):
        kp_a = torch.tensor([[10.0, 10.0], [30.0, 20.0], [50.0, 40.0], [20.0, 45.0]])
        kp_b = torch.from_numpy(np.array([naive_warp(H.numpy(), p) for p in kp_a.numpy()])).float()
        desc = torch.eye(4)
        scores = torch.ones(4)
        ap, ms = pair_descriptor_scores(kp_a, scores, desc, kp_b, scores, desc, H, SHAPE_A, SHAPE_B)
        assert (ap, ms) == (pytest.approx(1.0), pytest.approx(1.0))

    def test_swapped_descriptors(self):
        """Two of four descriptors swapped: half the NN matches land 10 px off."""
        kp = torch.tensor([[10.0, 10.0], [20.0, 10.0], [30.0, 10.0], [40.0, 10.0]])
        desc_a, desc_b = torch.eye(4), torch.eye(4)[[0, 1, 3, 2]]
        eye = torch.eye(3, dtype=torch.float64)
        s = torch.ones(4)
        ap, ms = pair_descriptor_scores(kp, s, desc_a, kp, s, desc_b, eye, SHAPE_A, SHAPE_A)
        # one threshold (all NN distances 0): precision 2/4, recall 2/4 of 4 correspondences
        assert ap == pytest.approx(0.25) and ms == pytest.approx(0.5)
        ap, _ = pair_descriptor_scores(
            kp, s, desc_a, kp, s, desc_b, eye, SHAPE_A, SHAPE_A, recall_base="correct_matches"
        )
        assert ap == pytest.approx(0.5)

    def test_mutual_matching_score_drops_one_sided_matches(self):
        kp = torch.tensor([[10.0, 10.0], [20.0, 10.0]])
        desc_a = torch.tensor([[1.0, 0, 0], [0.8, 0.6, 0]])
        desc_b = torch.tensor([[0, 0, 1.0], [1.0, 0, 0]])
        eye = torch.eye(3, dtype=torch.float64)
        s = torch.ones(2)
        # a1 -> b1 correct (a0 -> b1 wrong); b0 -> a0 correct by the tie rule (b1 -> a0 wrong): 1/2 each way
        _, ms = pair_descriptor_scores(kp, s, desc_a, kp, s, desc_b, eye, SHAPE_A, SHAPE_A)
        assert ms == pytest.approx(0.5)
        # neither correct match is mutual (b1's nearest is a0, a0's nearest is b1)
        _, ms = pair_descriptor_scores(
            kp, s, desc_a, kp, s, desc_b, eye, SHAPE_A, SHAPE_A, mutual_matching_score=True
        )
        assert ms == 0.0

    def test_keep_shared_points_hand_case(self):
        kp = torch.tensor([[0.0, 0.0], [79.5, 10.0], [80.0, 10.0], [-0.1, 5.0], [10.0, 59.9]])
        scores = torch.tensor([0.5, 0.9, 1.0, 1.0, 0.5])
        eye = torch.eye(3, dtype=torch.float64)
        assert keep_shared_points(kp, scores, eye, (60, 80)).tolist() == [1, 0, 4]
        assert keep_shared_points(kp, scores, eye, (60, 80), top_k=2).tolist() == [1, 0]
        shift = torch.tensor([[1.0, 0, 1.0], [0, 1.0, 0], [0, 0, 1.0]], dtype=torch.float64)
        assert keep_shared_points(kp, scores, shift, (60, 80)).tolist() == [3, 0, 4]

    def test_empty_sides_score_zero(self):
        pair = random_pair(0)
        none = (torch.zeros(0, 2), torch.zeros(0), torch.zeros(0, 32))
        assert pair_descriptor_scores(*pair[:3], *none, H, SHAPE_A, SHAPE_B) == (0.0, 0.0)


def test_binary_descriptor_distance_is_a_function_of_hamming():
    g = torch.Generator().manual_seed(0)
    a = torch.randint(0, 2, (20, 256), generator=g).float() * 2 - 1
    b = torch.randint(0, 2, (30, 256), generator=g).float() * 2 - 1
    hamming = (a[:, None, :] != b[None, :, :]).sum(-1).double()
    assert torch.allclose(
        descriptor_distances(a, b).double(), 2 * torch.sqrt(hamming / 256), atol=1e-6
    )


class TestBadInput:
    def test_constructor(self):
        with pytest.raises(ValueError, match="recall_base='all' is invalid"):
            DescriptorMetrics(recall_base="all")
        with pytest.raises(ValueError, match="top_k"):
            DescriptorMetrics(top_k=0)
        with pytest.raises(ValueError, match="distance"):
            DescriptorMetrics(distance=-1)

    def test_update(self):
        kp_a, sc_a, d_a, kp_b, sc_b, d_b = random_pair(0)
        metric = DescriptorMetrics()
        with pytest.raises(ValueError, match="descriptor dimensions differ"):
            metric.update(
                [kp_a], [sc_a], [d_a], [kp_b], [sc_b], [d_b[:, :16]], H[None], SHAPE_A, SHAPE_B
            )
        with pytest.raises(ValueError, match=r"descriptors_b \[N, D\]"):
            metric.update(
                [kp_a], [sc_a], [d_a], [kp_b], [sc_b], [d_b[:5]], H[None], SHAPE_A, SHAPE_B
            )
        with pytest.raises(ValueError, match="scores_a has 2 entries"):
            metric.update(
                [kp_a], [sc_a, sc_a], [d_a], [kp_b], [sc_b], [d_b], H[None], SHAPE_A, SHAPE_B
            )
        with pytest.raises(ValueError, match=r"\[B, 3, 3\]"):
            metric.update(
                [kp_a], [sc_a], [d_a], [kp_b], [sc_b], [d_b], torch.eye(4), SHAPE_A, SHAPE_B
            )
