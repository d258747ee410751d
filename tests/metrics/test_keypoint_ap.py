"""Tests of pixelwise.metrics.KeypointAP against hand values and a loop rewrite of rpautrat's detector_evaluation."""

import math

import numpy as np
import pytest
import torch

from pixelwise.metrics.keypoint_ap import KeypointAP


# ---- loop reference of rpautrat's compute_tp_fp / compute_pr / compute_mAP / compute_loc_error ----
def ref_gt(gt, round_gt=True):
    pts = [(math.floor(x + 0.5), math.floor(y + 0.5)) if round_gt else (x, y) for x, y in gt]
    if round_gt:
        pts = list(set(pts))
    return sorted(pts, key=lambda p: (p[1], p[0]))  # row-major, as np.where on a keypoint map


def ref_tp(preds, scores, gt, dist, min_score=1e-4):
    items = sorted([(s, p) for p, s in zip(preds, scores) if s > min_score], key=lambda t: -t[0])
    matched = [False] * len(gt)
    tps, out_scores = [], []
    for s, (px, py) in items:
        first = None
        for j, (gx, gy) in enumerate(gt):
            if math.hypot(px - gx, py - gy) <= dist:
                first = j
                break
        if first is None:
            tps.append(False)
        else:
            tps.append(not matched[first])
            matched[first] = True
        out_scores.append(s)
    return tps, out_scores


def ref_ap(tps, scores, n_gt):
    items = sorted(zip(scores, tps), key=lambda t: -t[0])
    recall, precision = [0.0], [0.0]
    tp = fp = 0
    for _, t in items:
        tp += t
        fp += not t
        recall.append(tp / n_gt if n_gt else (1.0 if tp == 0 else 0.0))
        precision.append(tp / (tp + fp))
    recall.append(1.0)
    precision.append(0.0)
    for k in range(len(precision) - 2, -1, -1):
        precision[k] = max(precision[k], precision[k + 1])
    return sum(precision[k] * (recall[k] - recall[k - 1]) for k in range(1, len(recall)))


def ref_loc_errors(preds, scores, gt, dist, score_thresh):
    out = []
    for (px, py), s in zip(preds, scores):
        if s > score_thresh and gt:
            d = min(math.hypot(px - gx, py - gy) for gx, gy in gt)
            if d <= dist:
                out.append(d)
    return out


def random_image(rng, n_gt=8, n_pred=15, size=40):
    gt = rng.uniform(0, size, (n_gt, 2))
    n_near = n_pred // 2 if n_gt else 0
    near = gt[rng.integers(0, max(n_gt, 1), n_near)] + rng.normal(0, 2.5, (n_near, 2))
    far = rng.uniform(0, size, (n_pred - n_near, 2))
    preds = np.rint(np.concatenate([near, far])).reshape(-1, 2)
    scores = rng.permutation(np.linspace(0.01, 0.99, n_pred)) + rng.uniform(
        0, 1e-3, n_pred
    )  # distinct
    return preds, scores, gt


def tensors(preds, scores, gt):
    return (
        torch.tensor(preds, dtype=torch.float32),
        torch.tensor(scores, dtype=torch.float32),
        torch.tensor(gt),
    )


