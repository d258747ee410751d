"""Tests of pixelwise.geometry.keypoints: batched NMS == the official demo's greedy NMS; extraction."""

import numpy as np
import pytest
import torch

from pixelwise.geometry.keypoints import (
    MAGICPOINT_EVAL_EXTRACTION,
    SUPERPOINT_EXTRACTION,
    Extraction,
    box_iou_offsets,
    extract_keypoints,
    nms_heatmap,
)


def greedy_nms_reference(heat: np.ndarray, threshold: float, radius: int) -> set[tuple[int, int]]:
    """The official demo's nms_fast, rewritten: candidates >= threshold, best first, square suppression.

    Sorting is stable over row-major order (the demo's np.argsort is not, which only matters for ties).
    """
    ys, xs = np.nonzero(heat >= threshold)
    scores = heat[ys, xs]
    order = np.argsort(-scores, kind="stable")
    h, w = heat.shape
    grid = np.zeros((h + 2 * radius, w + 2 * radius), dtype=int)
    grid[ys + radius, xs + radius] = 1
    kept = set()
    for i in order:
        y, x = ys[i] + radius, xs[i] + radius
        if grid[y, x] == 1:
            grid[y - radius : y + radius + 1, x - radius : x + radius + 1] = 0
            grid[y, x] = -1
            kept.add((int(xs[i]), int(ys[i])))
    return kept


def kept_set(nms_out: np.ndarray) -> set[tuple[int, int]]:
    ys, xs = np.nonzero(nms_out > 0)
    return {(int(x), int(y)) for x, y in zip(xs, ys)}


class TestNmsHeatmap:
    @pytest.mark.parametrize("radius", [1, 2, 4, 7])
    def test_equals_greedy_on_random_heatmaps(self, radius):
        g = torch.Generator().manual_seed(radius)
        heat = torch.rand(3, 1, 37, 45, generator=g) ** 4  # many candidates, some dense clusters
        heat = torch.where(heat > 0.05, heat, torch.zeros_like(heat))
        out = nms_heatmap(heat, radius)
        for b in range(3):
            assert kept_set(out[b, 0].numpy()) == greedy_nms_reference(
                heat[b, 0].numpy(), 1e-12, radius
            )
        # kept pixels carry their score, the rest is 0
        kept = out > 0
        assert torch.equal(out[kept], heat[kept])

    def test_equals_greedy_with_ties(self):
        g = torch.Generator().manual_seed(7)
        heat = (
            torch.randint(0, 4, (2, 1, 30, 30), generator=g).float() / 3
        )  # values 0, 1/3, 2/3, 1: many ties
        out = nms_heatmap(heat, 3)
        for b in range(2):
            assert kept_set(out[b, 0].numpy()) == greedy_nms_reference(heat[b, 0].numpy(), 1e-12, 3)

    def test_smooth_ridge_needs_many_rounds(self):
        # monotone ramp: greedy keeps every (r+1)-th pixel from the top down
        heat = torch.zeros(1, 1, 5, 40)
        heat[0, 0, 2] = torch.linspace(0.1, 1.0, 40)
        out = nms_heatmap(heat, 4)
        assert sorted(x for x, _ in kept_set(out[0, 0].numpy())) == list(range(4, 40, 5))

    def test_hand_case(self):
        heat = torch.zeros(1, 1, 10, 10)
        heat[0, 0, 2, 2] = 0.9
        heat[0, 0, 3, 4] = 0.8  # within radius 2 of (2, 2): suppressed
        heat[0, 0, 2, 5] = (
            0.7  # 3 px from (2,2), its stronger neighbour (4,3) is suppressed: kept by greedy
        )
        out = nms_heatmap(heat, 2)
        assert kept_set(out[0, 0].numpy()) == {(2, 2), (5, 2)}

    def test_radius_zero_and_bad_input(self):
        heat = torch.rand(1, 1, 5, 5)
        torch.testing.assert_close(nms_heatmap(heat, 0), heat)
        with pytest.raises(ValueError, match=r"\[B, 1, H, W\]"):
            nms_heatmap(torch.rand(5, 5))
        with pytest.raises(ValueError, match="radius"):
            nms_heatmap(heat, -1)


