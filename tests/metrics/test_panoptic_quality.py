"""PanopticQuality: hand cases, and equality with cityscapesScripts' panoptic evaluation on written files."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pytest
import torch

from pixelwise.metrics.panoptic_quality import PanopticQuality
from tests.metrics.panoptic_fixture import NUM_CLASSES, THINGS, random_pair, write_official


def t(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x), dtype=torch.long)


class TestHandCases:
    def test_one_match_one_fp_one_fn(self) -> None:
        # classes: 0 stuff, 1 thing. gt: stuff 1 (6 px), thing 1001 (4 px) and 1002 (2 px).
        gt = t([[1, 1, 1, 1001, 1001, 0], [1, 1, 1, 1001, 1001, 1002]])
        gseg = t([[1, 0, 0], [1001, 1, 0], [1002, 1, 0]])
        # pred: stuff 5 on 6 gt-stuff px + 1 gt-void px; thing 7 on 3 px of 1001; 9 on 1 px of 1001 + 1002.
        pr = t([[5, 5, 5, 7, 7, 5], [5, 5, 5, 7, 9, 9]])
        pseg = t([[5, 0, 0], [7, 1, 0], [9, 1, 0]])
        m = PanopticQuality(2, [1])
        m.update(pr.unsqueeze(0), [pseg], gt.unsqueeze(0), [gseg])
        r = m.compute()
        # stuff: IoU = 6 / (7 + 6 - 6 - 1) = 1 -> PQ 1. thing 7 vs 1001: 3 / (3 + 4 - 3) = 0.75 -> TP;
        # 9 vs 1002: 1 / (2 + 2 - 1) = 1/3 -> FP 9, FN 1002. PQ_thing = 0.75 / (1 + 0.5 + 0.5).
        assert (
            r["tp"].tolist() == [1, 1] and r["fp"].tolist() == [0, 1] and r["fn"].tolist() == [0, 1]
        )
        assert r["pq_per_class"].tolist() == pytest.approx([1.0, 0.375])
        assert r["sq_things"].item() == pytest.approx(0.75) and r[
            "rq_things"
        ].item() == pytest.approx(0.5)
        assert r["pq"].item() == pytest.approx((1 + 0.375) / 2) and r["n"] == 2

    def test_crowd_and_void_ignore_a_prediction(self) -> None:
        # gt: thing crowd 2 (class 1, 3 px), void 1 px; pred 8 (class 1) covers crowd 2 + void 1 + 1 stuff px.
        gt = t([[2, 2, 2, 0, 1, 1]])
        gseg = t([[1, 0, 0], [2, 1, 1]])
        pr = t([[8, 8, 8, 8, 8, 4]])
        pseg = t([[4, 0, 0], [8, 1, 0]])
        m = PanopticQuality(2, [1])
        m.update(pr, pseg, gt, gseg)
        r = m.compute()
        # crowd: no FN; pred 8: (1 void + 3 crowd) / 5 > 0.5 -> not FP. stuff 1 vs 4: 1 / (1 + 2 - 1) = 0.5 -> not > 0.5.
        assert (
            r["tp"].tolist() == [0, 0] and r["fp"].tolist() == [1, 0] and r["fn"].tolist() == [1, 0]
        )
        assert torch.isnan(r["pq_things"]) and r["pq"].item() == 0.0

    def test_errors(self) -> None:
        m = PanopticQuality(2, [1])
        with pytest.raises(ValueError, match=r"segment id\(s\) \[3\] that are not in its segments"):
            m.update(t([[3]]), t([[1, 0, 0]]), t([[1]]), t([[1, 0, 0]]))
        with pytest.raises(ValueError, match="outside"):
            m.update(t([[1]]), t([[1, 5, 0]]), t([[1]]), t([[1, 0, 0]]))
        with pytest.raises(ValueError, match="thing_classes"):
            PanopticQuality(2, [2])


def official(tmp_path: Path, pairs) -> dict:
    ev = pytest.importorskip("cityscapesscripts.evaluation.evalPanopticSemanticLabeling")
    gt_json, gt_dir, pred_json, pred_dir = write_official(tmp_path, pairs)
    with contextlib.redirect_stdout(io.StringIO()):
        return ev.evaluatePanoptic(
            str(gt_json), str(gt_dir), str(pred_json), str(pred_dir), str(tmp_path / "r.json")
        )


@pytest.mark.parametrize("seed", [0, 1])
def test_equals_cityscapes_scripts(tmp_path: Path, seed: int) -> None:
    """Random maps with void, crowd and tiny segments: every number equals the official evaluation."""
    rng = np.random.default_rng(seed)
    pairs = [random_pair(rng) for _ in range(12)]
    ref = official(tmp_path, pairs)
    m = PanopticQuality(NUM_CLASSES, THINGS)
    for gt, gs, pr, ps in pairs:
        m.update(t(pr)[None], [t(ps)], t(gt)[None], [t(gs)])
    r = m.compute()
    assert r["tp"].sum() > 10 and r["fp"].sum() > 5 and r["fn"].sum() > 5  # a non-trivial case
    for name, key in (("All", ""), ("Things", "_things"), ("Stuff", "_stuff")):
        for q in ("pq", "sq", "rq"):
            assert r[f"{q}{key}"].item() == pytest.approx(ref[name][q], abs=1e-9), (name, q)
        assert r[f"n{key}"].item() == ref[name]["n"]
    for c in range(NUM_CLASSES):
        for q in ("pq", "sq", "rq"):
            assert r[f"{q}_per_class"][c].item() == pytest.approx(
                ref["per_class"][c + 1][q], abs=1e-9
            )


def test_split_states_sum_to_the_whole() -> None:
    """DDP: states are sums, so two ranks' merged states give the single-process values."""
    rng = np.random.default_rng(3)
    pairs = [random_pair(rng) for _ in range(6)]
    whole, a, b = (PanopticQuality(NUM_CLASSES, THINGS) for _ in range(3))
    for k, (gt, gs, pr, ps) in enumerate(pairs):
        whole.update(t(pr)[None], [t(ps)], t(gt)[None], [t(gs)])
        (a if k % 2 else b).update(t(pr)[None], [t(ps)], t(gt)[None], [t(gs)])
    a.merge_state(b)
    ra, rw = a.compute(), whole.compute()
    for key in ("pq", "sq", "rq", "pq_things", "pq_stuff"):
        assert ra[key].item() == pytest.approx(rw[key].item(), abs=1e-12)


def test_torchmetrics_panoptic_quality_differs_on_void() -> None:
    """Why a metric of our own: torchmetrics removes target pixels predicted void from the union."""
    from torchmetrics.detection import PanopticQuality as TMPanopticQuality

    # one thing segment of 4 px, predicted on 2 px, the other 2 px predicted void (class 2 = void).
    gt = t([[1001, 1001, 1001, 1001]])
    pr = t([[1001, 1001, 0, 0]])
    ours = PanopticQuality(2, [1])
    ours.update(pr, t([[1001, 1, 0]]), gt, t([[1001, 1, 0]]))
    # official: IoU = 2 / (2 + 4 - 2) = 0.5, not > 0.5: an FP and an FN, PQ 0.
    assert ours.compute()["pq"].item() == 0.0
    tm = TMPanopticQuality(things={1}, stuffs={0}, allow_unknown_preds_category=True)
    preds = torch.tensor([[[[1, 1], [1, 1], [2, 0], [2, 0]]]])
    target = torch.tensor([[[[1, 1], [1, 1], [1, 1], [1, 1]]]])
    assert tm(preds, target).item() == pytest.approx(1.0)  # union 2: IoU 1