class TestHandCases:
    def test_two_gt_four_predictions(self):
        # tp flags by score: T (gt0), F (far), T (gt1), F (gt0 again) -> AP = 1 * 0.5 + 2/3 * 0.5
        m = KeypointAP(distance=4.0, loc_score_threshold=0.5)
        gt = torch.tensor([[10.0, 10.0], [30.0, 30.0]])
        preds = torch.tensor([[11.0, 10.0], [50.0, 50.0], [30.0, 32.0], [10.0, 12.0]])
        scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
        m.update([preds], [scores], [gt])
        out = m.compute()
        assert out["map"].item() == pytest.approx(0.5 + 0.5 * 2 / 3, abs=1e-6)
        # localization error over scores > 0.5 within 4 px: distances 1, 2, 2
        assert out["localization_error"].item() == pytest.approx(5 / 3, abs=1e-6)
        # threshold curve: t = 0.65 -> 3 detections, 2 tp
        i = 65
        assert out["thresholds"][i].item() == pytest.approx(0.65)
        assert out["precision"][i].item() == pytest.approx(2 / 3)
        assert out["recall"][i].item() == pytest.approx(1.0)
        assert (
            out["precision"][-1].item() == 1.0 and out["recall"][-1].item() == 0.0
        )  # no detection: 0/0 = 1

    def test_first_gt_quirk(self):
        # both gts within 4 px of both predictions; each prediction takes the *first* gt (row-major),
        # so the second prediction is a false positive although gt (12, 5) is free.
        m = KeypointAP(distance=4.0)
        gt = torch.tensor([[12.0, 5.0], [10.0, 5.0]])  # row-major order: (10,5) then (12,5)
        m.update([torch.tensor([[11.0, 5.0], [11.0, 6.0]])], [torch.tensor([0.9, 0.8])], [gt])
        # tp: T, F; recall 0.5, 0.5; precision 1, 0.5 -> AP = 0.5
        assert m.compute()["map"].item() == pytest.approx(0.5)

    def test_min_score_and_rounding(self):
        m = KeypointAP(distance=1.0, loc_score_threshold=0.4)
        # gt (4.6, 4.4) rounds to (5, 4); (4.6, 4.4) and (5, 4) duplicate -> one gt
        gt = torch.tensor([[4.6, 4.4], [5.0, 4.0]])
        m.update([torch.tensor([[5.0, 5.0], [9.0, 9.0]])], [torch.tensor([0.5, 1e-5])], [gt])
        out = m.compute()
        assert out["map"].item() == pytest.approx(
            1.0
        )  # the 1e-5 prediction is removed (<= min_score)
        assert out["localization_error"].item() == pytest.approx(1.0)
        exact = KeypointAP(distance=1.0, round_gt=False, loc_score_threshold=0.4)
        exact.update(
            [torch.tensor([[5.0, 5.0]])], [torch.tensor([0.5])], [torch.tensor([[4.6, 4.4]])]
        )
        assert exact.compute()["localization_error"].item() == pytest.approx(math.hypot(0.4, 0.6))

    def test_exact_boundary_distance_many_predictions(self):
        # 40 predictions, each exactly 4 px (or 5 px with distance 5) from its own gt: all true positives
        base = torch.stack([torch.arange(40.0) * 11 + 3, torch.arange(40.0) * 7 + 2], 1)
        for offset, dist in (((4.0, 0.0), 4.0), ((3.0, 4.0), 5.0)):
            m = KeypointAP(distance=dist)
            m.update([base + torch.tensor(offset)], [torch.linspace(0.9, 0.1, 40)], [base])
            assert m.compute()["map"].item() == pytest.approx(1.0)

    def test_empty_images(self):
        m = KeypointAP()
        m.update([torch.zeros(0, 2), torch.tensor([[3.0, 3.0]])], [torch.zeros(0), torch.tensor([0.5])],
                 [torch.tensor([[3.0, 3.0]]), torch.zeros(0, 2)])  # fmt: skip
        out = m.compute()
        # one gt, one false positive -> recall never rises: AP 0
        assert out["map"].item() == 0.0
        assert math.isnan(out["localization_error"].item())


class TestAgainstLoopReference:
    @pytest.mark.parametrize("round_gt", [True, False])
    def test_random_sets(self, round_gt):
        rng = np.random.default_rng(0 if round_gt else 1)
        m = KeypointAP(distance=4.0, loc_score_threshold=0.4, round_gt=round_gt)
        all_tp, all_sc, n_gt, loc = [], [], 0, []
        for _ in range(6):
            batch = [
                random_image(rng, n_gt=int(rng.integers(0, 10)), n_pred=int(rng.integers(0, 25)))
                for _ in range(3)
            ]
            m.update(*map(list, zip(*[tensors(*b) for b in batch])))
            for preds, scores, gt in batch:
                g = ref_gt([tuple(p) for p in gt], round_gt)
                t, s = ref_tp([tuple(p) for p in preds], list(scores), g, 4.0)
                all_tp += t
                all_sc += s
                n_gt += len(g)
                loc += ref_loc_errors([tuple(p) for p in preds], list(scores), g, 4.0, 0.4)
        out = m.compute()
        assert out["map"].item() == pytest.approx(ref_ap(all_tp, all_sc, n_gt), abs=1e-6)
        assert out["localization_error"].item() == pytest.approx(np.mean(loc), abs=1e-5)

    def test_groups(self):
        rng = np.random.default_rng(5)
        m = KeypointAP(groups=["lines", "star", "cube"])
        per = {"lines": ([], [], 0), "star": ([], [], 0)}
        for i in range(8):
            name = ["lines", "star"][i % 2]
            preds, scores, gt = random_image(rng)
            m.update(*[[x] for x in tensors(preds, scores, gt)], groups=[name])
            g = ref_gt([tuple(p) for p in gt])
            t, s = ref_tp([tuple(p) for p in preds], list(scores), g, 4.0)
            tp_l, sc_l, n = per[name]
            per[name] = (tp_l + t, sc_l + s, n + len(g))
        out = m.compute()
        for name, (t, s, n) in per.items():
            assert out[f"map/{name}"].item() == pytest.approx(ref_ap(t, s, n), abs=1e-6)
        assert math.isnan(out["map/cube"].item())  # declared, never seen
        total = ref_ap(
            per["lines"][0] + per["star"][0],
            per["lines"][1] + per["star"][1],
            per["lines"][2] + per["star"][2],
        )
        assert out["map"].item() == pytest.approx(total, abs=1e-6)


