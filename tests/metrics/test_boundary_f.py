"""Tests of pixelwise.metrics.BoundaryF: published benchmark outputs, hand-computed summaries, edge cases, DDP merge."""

import math

import numpy as np
import pytest
import torch

from pixelwise.geometry.thinning import edge_nms, thin_levels
from pixelwise.metrics import BoundaryF
from pixelwise.metrics.boundary_f import boundary_counts, bsds_thresholds, summarize_boundary_counts
from pixelwise.metrics.boundary_matching import evaluate_levels

# ---- Published MATLAB outputs: py-edge-eval's data/SBD_bench/outdir (MATLAB benchmark run on two
# SBD images, 99 thresholds). Per threshold 0.01..0.99: (cntR == cntP, sumP); sumR is constant.
SBD_IMG1 = [(693, 15252)] * 34 + [
    (693, 15241), (693, 15223), (693, 15164), (693, 15100), (693, 14833), (693, 14378),
    (693, 11942), (654, 2942), (653, 2172), (640, 1713), (616, 1525), (555, 1282),
    (520, 1166), (494, 1070), (487, 1021), (467, 948), (449, 875), (429, 827), (411, 772),
    (396, 744), (366, 670), (356, 640), (353, 594), (351, 573), (345, 516), (342, 489),
    (326, 454), (313, 425), (305, 415), (288, 387), (280, 371), (268, 343), (265, 338),
    (254, 321), (253, 319), (252, 308), (246, 297), (243, 288), (234, 276), (233, 271),
    (230, 265), (230, 262), (229, 260), (229, 260), (227, 257), (227, 256), (226, 250),
    (222, 240), (215, 230), (211, 223), (201, 210), (185, 193), (177, 185), (164, 169),
    (150, 155), (138, 143), (131, 135), (124, 128), (116, 120), (111, 114), (92, 92),
    (83, 83), (61, 61), (47, 47), (3, 3),
]  # fmt: skip
SBD_IMG2 = [(1420, 19496)] * 38 + [
    (1420, 19483), (1420, 19445), (1420, 19096), (1248, 2700), (1150, 2196), (1083, 1717),
    (1053, 1553), (983, 1375), (953, 1286), (894, 1180), (871, 1144), (842, 1069), (805, 978),
    (788, 934), (747, 859), (711, 819), (671, 766), (643, 728), (603, 676), (565, 634),
    (540, 609), (509, 571), (473, 535), (446, 508), (418, 480), (400, 460), (386, 440),
    (377, 428), (373, 422), (368, 417), (358, 406), (337, 384), (324, 371), (319, 365),
    (295, 340), (282, 318), (276, 305), (267, 291), (256, 275), (248, 265), (230, 239),
    (212, 216), (178, 181), (133, 136), (116, 119), (108, 111), (103, 106), (96, 97), (88, 88),
    (64, 64), (58, 58), (38, 38), (13, 13),
] + [(0, 0)] * 8  # fmt: skip


def sbd_counts():
    rows = []
    for table, sum_r in ((SBD_IMG1, 713), (SBD_IMG2, 1420)):
        a = np.array(table, dtype=np.int64)
        rows.append(np.stack([a[:, 0], np.full(len(a), sum_r), a[:, 0], a[:, 1]], 1))
    return np.stack(rows)


def scalars(out):
    return {k: float(v) for k, v in out.items() if isinstance(v, torch.Tensor) and v.ndim == 0}


class TestThresholds:
    def test_bsds_99(self):
        t = bsds_thresholds(99)
        np.testing.assert_allclose(t, np.arange(1, 100) / 100, atol=1e-15)
        assert t[0] == 0.01 and t[-1] == 0.99

    def test_small(self):
        np.testing.assert_allclose(bsds_thresholds(3), [0.25, 0.5, 0.75])
        np.testing.assert_allclose(bsds_thresholds(1), [0.5])