class TestExtractKeypoints:
    def reference(self, heat, threshold, radius, border, top_k=None):
        """The official demo's pipeline: threshold, greedy NMS, sort by score, remove border."""
        h, w = heat.shape
        pts = [(x, y, heat[y, x]) for x, y in greedy_nms_reference(heat, threshold, radius)]
        pts = [p for p in pts if border <= p[0] < w - border and border <= p[1] < h - border]
        pts.sort(key=lambda p: -p[2])
        return pts[:top_k] if top_k is not None else pts

    @pytest.mark.parametrize("border,top_k", [(0, None), (4, None), (4, 5)])
    def test_matches_demo_pipeline(self, border, top_k):
        g = torch.Generator().manual_seed(11)
        heat = torch.rand(2, 1, 40, 48, generator=g) ** 6
        res = extract_keypoints(heat, threshold=0.2, nms_radius=4, border=border, top_k=top_k)
        assert len(res) == 2
        for b in range(2):
            ref = self.reference(heat[b, 0].numpy(), 0.2, 4, border, top_k)
            kps, scores = res[b]["keypoints"], res[b]["scores"]
            assert kps.dtype == torch.float32 and kps.shape == (len(ref), 2)
            assert kps.tolist() == [[float(x), float(y)] for x, y, _ in ref]
            np.testing.assert_allclose(scores.numpy(), [s for _, _, s in ref])

    def test_border_hand_case(self):
        heat = torch.zeros(1, 1, 20, 20)
        heat[0, 0, 10, 3] = 0.5  # x=3 < border 4: removed
        heat[0, 0, 10, 4] = 0.2  # suppressed by (3, 10) before the border removal, as in the demo
        heat[0, 0, 15, 15] = 0.9  # y=15 < 20-4: kept
        heat[0, 0, 16, 10] = 0.8  # y=16 >= 16: removed
        res = extract_keypoints(heat, threshold=0.1, nms_radius=4, border=4)[0]
        assert res["keypoints"].tolist() == [[15.0, 15.0]]
        assert res["scores"].tolist() == [pytest.approx(0.9)]

    def test_threshold_is_inclusive_and_empty(self):
        heat = torch.zeros(1, 1, 12, 12)
        heat[0, 0, 6, 6] = 0.015
        assert len(extract_keypoints(heat, threshold=0.015)[0]["scores"]) == 1
        empty = extract_keypoints(torch.zeros(2, 1, 12, 12))
        assert [e["keypoints"].shape for e in empty] == [(0, 2), (0, 2)]

    def test_bad_input(self):
        with pytest.raises(ValueError, match=r"\[B, 1, H, W\]"):
            extract_keypoints(torch.rand(1, 2, 8, 8))
        with pytest.raises(TypeError, match="float"):
            extract_keypoints(torch.ones(1, 1, 8, 8, dtype=torch.long))
        with pytest.raises(ValueError, match="top_k"):
            extract_keypoints(torch.rand(1, 1, 8, 8), top_k=-1)


def test_round_trip_labels_logits_heatmap_keypoints():
    """Keypoints -> cell labels -> confident logits -> heatmap -> extract_keypoints gives the pixels back."""
    from pixelwise.geometry.cells import keypoints_to_cell_labels, logits_to_heatmap

    h, w = 45, 70  # not multiples of 8
    # one point per cell, cells far enough apart that NMS (radius 4) keeps all
    pts = torch.tensor([[5.2, 6.7], [29.0, 4.4], [52.6, 20.1], [12.0, 36.0], [60.4, 38.5]])
    labels = keypoints_to_cell_labels(pts, (h, w))
    logits = torch.nn.functional.one_hot(labels, 65).permute(0, 3, 1, 2).float() * 30.0
    heat = logits_to_heatmap(logits, image_size=(h, w))
    assert heat.shape == (1, 1, h, w)
    res = extract_keypoints(heat, threshold=0.5, nms_radius=4, border=0)[0]
    got = sorted(map(tuple, res["keypoints"].tolist()))
    assert got == sorted(
        (float(np.floor(x + 0.5)), float(np.floor(y + 0.5))) for x, y in pts.tolist()
    )