class TestDistributed:
    def test_merged_states_equal_single_process(self):
        """Two 'ranks' with half the images each, states reduced as DDP would (cat / sum)."""
        rng = np.random.default_rng(9)
        data = [random_image(rng) for _ in range(10)]
        groups = ["a", "b"] * 5
        single, r0, r1 = (KeypointAP(groups=["a", "b"]) for _ in range(3))
        for i, d in enumerate(data):
            args = [[x] for x in tensors(*d)]
            single.update(*args, groups=[groups[i]])
            (r0 if i < 5 else r1).update(*args, groups=[groups[i]])
        r0.merge_state(r1)
        a, b = single.compute(), r0.compute()
        assert a.keys() == b.keys()
        for k in a:
            torch.testing.assert_close(a[k], b[k], equal_nan=True)

    def test_compute_after_sync_when_list_states_became_tensors(self):
        """After a DDP sync a cat-state is one tensor, not a list: compute must accept it."""
        from torchmetrics.utilities import dim_zero_cat

        rng = np.random.default_rng(3)
        m = KeypointAP(groups=["a"])
        for _ in range(3):
            m.update(*[[x] for x in tensors(*random_image(rng))], groups=["a"])
        expected = m.compute()
        for name in ("scores", "tp", "group_ids"):
            setattr(m, name, dim_zero_cat(getattr(m, name)))
        m._computed = None
        torch.testing.assert_close(m.compute()["map"], expected["map"])


class TestBadInput:
    def test_errors(self):
        m = KeypointAP(groups=["lines"])
        kp, sc, gt = [torch.zeros(2, 2)], [torch.ones(2)], [torch.zeros(1, 2)]
        with pytest.raises(ValueError, match="one entry per image"):
            m.update(kp, sc, gt + gt)
        with pytest.raises(ValueError, match="2 predicted keypoints but 3 scores"):
            m.update(kp, [torch.ones(3)], gt)
        with pytest.raises(ValueError, match=r"pred_keypoints\[0\] must have shape \[N, 2\]"):
            m.update([torch.zeros(2, 3)], sc, gt)
        with pytest.raises(ValueError, match="unknown groups \\['star'\\]"):
            m.update(kp, sc, gt, groups=["star"])
        with pytest.raises(TypeError, match="list with one tensor per image"):
            m.update(torch.zeros(2, 2), sc, gt)
        with pytest.raises(ValueError, match="unique"):
            KeypointAP(groups=["a", "a"])


class TestOneToOneNextToTheReferenceQuirk:
    def test_two_close_points_found_exactly(self):
        """GT (10,10) and (12,10), both detected exactly, the right one scored higher.

        Reference: the first detection's first in-range GT (row-major) is (10,10) -> TP; the
        second's first in-range GT is (10,10) again, taken -> FP: AP = 1 * 0.5 = 0.5.
        One-to-one: each takes its nearest free GT -> 2 TP: AP = 1.
        """
        m = KeypointAP(distance=4)
        gt = torch.tensor([[10.0, 10.0], [12.0, 10.0]])
        m.update([torch.tensor([[12.0, 10.0], [10.0, 10.0]])], [torch.tensor([0.9, 0.8])], [gt])
        out = m.compute()
        assert float(out["map"]) == pytest.approx(0.5)
        assert float(out["map_one_to_one"]) == pytest.approx(1.0)

    def test_one_to_one_takes_the_nearest_free_point(self):
        """A detection between two GT points takes the nearer; a later one takes the other if in range."""
        m = KeypointAP(distance=4)
        gt = torch.tensor([[0.0, 0.0], [6.0, 0.0]])
        preds = torch.tensor([[4.0, 0.0], [1.0, 0.0], [20.0, 20.0]])
        m.update([preds], [torch.tensor([0.9, 0.5, 0.3])], [gt])
        # one-to-one: (4,0) -> (6,0) at 2 px; (1,0) -> (0,0); (20,20) -> none. TP, TP, FP -> AP 1.
        assert float(m.compute()["map_one_to_one"]) == pytest.approx(1.0)
