"""Tests for pixelwise.losses.descriptor_hinge against a naive loop over all cell pairs."""

import math

import pytest
import torch

from pixelwise.geometry.homography import sample_homography
from pixelwise.losses.descriptor_hinge import (
    _PairHinge,
    cell_centers,
    descriptor_hinge_loss,
    positive_pairs,
)

HC, WC, D, CS = 3, 4, 4, 8
LAMBDA, MP, MN = 250.0, 1.0, 0.2


def naive_loss(
    desc_a, desc_b, homs, mask=None, normalization="pairs", dot_normalization="none", radius=8.0
):
    """Four loops over (h, w, h', w') per image, straight from the definition; returns (loss, pos, neg)."""
    batch = desc_a.shape[0]
    per_image, totals = [], []
    for b in range(batch):
        a = desc_a[b] / desc_a[b].norm(dim=0, keepdim=True)
        d = desc_b[b] / desc_b[b].norm(dim=0, keepdim=True)
        h = homs[b].double()
        dots = torch.zeros(HC, WC, HC, WC, dtype=desc_a.dtype)
        for i in range(HC):
            for j in range(WC):
                for k in range(HC):
                    for m in range(WC):
                        dots[i, j, k, m] = (a[:, i, j] * d[:, k, m]).sum()
        if dot_normalization == "relu_l2":
            dots = dots.clamp_min(0)
            flat = dots.reshape(HC * WC, HC * WC)
            flat = flat / flat.norm(dim=1, keepdim=True).clamp_min(1e-12)
            flat = flat / flat.norm(dim=0, keepdim=True).clamp_min(1e-12)
            dots = flat.reshape(HC, WC, HC, WC)
        pos = neg = desc_a.new_zeros(())
        valid_count = 0
        any_positive = False
        for k in range(HC):
            for m in range(WC):
                if mask is not None:
                    block = mask[b, CS * k : CS * k + CS, CS * m : CS * m + CS]
                    ok = (
                        bool(block.all())
                        if normalization == "valid"
                        else bool(block[3:5, 3:5].all())
                    )
                    if not ok:
                        continue
                valid_count += 1
                for i in range(HC):
                    for j in range(WC):
                        p = torch.tensor([CS * j + 3.5, CS * i + 3.5, 1.0], dtype=torch.float64)
                        q = h @ p
                        warped = q[:2] / q[2]
                        center_b = torch.tensor([CS * m + 3.5, CS * k + 3.5], dtype=torch.float64)
                        s = float(torch.linalg.norm(warped - center_b)) <= radius
                        any_positive |= s
                        if s:
                            pos = pos + LAMBDA * torch.clamp(MP - dots[i, j, k, m], min=0)
                        else:
                            neg = neg + torch.clamp(dots[i, j, k, m] - MN, min=0)
        if not any_positive:
            continue
        per_image.append((pos + neg) / (HC * WC * valid_count))
        totals.append((pos, neg, valid_count))
    if not totals:
        return None
    if normalization == "pairs":
        n_kept = len(per_image)
        pos = sum(t[0] / (HC * WC * t[2]) for t in totals) / n_kept
        neg = sum(t[1] / (HC * WC * t[2]) for t in totals) / n_kept
    else:
        denom = HC * WC * sum(t[2] for t in totals)
        pos = sum(t[0] for t in totals) / denom
        neg = sum(t[1] for t in totals) / denom
    return pos + neg, pos, neg