class TestSummaries:
    def test_published_sbd_benchmark_output(self):
        # eval_bdry.txt: bestT bestR bestP bestF R_max P_max F_max Area_PR
        out = summarize_boundary_counts(sbd_counts(), bsds_thresholds(99))
        expected = {
            "ods_threshold": 0.466768, "ods_recall": 0.700427, "ods_precision": 0.59366,
            "ods": 0.642639, "ois_recall": 0.654008, "ois_precision": 0.683154, "ois": 0.668263,
            "ap": 0.680153,
        }  # fmt: skip
        for k, v in expected.items():
            assert out[k] == pytest.approx(v, abs=1.5e-6), k

    def test_published_per_image_best(self):
        # eval_bdry_img.txt: image, bestT, bestR, bestP, bestF (interpolated maxF per image)
        c = sbd_counts()
        for img, (t, r, p, f) in enumerate(
            [(0.6, 0.479663, 0.699387, 0.569052), (0.45, 0.741549, 0.678042, 0.708375)]
        ):
            out = summarize_boundary_counts(c[img : img + 1], bsds_thresholds(99))
            got = (out["ods_threshold"], out["ods_recall"], out["ods_precision"], out["ods"])
            assert got == pytest.approx((t, r, p, f), abs=1.5e-6)

    def test_hand_interpolated_ods(self):
        # R, P = (.8, .4) then (.4, .8): F peaks at 0.6 halfway (d = 0.5), which is not on the
        # grid d = k/99, so ODS is the better of k = 49, 50 (scalar loop of collect_eval_bdry.m).
        c = np.array([[[8, 10, 4, 10], [4, 10, 8, 10]]])
        out = summarize_boundary_counts(c, np.array([0.3, 0.7]))
        best_f, best_t = 2 * 0.8 * 0.4 / 1.2, 0.3
        for k in range(100):
            d = k / 99
            r, p = 0.4 * d + 0.8 * (1 - d), 0.8 * d + 0.4 * (1 - d)
            f = 2 * p * r / (p + r)
            if f > best_f:
                best_f, best_t = f, 0.7 * d + 0.3 * (1 - d)
        assert out["ods"] == pytest.approx(best_f, abs=1e-15)
        assert out["ods_threshold"] == pytest.approx(best_t, abs=1e-15)
        assert 0.5999 < out["ods"] < 0.6 and abs(out["ods_threshold"] - 0.5) < 0.003

    def test_hand_ois_ap_r50(self):
        # image 1 is best at t2 (F .667 > .6), image 2 at t1 (F 1).
        c = np.array([[[3, 4, 3, 6], [2, 4, 2, 2]], [[5, 5, 5, 5], [1, 5, 1, 1]]])
        out = summarize_boundary_counts(c, np.array([0.3, 0.7]))
        assert out["ois_recall"] == pytest.approx(7 / 9) and out["ois_precision"] == 1.0
        assert out["ois"] == pytest.approx(0.875)
        # dataset curve: (R, P) = (8/9, 8/11) and (1/3, 1); P(R) linear between, 0 outside.
        ap = 0.01 * (55 - 27 / 55 * (55 * 0.61 - 55 / 3))
        assert out["ap"] == pytest.approx(ap, abs=1e-12)
        assert out["r50"] == pytest.approx(8 / 9)  # lowest precision 8/11 > 0.5: its recall
        np.testing.assert_allclose(out["recall"], [8 / 9, 1 / 3])
        np.testing.assert_allclose(out["precision"], [8 / 11, 1.0])

    def test_r50_interpolates(self):
        # (R, P) = (.9, .3), (.6, .7): precision .5 halfway -> recall .75
        c = np.array([[[9, 10, 3, 10], [6, 10, 7, 10]]])
        assert summarize_boundary_counts(c, np.array([0.2, 0.8]))["r50"] == pytest.approx(0.75)

    def test_never_nan(self):
        for c in (
            np.zeros((1, 3, 4)),
            np.array([[[0, 0, 0, 5]] * 3]),
            np.array([[[0, 7, 0, 0]] * 3]),
        ):
            out = summarize_boundary_counts(c, np.array([0.25, 0.5, 0.75]))
            for k, v in out.items():
                assert np.all(np.isfinite(v)), k
            assert out["ods"] == out["ois"] == out["ap"] == out["r50"] == 0.0


def line_image(h=40, w=50):
    gt = np.zeros((h, w), bool)
    gt[10, 5:45] = True
    gt[10:35, 30] = True
    return gt


