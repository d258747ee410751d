"""FCOS assignment and loss against a brute-force loop and hand-computed cases."""

from __future__ import annotations

import math

import pytest
import torch
from torchvision.ops import sigmoid_focal_loss

from pixelwise.geometry.dense_boxes import level_locations
from pixelwise.losses.fcos import (
    BACKGROUND,
    IGNORE,
    default_size_ranges,
    fcos_loss,
    fcos_targets,
)

STRIDES = [4, 8, 16]
SIZE = (32, 48)


def _grid():
    sizes = [(SIZE[0] // s, SIZE[1] // s) for s in STRIDES]
    locs = level_locations(sizes, STRIDES)
    counts = [len(x) for x in locs]
    ranges = default_size_ranges(STRIDES)
    strides = torch.cat([torch.full((n,), float(s)) for n, s in zip(counts, STRIDES)])
    rng = torch.cat([torch.tensor([r]).expand(n, 2) for n, r in zip(counts, ranges)])
    return sizes, torch.cat(locs), strides, rng


def brute_force_targets(locations, strides, ranges, boxes, labels, iscrowd, radius):
    """One location and one box at a time, straight from the FCOS paper's rules."""
    classes, assigned = [], []
    for (x, y), s, (lo, hi) in zip(locations.tolist(), strides.tolist(), ranges.tolist()):
        best, best_area = None, math.inf
        in_crowd = False
        for k, ((x1, y1, x2, y2), crowd) in enumerate(zip(boxes.tolist(), iscrowd.tolist())):
            inside = min(x - x1, y - y1, x2 - x, y2 - y) > 0
            if crowd:
                in_crowd |= inside
                continue
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            central = max(cx - radius * s, x1) < x < min(cx + radius * s, x2) and max(
                cy - radius * s, y1
            ) < y < min(cy + radius * s, y2)
            reach = max(x - x1, y - y1, x2 - x, y2 - y)
            area = (x2 - x1) * (y2 - y1)
            if inside and central and lo <= reach <= hi and area < best_area:
                best, best_area = k, area
        if best is not None:
            classes.append(int(labels[best]))
            assigned.append(boxes[best].tolist())
        else:
            classes.append(IGNORE if in_crowd else BACKGROUND)
            assigned.append([0.0] * 4)
    return torch.tensor(classes), torch.tensor(assigned)


class TestTargets:
    def test_default_size_ranges(self):
        assert default_size_ranges([8, 16, 32]) == [(0.0, 64.0), (64.0, 128.0), (128.0, math.inf)]

    def test_matches_brute_force_on_random_boxes(self):
        g = torch.Generator().manual_seed(0)
        _, locations, strides, ranges = _grid()
        for trial in range(5):
            n = 6
            xy = torch.rand(n, 2, generator=g) * torch.tensor([SIZE[1], SIZE[0]])
            wh = 3 + torch.rand(n, 2, generator=g) * 30
            boxes = torch.cat([xy, xy + wh], dim=1)
            labels = torch.randint(0, 3, (n,), generator=g)
            crowd = torch.rand(n, generator=g) < 0.2
            got = fcos_targets(locations, strides, ranges, boxes, labels, crowd, radius=1.5)
            want = brute_force_targets(locations, strides, ranges, boxes, labels, crowd, 1.5)
            assert torch.equal(got[0], want[0]), trial
            assert torch.allclose(got[1], want[1].float()), trial
            assert (got[0] >= 0).any() or trial  # at least some positives in general

    def test_hand_computed_single_box(self):
        # One 10x10 box at (4, 4)-(14, 14) on the stride-4 level: centre (9, 9), radius 1.5*4 = 6
        # -> sub-box (4, 4)-(14, 14) clipped to the box; locations at 2, 6, 10, 14, ...: x, y in
        # {6, 10} are inside; reach <= 8*4 = 32, so the stride-4 level keeps them.
        locations = level_locations([(4, 4)], [4])[0]
        strides = torch.full((16,), 4.0)
        ranges = torch.tensor([[0.0, 32.0]]).expand(16, 2)
        classes, assigned = fcos_targets(
            locations, strides, ranges, torch.tensor([[4.0, 4.0, 14.0, 14.0]]), torch.tensor([2])
        )
        positive = {tuple(p) for p in locations[classes == 2].tolist()}
        assert positive == {(6.0, 6.0), (10.0, 6.0), (6.0, 10.0), (10.0, 10.0)}
        assert (classes[classes != 2] == BACKGROUND).all()
        assert torch.equal(assigned[classes == 2][0], torch.tensor([4.0, 4.0, 14.0, 14.0]))

    def test_smaller_box_wins_and_crowd_is_ignored(self):
        locations = torch.tensor([[10.0, 10.0], [30.0, 30.0]])
        strides = torch.tensor([8.0, 8.0])
        ranges = torch.tensor([[0.0, math.inf]] * 2)
        boxes = torch.tensor(
            [[0.0, 0.0, 20.0, 20.0], [5.0, 5.0, 15.0, 15.0], [25.0, 25.0, 40.0, 40.0]]
        )
        labels = torch.tensor([0, 1, 2])
        classes, _ = fcos_targets(
            locations, strides, ranges, boxes, labels, torch.tensor([False, False, True])
        )
        assert classes.tolist() == [1, IGNORE]

    def test_no_boxes(self):
        _, locations, strides, ranges = _grid()
        classes, assigned = fcos_targets(
            locations, strides, ranges, torch.zeros(0, 4), torch.zeros(0, dtype=torch.long)
        )
        assert (classes == BACKGROUND).all() and not assigned.any()


def _maps(batch=2, k=3, fill=-4.0):
    sizes = [(SIZE[0] // s, SIZE[1] // s) for s in STRIDES]
    cls = [torch.full((batch, k, h, w), fill) for h, w in sizes]
    dist = [torch.full((batch, 4, h, w), 5.0) for h, w in sizes]
    ctr = [torch.zeros(batch, 1, h, w) for h, w in sizes]
    return cls, dist, ctr


class TestLoss:
    def test_perfect_boxes_have_zero_box_loss(self):
        box = torch.tensor([[4.0, 4.0, 14.0, 14.0]])
        cls, dist, ctr = _maps(batch=1)
        # Every location predicts its exact distances to the box.
        for level, loc in enumerate(level_locations([c.shape[-2:] for c in cls], STRIDES)):
            h, w = cls[level].shape[-2:]
            ltrb = (
                torch.stack(
                    [loc[:, 0] - 4, loc[:, 1] - 4, 14 - loc[:, 0], 14 - loc[:, 1]], dim=1
                ).abs()
                + 1e-3
            )
            dist[level] = ltrb.T.reshape(1, 4, h, w)
        out = fcos_loss(cls, dist, ctr, STRIDES, [box], [torch.tensor([1])])
        assert out["box"].item() == pytest.approx(0.0, abs=1e-3)
        assert out["loss"].item() == pytest.approx(
            (out["classification"] + out["box"] + out["centerness"]).item()
        )

    def test_classification_is_torchvision_focal_loss_over_positives(self):
        cls, dist, ctr = _maps(batch=1, k=2, fill=0.3)
        boxes, labels = [torch.tensor([[4.0, 4.0, 14.0, 14.0]])], [torch.tensor([1])]
        out = fcos_loss(cls, dist, ctr, STRIDES, boxes, labels)
        _, locations, strides, ranges = _grid()
        classes, _ = fcos_targets(locations, strides, ranges, boxes[0], labels[0])
        onehot = torch.zeros(len(classes), 2)
        onehot[classes >= 0, classes[classes >= 0]] = 1
        logits = torch.full((len(classes), 2), 0.3)
        want = sigmoid_focal_loss(logits, onehot, reduction="sum") / (classes >= 0).sum()
        assert out["classification"].item() == pytest.approx(want.item(), rel=1e-5)

    def test_empty_images_give_finite_loss_with_gradients(self):
        cls, dist, ctr = _maps()
        for t in cls + dist + ctr:
            t.requires_grad_(True)
        none = [torch.zeros(0, 4), torch.zeros(0, 4)]
        out = fcos_loss(cls, dist, ctr, STRIDES, none, [torch.zeros(0, dtype=torch.long)] * 2)
        out["loss"].backward()
        assert math.isfinite(out["loss"].item()) and out["box"].item() == 0.0
        assert all(t.grad is not None for t in cls + dist + ctr)

    def test_level_count_mismatch_is_an_error(self):
        cls, dist, ctr = _maps()
        with pytest.raises(ValueError, match="levels"):
            fcos_loss(cls[:2], dist, ctr, STRIDES, [torch.zeros(0, 4)] * 2, [torch.zeros(0)] * 2)