def make_inputs(batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    desc_a = torch.randn(batch, D, HC, WC, generator=g, dtype=torch.float64)
    desc_b = torch.randn(batch, D, HC, WC, generator=g, dtype=torch.float64)
    homs = sample_homography(batch, (HC * CS, WC * CS), patch_ratio=0.9, generator=g).double()
    return desc_a, desc_b, homs


def translation(tx, ty):
    return torch.tensor([[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]], dtype=torch.float64)


def grads(fn, desc_a, desc_b):
    a = desc_a.clone().requires_grad_(True)
    b = desc_b.clone().requires_grad_(True)
    fn(a, b).backward()
    return a.grad, b.grad


class TestPositivePairs:
    @pytest.mark.parametrize("radius", [0.0, 5.0, 7.5, 8.0, 12.0, 20.0])
    def test_vs_all_pairs_distances(self, radius):
        g = torch.Generator().manual_seed(int(radius * 10))
        hc, wc = 5, 7
        centers = cell_centers(hc, wc, CS)
        warped = torch.rand(3, hc * wc, 2, generator=g, dtype=torch.float64) * 80 - 12
        warped[0, :10] = centers[5:15]  # exactly on centres, and neighbours exactly 8 away
        warped[1, 0] = float("inf")
        warped[1, 1] = float("nan")
        warped[1, 2] = 1e12
        expected = (
            torch.cdist(
                warped.nan_to_num(1e30, 1e30, -1e30),
                centers[None].expand(3, -1, -1),
                compute_mode="donot_use_mm_for_euclid_dist",
            )
            <= radius
        )
        assert torch.equal(positive_pairs(warped, hc, wc, CS, radius), expected)


class TestDescriptorHingeLoss:
    def test_values_and_gradients_vs_naive_loop(self):
        desc_a, desc_b, homs = make_inputs()
        # One exact boundary case: a shift of exactly one cell puts neighbours at distance 8.
        homs[1] = translation(8.0, 0.0)
        expected = naive_loss(desc_a, desc_b, homs)[0]
        result = descriptor_hinge_loss(desc_a, desc_b, homs)
        assert torch.allclose(result, expected, rtol=1e-10)
        g_ours = grads(lambda a, b: descriptor_hinge_loss(a, b, homs), desc_a, desc_b)
        g_ref = grads(lambda a, b: naive_loss(a, b, homs)[0], desc_a, desc_b)
        for ours, ref in zip(g_ours, g_ref, strict=True):
            assert torch.allclose(ours, ref, rtol=1e-8, atol=1e-12)

    def test_positive_radius_matters_at_the_boundary(self):
        desc_a, desc_b, _ = make_inputs(1)
        homs = translation(8.0, 0.0)[None]
        at_8 = descriptor_hinge_loss(desc_a, desc_b, homs)
        at_7_5 = descriptor_hinge_loss(desc_a, desc_b, homs, positive_radius=7.5)
        assert torch.allclose(at_7_5, naive_loss(desc_a, desc_b, homs, radius=7.5)[0], rtol=1e-10)
        assert not torch.allclose(at_8, at_7_5)

    @pytest.mark.parametrize("normalization", ["pairs", "valid"])
    def test_mask_variants_vs_naive_loop(self, normalization):
        desc_a, desc_b, homs = make_inputs(seed=1)
        g = torch.Generator().manual_seed(5)
        mask = torch.ones(2, HC * CS, WC * CS, dtype=torch.bool)
        mask[0, :, :10] = False  # first column of cells invalid, second partly
        mask[1] = torch.rand(HC * CS, WC * CS, generator=g) > 0.02  # scattered holes
        expected, exp_pos, exp_neg = naive_loss(
            desc_a, desc_b, homs, mask=mask, normalization=normalization
        )
        out = descriptor_hinge_loss(
            desc_a,
            desc_b,
            homs,
            valid_mask_b=mask,
            normalization=normalization,
            return_components=True,
        )
        assert torch.allclose(out["loss"], expected, rtol=1e-10)
        assert torch.allclose(out["positive"], exp_pos, rtol=1e-10)
        assert torch.allclose(out["negative"], exp_neg, rtol=1e-10)
        assert int(out["skipped"]) == 0
        g_ours = grads(
            lambda a, b: descriptor_hinge_loss(
                a, b, homs, valid_mask_b=mask, normalization=normalization
            ),
            desc_a,
            desc_b,
        )
        g_ref = grads(
            lambda a, b: naive_loss(a, b, homs, mask=mask, normalization=normalization)[0],
            desc_a,
            desc_b,
        )
        for ours, ref in zip(g_ours, g_ref, strict=True):
            assert torch.allclose(ours, ref, rtol=1e-8, atol=1e-12)

    def test_mask_of_unpadded_image_size(self):
        # A mask of the 20x30 image, the net padded to 24x32: padding counts as invalid.
        desc_a, desc_b, homs = make_inputs(seed=2)
        small = torch.ones(2, 20, 30, dtype=torch.bool)
        padded = torch.zeros(2, 24, 32, dtype=torch.bool)
        padded[:, :20, :30] = True
        assert torch.allclose(
            descriptor_hinge_loss(desc_a, desc_b, homs, valid_mask_b=small),
            naive_loss(desc_a, desc_b, homs, mask=padded)[0],
            rtol=1e-10,
        )

    def test_reference_dot_normalization_vs_naive_loop(self):
        desc_a, desc_b, homs = make_inputs(seed=3)
        expected = naive_loss(desc_a, desc_b, homs, dot_normalization="relu_l2")[0]
        result = descriptor_hinge_loss(desc_a, desc_b, homs, dot_normalization="relu_l2")
        assert torch.allclose(result, expected, rtol=1e-10)
        g_ours = grads(
            lambda a, b: descriptor_hinge_loss(a, b, homs, dot_normalization="relu_l2"),
            desc_a,
            desc_b,
        )
        g_ref = grads(
            lambda a, b: naive_loss(a, b, homs, dot_normalization="relu_l2")[0], desc_a, desc_b
        )
        for ours, ref in zip(g_ours, g_ref, strict=True):
            assert torch.allclose(ours, ref, rtol=1e-7, atol=1e-12)

    def test_identical_descriptors_identity_hand_case(self):
        # One-hot descriptors, distinct per cell, H = identity: each a-cell's positives are
        # itself (dot 1: cost 0) and its 4-neighbours at distance 8 (dot 0: cost lambda*1);
        # negatives have dot 0 <= m_n: cost 0. Loss = lambda * (#neighbour pairs) / N^2.
        n = HC * WC
        desc = torch.eye(n, dtype=torch.float64)[:, :n].T.reshape(1, n, HC, WC)
        neighbour_pairs = 2 * ((HC - 1) * WC + HC * (WC - 1))
        loss = descriptor_hinge_loss(desc, desc, torch.eye(3, dtype=torch.float64)[None])
        assert math.isclose(float(loss), LAMBDA * neighbour_pairs / n**2, rel_tol=1e-12)

    @pytest.mark.parametrize(
        "bad",
        [
            torch.zeros(3, 3, dtype=torch.float64),  # singular
            torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 0]], dtype=torch.float64),  # rank 2
            torch.full((3, 3), float("nan"), dtype=torch.float64),
            translation(1000.0, 0.0),  # entirely out of view
        ],
    )
    def test_bad_homography_is_skipped_not_nan(self, bad):
        desc_a, desc_b, homs = make_inputs(seed=4)
        homs[0] = bad
        out = descriptor_hinge_loss(desc_a, desc_b, homs, return_components=True)
        assert int(out["skipped"]) == 1
        alone = descriptor_hinge_loss(desc_a[1:], desc_b[1:], homs[1:])
        assert torch.allclose(out["loss"], alone, rtol=1e-10)
        a = desc_a.clone().requires_grad_(True)
        descriptor_hinge_loss(a, desc_b, homs).backward()
        assert torch.isfinite(a.grad).all() and (a.grad[0] == 0).all()

    def test_all_skipped_gives_zero(self):
        desc_a, desc_b, _ = make_inputs(seed=4)
        homs = torch.zeros(2, 3, 3, dtype=torch.float64)
        a = desc_a.clone().requires_grad_(True)
        out = descriptor_hinge_loss(a, desc_b, homs, return_components=True)
        assert float(out["loss"].detach()) == 0.0 and int(out["skipped"]) == 2
        out["loss"].backward()
        assert torch.equal(a.grad, torch.zeros_like(a))

    def test_components_add_up(self):
        desc_a, desc_b, homs = make_inputs(seed=6)
        out = descriptor_hinge_loss(desc_a, desc_b, homs, return_components=True)
        _, pos, neg = naive_loss(desc_a, desc_b, homs)
        assert torch.allclose(out["positive"], pos, rtol=1e-10) and torch.allclose(
            out["negative"], neg, rtol=1e-10
        )
        assert torch.allclose(out["loss"], out["positive"] + out["negative"])

    def test_float32_matches_float64(self):
        desc_a, desc_b, homs = make_inputs(seed=7)
        l64 = descriptor_hinge_loss(desc_a, desc_b, homs)
        l32 = descriptor_hinge_loss(desc_a.float(), desc_b.float(), homs.float())
        assert l32.dtype == torch.float32 and torch.allclose(l32.double(), l64, rtol=1e-5)

    def test_pair_hinge_gradcheck(self):
        g = torch.Generator().manual_seed(8)
        a = torch.randn(2, 5, 3, generator=g, dtype=torch.float64, requires_grad=True)
        b = torch.randn(2, 3, 6, generator=g, dtype=torch.float64, requires_grad=True)
        s = torch.rand(2, 5, 6, generator=g) > 0.6
        w = torch.rand(2, 6, generator=g, dtype=torch.float64)
        assert torch.autograd.gradcheck(lambda x, y: _PairHinge.apply(x, y, s, w, 1.0, 0.2), (a, b))

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"desc_b": torch.zeros(2, D, HC, WC + 1)}, "same shape"),
            ({"desc_a": torch.zeros(D, HC, WC)}, r"desc_a.*\[B, D, Hc, Wc\]"),
            ({"homography": torch.zeros(2, 2, 3)}, r"homography.*\[B=2, 3, 3\]"),
            ({"valid_mask_b": torch.ones(2, 40, 32, dtype=torch.bool)}, "valid_mask_b"),
            ({"normalization": "mean"}, "normalization"),
            ({"dot_normalization": "l2"}, "dot_normalization"),
        ],
    )
    def test_bad_input(self, kwargs, match):
        args = {
            "desc_a": torch.zeros(2, D, HC, WC),
            "desc_b": torch.zeros(2, D, HC, WC),
            "homography": torch.eye(3).expand(2, 3, 3),
            **kwargs,
        }
        with pytest.raises(ValueError, match=match):
            descriptor_hinge_loss(**args)