class TestBoundaryF:
    def test_perfect_prediction(self):
        gt = line_image()
        m = BoundaryF(thresholds=9)
        m.update(torch.from_numpy(gt.astype(np.float32))[None], [torch.from_numpy(gt)[None]])
        out = scalars(m.compute())
        assert out["ods"] == 1.0 and out["ois"] == 1.0 and out["r50"] == 1.0
        assert out["ap"] == 0.0  # the protocol's AP needs two distinct recalls (collect_eval_bdry)

    def test_empty_prediction_and_empty_gt(self):
        gt = line_image()
        m = BoundaryF(thresholds=5)
        m.update(torch.zeros(1, 40, 50), [torch.from_numpy(gt)[None]])
        m.update(torch.rand(1, 40, 50), [torch.zeros(2, 40, 50, dtype=torch.bool)])
        out = m.compute()
        for k, v in out.items():
            if isinstance(v, torch.Tensor):
                assert torch.isfinite(v).all(), k
        assert float(out["ods"]) == 0.0 and float(out["ap"]) == 0.0

    def test_counts_follow_the_image_pipeline(self):
        rng = np.random.default_rng(0)
        gts = np.stack([line_image(), np.roll(line_image(), 1, axis=0)])
        soft = np.clip(0.8 * gts.mean(0) + 0.3 * rng.random((40, 50)), 0, 1)
        m = BoundaryF(thresholds=7)
        m.update(torch.from_numpy(soft)[None], torch.from_numpy(gts)[None])
        thr = bsds_thresholds(7)
        ptr, pix = thin_levels(np.searchsorted(thr, soft, side="right"), 7)
        expected = evaluate_levels(ptr, pix, gts, 0.0075)
        np.testing.assert_array_equal(m.counts.numpy(), expected)
        out = m.compute()
        ref = summarize_boundary_counts(expected[None], thr)
        assert float(out["ods"]) == ref["ods"] and float(out["ois"]) == ref["ois"]
        assert out["approximate"] is False

    def test_uint8_is_read_like_png(self):
        rng = np.random.default_rng(1)
        gt = torch.from_numpy(line_image())[None]
        q = torch.from_numpy(rng.integers(0, 256, (40, 50), dtype=np.uint8))
        a, b = BoundaryF(thresholds=99), BoundaryF(thresholds=99)
        a.update(q[None], [gt])
        b.update((q.double() / 255)[None], [gt])
        assert torch.equal(a.counts, b.counts)

    def test_list_and_tensor_targets_agree(self):
        rng = np.random.default_rng(2)
        gts = torch.from_numpy(np.stack([line_image(), np.roll(line_image(), 2, axis=1)]))
        preds = torch.from_numpy(rng.random((2, 40, 50)).astype(np.float32))
        a, b = BoundaryF(thresholds=11), BoundaryF(thresholds=11)
        a.update(preds, torch.stack([gts, gts.flip(0)]))
        b.update(preds, [gts, gts.flip(0)])
        assert torch.equal(a.counts, b.counts)

    def test_merge_states_like_ddp(self):
        rng = np.random.default_rng(3)
        gt = torch.from_numpy(line_image())[None]
        preds = [torch.from_numpy(rng.random((1, 40, 50)).astype(np.float32)) for _ in range(4)]
        whole, left, right = (
            BoundaryF(thresholds=9),
            BoundaryF(thresholds=9),
            BoundaryF(thresholds=9),
        )
        for i, p in enumerate(preds):
            whole.update(p, [gt])
            (left if i < 2 else right).update(p, [gt])
        left.merge_state(right)
        a, b = whole.compute(), left.compute()
        for k in ("ods", "ois", "ap", "r50", "ods_threshold"):
            assert float(a[k]) == float(b[k]), k

    def test_approximate_is_flagged_and_optimistic(self):
        rng = np.random.default_rng(4)
        gt = torch.from_numpy(np.stack([line_image(), np.roll(line_image(), 1, axis=0)]))
        soft = torch.from_numpy(
            np.clip(0.7 * gt.double().mean(0).numpy() + 0.4 * rng.random((40, 50)), 0, 1)
        )
        exact, approx = BoundaryF(thresholds=19), BoundaryF(thresholds=19, approximate=True)
        exact.update(soft[None], [gt])
        approx.update(soft[None], [gt])
        e, a = exact.compute(), approx.compute()
        assert a["approximate"] is True
        assert (a["recall"] >= e["recall"]).all() and (a["precision"] >= e["precision"]).all()

    def test_edge_nms_option(self):
        rng = np.random.default_rng(5)
        gt = torch.from_numpy(line_image())[None]
        soft = torch.from_numpy(
            np.clip(rng.random((40, 50)) * 0.5 + line_image() * 0.5, 0, 1).astype(np.float32)
        )
        m = BoundaryF(thresholds=9, edge_nms=True)
        m.update(soft[None], [gt])
        nms = edge_nms(soft).double().numpy()
        expected = boundary_counts(nms, gt.numpy(), bsds_thresholds(9))
        np.testing.assert_array_equal(m.counts.numpy(), expected)

    def test_bad_inputs(self):
        gt = torch.zeros(1, 8, 9, dtype=torch.bool)
        m = BoundaryF(thresholds=3)
        with pytest.raises(ValueError, match=r"preds\[0\] must lie in \[0, 1\]"):
            m.update(torch.full((1, 8, 9), 2.0), [gt])
        with pytest.raises(ValueError, match=r"\[B, H, W\]"):
            m.update(torch.zeros(1, 1, 8, 9), [gt])
        with pytest.raises(ValueError, match=r"targets\[0\] must be \[K, H, W\]"):
            m.update(torch.zeros(1, 8, 9), [torch.zeros(1, 9, 8, dtype=torch.bool)])
        with pytest.raises(ValueError, match="no annotation"):
            m.update(torch.zeros(1, 8, 9), [torch.zeros(0, 8, 9, dtype=torch.bool)])
        with pytest.raises(TypeError, match="bool"):
            m.update(torch.zeros(1, 8, 9), [torch.zeros(1, 8, 9)])
        with pytest.raises(ValueError, match="2 predictions but 1 targets"):
            m.update(torch.zeros(2, 8, 9), [gt])
        with pytest.raises(ValueError, match="strictly increasing"):
            BoundaryF(thresholds=[0.5, 0.2])
        with pytest.raises(ValueError, match="max_dist"):
            BoundaryF(max_dist=0.0)
        with pytest.raises(ValueError, match="num_threads"):
            BoundaryF(num_threads=0)
        with pytest.warns(UserWarning, match="before the ``update``"):
            assert math.isfinite(float(BoundaryF(thresholds=3).compute()["ods"]))


def test_warm_up_runs_every_option_and_leaves_no_state():
    from pixelwise.metrics.boundary_f import warm_up

    assert warm_up() >= 0.0
    # A metric made afterwards starts empty.
    assert int(BoundaryF(thresholds=3).counts.sum()) == 0