class TestExtraction:
    def test_call_is_extract_keypoints_with_its_settings(self):
        torch.manual_seed(0)
        heat = torch.rand(2, 1, 20, 30).double()
        settings = Extraction(threshold=0.3, nms_radius=2, border=3, top_k=7)
        got = settings(heat)
        expected = extract_keypoints(heat.float(), threshold=0.3, nms_radius=2, border=3, top_k=7)
        for g, e in zip(got, expected):
            assert torch.equal(g["keypoints"], e["keypoints"]) and len(g["keypoints"]) == 7
            assert torch.equal(g["scores"], e["scores"])

    def test_the_named_defaults(self):
        assert SUPERPOINT_EXTRACTION == Extraction(0.015, 4, 4, 1000)  # the official demo
        assert MAGICPOINT_EVAL_EXTRACTION == Extraction(
            0.001, 4, 0, None, "box_iou"
        )  # rpautrat's eval

    @pytest.mark.parametrize(
        ("values", "keys", "match"),
        [
            ((1.5, 4, 0, None), None, r"task.detection_threshold=1.5: expected a probability"),
            ((0.1, -1, 0, None), None, "task.nms_radius=-1"),
            ((0.1, 4, -2, None), None, "task.border=-2"),
            ((0.1, 4, 0, 0), None, r"task.top_k=0: expected null"),
            ((0.1, 4, 0, 0), {"top_k": "max_keypoints"}, "task.max_keypoints=0"),
        ],
    )
    def test_checked_names_the_config_key(self, values, keys, match):
        with pytest.raises(ValueError, match=match):
            Extraction.checked(*values, keys=keys)
        assert Extraction.checked(0.1, 4, 0, None) == Extraction(0.1, 4, 0, None)


def test_task_configs_use_the_named_extraction_defaults():
    """The YAML defaults that matter say what the code's named defaults say."""
    from omegaconf import OmegaConf

    from pixelwise.cli import CONFIG_DIR

    def extraction(name, top_k_key="top_k"):
        task = OmegaConf.load(f"{CONFIG_DIR}/task/{name}.yaml").task
        return Extraction(
            task.detection_threshold,
            task.nms_radius,
            task.border,
            task[top_k_key],
            task.get("nms_shape", "square"),
        )

    assert extraction("magicpoint") == MAGICPOINT_EVAL_EXTRACTION
    assert extraction("superpoint", "max_keypoints") == SUPERPOINT_EXTRACTION
    adaptation = extraction("homographic_adaptation")
    assert adaptation == Extraction(**{**SUPERPOINT_EXTRACTION.__dict__, "top_k": None})


class TestBoxIouNms:
    """rpautrat's box_nms: greedy over boxes of side s centred on candidates, suppress at IoU > 0.1."""

    def test_offsets_of_side_4_by_hand(self):
        offsets = set(box_iou_offsets(4))
        # IoU of 4x4 boxes at (dx, dy) = a*b / (32 - a*b) with a = 4-|dx|, b = 4-|dy|; > 0.1 iff a*b >= 3.
        expected = {
            (dx, dy)
            for dx in range(-4, 5)
            for dy in range(-4, 5)
            if (4 - abs(dx)) * (4 - abs(dy)) >= 3
        }
        assert offsets == expected
        assert len(offsets) == 49 - 12  # the 7x7 square without (+-3, +-2), (+-2, +-3), (+-3, +-3)
        assert (3, 1) in offsets and (3, 2) not in offsets and (2, 2) in offsets

    @staticmethod
    def brute_force(heat, threshold, size):
        """Greedy NMS on explicit boxes as tf.image.non_max_suppression does (score order, row-major ties)."""
        h, w = heat.shape
        ys, xs = np.nonzero(heat >= threshold)
        scores = heat[ys, xs]
        order = np.argsort(-scores, kind="stable")
        kept = []
        for i in order:
            ok = True
            for j in kept:
                ix = max(0.0, size - abs(float(xs[i]) - xs[j]))
                iy = max(0.0, size - abs(float(ys[i]) - ys[j]))
                inter = ix * iy
                if inter / (2 * size * size - inter) > 0.1:
                    ok = False
                    break
            if ok:
                kept.append(i)
        return {(int(xs[i]), int(ys[i])) for i in kept}

    @pytest.mark.parametrize("seed", range(4))
    def test_matches_greedy_box_nms(self, seed):
        g = torch.Generator().manual_seed(seed)
        heat = torch.rand(1, 1, 30, 40, generator=g) ** 4
        heat[0, 0, 5:8, 5:8] = 0.5  # ties, broken row-major
        got = extract_keypoints(heat, threshold=0.01, nms_radius=4, border=0, nms_shape="box_iou")
        mine = {(int(x), int(y)) for x, y in got[0]["keypoints"].tolist()}
        assert mine == self.brute_force(heat[0, 0].numpy(), 0.01, 4)

    def test_unknown_shape_names_the_key(self):
        with pytest.raises(ValueError, match="task.nms_shape='circle'"):
            Extraction.checked(0.1, 4, 0, None, nms_shape="circle")
