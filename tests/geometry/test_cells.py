"""Tests of pixelwise.geometry.cells: padding, keypoints -> cell labels, logits <-> heatmaps."""

import math

import numpy as np
import pytest
import torch

from pixelwise.geometry.cells import (
    crop_to_size,
    heatmap_to_cell_distribution,
    keypoints_to_cell_labels,
    logits_to_heatmap,
    pad_to_multiple,
)


def naive_labels(points, h, w):
    """Loop reference for cells holding at most one point: class dy*8+dx, 64 elsewhere."""
    out = np.full((math.ceil(h / 8), math.ceil(w / 8)), 64, dtype=np.int64)
    for x, y in points:
        px, py = math.floor(x + 0.5), math.floor(y + 0.5)
        if 0 <= px < w and 0 <= py < h:
            out[py // 8, px // 8] = (py % 8) * 8 + (px % 8)
    return out


class TestPadCrop:
    def test_replicate_pad_values_and_crop_back(self):
        x = torch.arange(3 * 5, dtype=torch.float32).view(1, 1, 3, 5)
        p = pad_to_multiple(x, 4)
        assert p.shape == (1, 1, 4, 8)
        # bottom row repeats the last row, right columns repeat the last column
        assert torch.equal(p[0, 0, 3, :5], x[0, 0, 2])
        assert torch.equal(p[0, 0, :3, 7], x[0, 0, :, 4])
        assert p[0, 0, 3, 7] == x[0, 0, 2, 4]
        assert torch.equal(crop_to_size(p, (3, 5)), x)

    def test_constant_pad_and_no_copy_when_multiple(self):
        x = torch.ones(2, 1, 8, 16)
        assert pad_to_multiple(x) is x
        p = pad_to_multiple(torch.ones(1, 1, 9, 8), 8, mode="constant", value=-1.0)
        assert p.shape == (1, 1, 16, 8)
        assert (p[0, 0, 9:] == -1).all() and (p[0, 0, :9] == 1).all()

    def test_bool_mask_replicate(self):
        m = torch.tensor([[[[True, False, False]]]])
        p = pad_to_multiple(m, 4)
        assert p.dtype == torch.bool and p.shape == (1, 1, 4, 4)
        assert p[0, 0, 3].tolist() == [True, False, False, False]

    def test_bad_input(self):
        with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
            pad_to_multiple(torch.ones(8, 8))
        with pytest.raises(ValueError, match="mode"):
            pad_to_multiple(torch.ones(1, 1, 3, 3), mode="reflect")
        with pytest.raises(ValueError, match="larger"):
            crop_to_size(torch.ones(1, 1, 4, 4), (5, 4))


class TestKeypointsToCellLabels:
    def test_hand_case(self):
        # (10, 3): pixel x=10, y=3 -> cell row 0, col 1, dx=2, dy=3 -> class 26
        labels = keypoints_to_cell_labels(torch.tensor([[10.0, 3.0]]), (16, 16))
        assert labels.shape == (1, 2, 2) and labels.dtype == torch.long
        assert labels[0].tolist() == [[64, 26], [64, 64]]

    def test_rounding_to_pixel(self):
        # x = 7.5 rounds up into the next cell (pixel 8); y = 2.49 rounds down to 2
        labels = keypoints_to_cell_labels([torch.tensor([[7.5, 2.49]])], (8, 16))
        assert labels[0].tolist() == [[64, 2 * 8 + 0]]
        labels = keypoints_to_cell_labels([torch.tensor([[7.49, 7.49]])], (8, 16))
        assert labels[0].tolist() == [[63, 64]]

    def test_points_outside_and_nonfinite_dropped(self):
        pts = torch.tensor(
            [
                [-0.6, 0.0],
                [15.5, 0.0],
                [0.0, 8.5],
                [float("nan"), 1.0],
                [float("inf"), 2.0],
                [15.49, 7.0],
            ]
        )
        labels = keypoints_to_cell_labels(pts, (8, 16))
        # only (15.49, 7) survives: pixel (15, 7) -> cell col 1, class 7*8+7
        assert labels[0].tolist() == [[64, 63]]
        # (-0.49, 0) rounds to pixel 0: inside
        assert keypoints_to_cell_labels(torch.tensor([[-0.49, 0.0]]), (8, 8))[0, 0, 0] == 0

    def test_matches_loop_reference_random(self):
        g = torch.Generator().manual_seed(0)
        h, w = 37, 53  # not multiples of 8: padded grid 5 x 7
        # one point per cell at most: pick distinct cells, a random pixel inside each
        cells = torch.randperm(5 * 7, generator=g)[:20]
        pts = []
        for c in cells.tolist():
            cy, cx = divmod(c, 7)
            x = cx * 8 + torch.rand(1, generator=g).item() * 8 - 0.5
            y = cy * 8 + torch.rand(1, generator=g).item() * 8 - 0.5
            pts.append((x, y))
        labels = keypoints_to_cell_labels(torch.tensor(pts), (h, w))
        assert labels.shape == (1, 5, 7)
        np.testing.assert_array_equal(labels[0].numpy(), naive_labels(pts, h, w))

    def test_several_points_in_a_cell_seeded_random_choice(self):
        pts = torch.tensor([[1.0, 1.0], [5.0, 6.0]])  # both in cell (0, 0): classes 9 and 53
        a = keypoints_to_cell_labels(pts, (8, 8), generator=torch.Generator().manual_seed(3))
        b = keypoints_to_cell_labels(pts, (8, 8), generator=torch.Generator().manual_seed(3))
        assert torch.equal(a, b)
        picks = [
            keypoints_to_cell_labels(pts, (8, 8), generator=torch.Generator().manual_seed(s))[
                0, 0, 0
            ].item()
            for s in range(400)
        ]
        assert set(picks) == {9, 53}
        assert 0.4 < picks.count(9) / len(picks) < 0.6  # uniform choice

    def test_batch_forms_and_empty(self):
        a = torch.tensor([[3.0, 3.0]])
        empty = torch.zeros(0, 2)
        labels = keypoints_to_cell_labels([a, empty, torch.zeros(0)], (8, 8))
        assert labels[:, 0, 0].tolist() == [27, 64, 64]
        stacked = keypoints_to_cell_labels(torch.stack([a, a + 8]), (16, 16))
        assert stacked.shape == (2, 2, 2)
        assert stacked[0, 0, 0] == 27 and stacked[1, 1, 1] == 27

    def test_valid_mask_ignores_touched_cells(self):
        valid = torch.ones(20, 13, dtype=torch.bool)
        valid[9, 5] = False  # pixel x=5, y=9 -> cell row 1, col 0
        labels = keypoints_to_cell_labels(
            torch.tensor([[4.0, 10.0], [9.0, 1.0]]), (20, 13), valid_mask=valid
        )
        assert labels.shape == (1, 3, 2)
        assert labels[0].tolist() == [[64, 9], [255, 64], [64, 64]]
        # batch mask, and padding pixels (rows 20..23, cols 13..15) count as valid
        labels = keypoints_to_cell_labels(
            [torch.zeros(0, 2)] * 2, (20, 13), valid_mask=valid.expand(2, -1, -1)
        )
        assert (labels == 255).sum() == 2

    def test_bad_input(self):
        with pytest.raises(ValueError, match=r"\[N, 2\]"):
            keypoints_to_cell_labels(torch.ones(3, 3), (8, 8))
        with pytest.raises(ValueError, match="shape must be"):
            keypoints_to_cell_labels(torch.ones(1, 2), (8,))
        with pytest.raises(ValueError, match="valid_mask"):
            keypoints_to_cell_labels(
                torch.ones(1, 2), (8, 8), valid_mask=torch.ones(7, 8, dtype=torch.bool)
            )
        with pytest.raises(TypeError, match="keypoints"):
            keypoints_to_cell_labels([[1.0, 2.0]], (8, 8))


class TestHeatmaps:
    def test_logits_to_heatmap_matches_loop(self):
        g = torch.Generator().manual_seed(1)
        logits = torch.randn(2, 65, 3, 4, generator=g)
        heat = logits_to_heatmap(logits)
        assert heat.shape == (2, 1, 24, 32)
        prob = torch.softmax(logits, 1)
        ref = torch.zeros(2, 1, 24, 32)
        for b in range(2):
            for i in range(3):
                for j in range(4):
                    for dy in range(8):
                        for dx in range(8):
                            ref[b, 0, 8 * i + dy, 8 * j + dx] = prob[b, dy * 8 + dx, i, j]
        torch.testing.assert_close(heat, ref)
        assert logits_to_heatmap(logits, image_size=(20, 30)).shape == (2, 1, 20, 30)

    def test_peak_position(self):
        logits = torch.zeros(1, 65, 2, 2)
        logits[0, 5 * 8 + 3, 1, 0] = 20.0  # cell row 1, col 0, dy=5, dx=3 -> (x=3, y=13)
        heat = logits_to_heatmap(logits)
        y, x = divmod(int(heat.flatten().argmax()), 16)
        assert (x, y) == (3, 13)

    def test_cell_distribution_inverts_softmax(self):
        logits = torch.randn(2, 65, 3, 5, generator=torch.Generator().manual_seed(2))
        dist = heatmap_to_cell_distribution(logits_to_heatmap(logits))
        torch.testing.assert_close(dist, torch.softmax(logits, 1), atol=1e-6, rtol=1e-5)

    def test_cell_distribution_hand_cases(self):
        heat = torch.zeros(1, 1, 8, 16)
        heat[0, 0, 2, 1] = 1.0  # cell 0: class 17 with mass 1, dustbin 0
        heat[0, 0, 0, 8] = 0.9  # cell 1: classes 0 and 9 with mass 1.5 -> renormalised, dustbin 0
        heat[0, 0, 1, 9] = 0.6
        d = heatmap_to_cell_distribution(heat)
        assert d.shape == (1, 65, 1, 2)
        assert d[0, 17, 0, 0] == 1.0 and d[0, 64, 0, 0] == 0.0
        torch.testing.assert_close(d[0, [0, 9, 64], 0, 1], torch.tensor([0.6, 0.4, 0.0]))
        z = heatmap_to_cell_distribution(torch.zeros(1, 1, 5, 5))  # padded to 8x8, all dustbin
        assert z.shape == (1, 65, 1, 1) and z[0, 64, 0, 0] == 1.0

    def test_bad_input(self):
        with pytest.raises(ValueError, match="65"):
            logits_to_heatmap(torch.zeros(1, 64, 2, 2))
        with pytest.raises(ValueError, match=">= 0"):
            heatmap_to_cell_distribution(-torch.ones(1, 1, 8, 8))
        with pytest.raises(ValueError, match=r"\[B, 1, H, W\]"):
            heatmap_to_cell_distribution(torch.ones(1, 2, 8, 8))
