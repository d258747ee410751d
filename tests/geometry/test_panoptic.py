"""Panoptic-DeepLab targets and post-processing on hand-made maps."""

from __future__ import annotations

import math

import pytest
import torch

from pixelwise.geometry.panoptic import (
    PanopticGrouping,
    find_centers,
    group_pixels,
    instance_centers,
    panoptic_postprocess,
    panoptic_segments,
    panoptic_targets,
)


def brute_targets(instances: torch.Tensor, sigma: float):
    b, h, w = instances.shape
    heat = torch.zeros(b, 1, h, w)
    off = torch.zeros(b, 2, h, w)
    for i in range(b):
        for k in instances[i].unique().tolist():
            if k == 0:
                continue
            ys, xs = torch.nonzero(instances[i] == k, as_tuple=True)
            cx, cy = round(xs.double().mean().item()), round(ys.double().mean().item())
            for y in range(h):
                for x in range(w):
                    g = math.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * sigma**2))
                    heat[i, 0, y, x] = max(heat[i, 0, y, x].item(), g)
            off[i, 0, ys, xs] = cx - xs.float()
            off[i, 1, ys, xs] = cy - ys.float()
    return heat, off


class TestTargets:
    def test_centre_by_hand(self) -> None:
        inst = torch.zeros(1, 5, 6, dtype=torch.long)
        inst[0, 1:4, 1:4] = 2  # 3x3 square centred at (2, 2)
        inst[0, 0, 5] = 5  # one pixel at (5, 0)
        c, present = instance_centers(inst)
        assert present[0].tolist() == [False, False, True, False, False, True]
        assert c[0, 2].tolist() == [2.0, 2.0] and c[0, 5].tolist() == [5.0, 0.0]
        heat, off, wt = panoptic_targets(inst, sigma=1.0)
        assert heat[0, 0, 2, 2] == 1.0 and heat[0, 0, 0, 5] == 1.0
        assert heat[0, 0, 2, 3].item() == pytest.approx(math.exp(-0.5))
        assert off[0, :, 1, 1].tolist() == [1.0, 1.0]  # (1,1) -> centre (2,2)
        assert off[0, :, 3, 3].tolist() == [-1.0, -1.0]
        assert off[0, :, 0, 0].tolist() == [0.0, 0.0] and not wt[0, 0, 0, 0]
        assert int(wt.sum()) == 10

    def test_matches_brute_force(self) -> None:
        g = torch.Generator().manual_seed(0)
        inst = torch.randint(0, 4, (2, 7, 9), generator=g)
        inst[1] = torch.where(inst[1] == 3, 7, inst[1])  # sparse ids
        heat, off, wt = panoptic_targets(inst, sigma=2.0)
        bh, bo = brute_targets(inst, 2.0)
        torch.testing.assert_close(heat, bh)
        torch.testing.assert_close(off, bo)
        assert torch.equal(wt[:, 0], inst > 0)

    def test_empty_and_bad(self) -> None:
        heat, off, wt = panoptic_targets(torch.zeros(2, 4, 4, dtype=torch.long))
        assert heat.abs().sum() == 0 and off.abs().sum() == 0 and not wt.any()
        with pytest.raises(ValueError, match="sigma"):
            panoptic_targets(torch.zeros(1, 4, 4, dtype=torch.long), sigma=0)
        with pytest.raises(ValueError, match=r"\[B,H,W\]"):
            instance_centers(torch.zeros(4, 4, dtype=torch.long))


class TestCenters:
    def test_nms_and_top_k(self) -> None:
        hm = torch.zeros(1, 1, 5, 8)
        hm[0, 0, 1, 1] = 0.9
        hm[0, 0, 1, 2] = 0.8  # suppressed by its neighbour (3x3 window)
        hm[0, 0, 3, 6] = 0.5
        hm[0, 0, 4, 0] = 0.05  # below threshold
        c, s, v = find_centers(hm, threshold=0.1, nms_kernel=3, top_k=3)
        assert c[0, :2].tolist() == [[1.0, 1.0], [6.0, 3.0]]
        assert v[0].tolist() == [True, True, False]
        assert s[0, :2].tolist() == pytest.approx([0.9, 0.5])
        c, s, v = find_centers(hm, threshold=0.1, nms_kernel=1, top_k=3)
        assert v[0].tolist() == [True, True, True] and c[0, 1].tolist() == [2.0, 1.0]
        with pytest.raises(ValueError, match="odd"):
            find_centers(hm, nms_kernel=2)

    def test_group_pixels_nearest(self) -> None:
        off = torch.zeros(1, 2, 1, 4)
        off[0, 0, 0, 3] = -3.0  # pixel x=3 points to x=0
        centres = torch.tensor([[[0.0, 0.0], [3.0, 0.0], [1.0, 0.0]]])
        slot = group_pixels(off, centres, torch.tensor([[True, True, False]]), chunk=3)
        assert slot.tolist() == [
            [[0, 0, 1, 0]]
        ]  # x=1 is nearest (0,0) (slot 2 invalid), x=2 -> (3,0)
        none = group_pixels(off, centres, torch.zeros(1, 3, dtype=torch.bool))
        assert (none == -1).all()


class TestPostprocess:
    def test_hand_made(self) -> None:
        # 1 x 6 image: classes 0 (stuff), 2 and 3 (things); two centres at x=1 and x=4.
        sem = torch.tensor([[[0, 2, 2, 3, 3, 3]]])
        hm = torch.zeros(1, 1, 1, 6)
        hm[0, 0, 0, 1] = 0.9
        hm[0, 0, 0, 4] = 0.8
        off = torch.zeros(1, 2, 1, 6)
        off[0, 0, 0, 2] = -1.0  # x=2 -> x=1
        off[0, 0, 0, 3] = -2.0  # x=3 (class 3) -> x=1: instance 1 votes 2,2,3 -> class 2
        off[0, 0, 0, 5] = -1.0  # x=5 -> x=4
        pan = panoptic_postprocess(sem, hm, off, [2, 3], 4, PanopticGrouping(nms_kernel=3, top_k=5))
        assert pan.tolist() == [[[1000, 3001, 3001, 3001, 4002, 4002]]]
        seg = panoptic_segments(pan)
        assert seg[0].tolist() == [[1000, 0, 0], [3001, 2, 0], [4002, 3, 0]]
        # small segments void: instance 2 has 2 pixels, stuff 1.
        small_void = PanopticGrouping(nms_kernel=3, min_thing_area=3, min_stuff_area=2)
        pan = panoptic_postprocess(sem, hm, off, [2, 3], 4, small_void)
        assert pan.tolist() == [[[0, 3001, 3001, 3001, 0, 0]]]

    def test_no_centre_and_batch(self) -> None:
        sem = torch.tensor([[[1, 1]], [[1, 0]]])
        hm = torch.zeros(2, 1, 1, 2)
        hm[1, 0, 0, 0] = 1.0
        pan = panoptic_postprocess(
            sem, hm, torch.zeros(2, 2, 1, 2), [1], 2, PanopticGrouping(nms_kernel=1)
        )
        assert pan.tolist() == [[[0, 0]], [[2001, 1000]]]

    def test_shape_error(self) -> None:
        with pytest.raises(ValueError, match="expected"):
            panoptic_postprocess(
                torch.zeros(1, 2, 2, dtype=torch.long),
                torch.zeros(1, 1, 2, 3),
                torch.zeros(1, 2, 2, 2),
                [1],
                2,
            )
