import cv2
import numpy as np
import pytest
import torch

from pixelwise.data.synthetic_edges import SyntheticEdges, region_boundaries, simulate_annotators


def two_halves(left=(0, 0, 0), right=(255, 255, 255), h=6, w=10):
    """Image, mask, instances: class 1 in columns < 5, class 2 from column 5."""
    mask = np.ones((h, w), np.uint8)
    mask[:, 5:] = 2
    image = np.zeros((h, w, 3), np.uint8)
    image[:, :5], image[:, 5:] = left, right
    return image, mask, np.zeros((h, w), np.int32)


def naive_boundaries(regions):
    """Pixel loop: (y, x) is on a boundary if its right or lower neighbour differs."""
    h, w = regions.shape
    return {
        (y, x)
        for y in range(h)
        for x in range(w)
        if (x + 1 < w and regions[y, x] != regions[y, x + 1])
        or (y + 1 < h and regions[y, x] != regions[y + 1, x])
    }


class TestRegionBoundaries:
    def test_equals_pixel_loop(self):
        regions = np.random.default_rng(0).integers(0, 3, (7, 9))
        y, x, a, b = region_boundaries(regions)
        assert set(zip(y.tolist(), x.tolist())) == naive_boundaries(regions)
        assert np.all(a != b) and np.all(regions[y, x] == a)


class TestSimulateAnnotators:
    def test_careful_annotators_trace_the_boundary_exactly(self):
        image, mask, inst = two_halves()
        out = simulate_annotators(
            image, mask, inst, np.random.default_rng(0), annotators=3, shift_prob=0
        )
        assert out.shape == (3, 6, 10) and out.dtype == bool
        expected = np.zeros((6, 10), bool)
        expected[:, 4] = True  # the left side of the class boundary between columns 4 and 5
        assert all(np.array_equal(o, expected) for o in out)

    def test_shifted_strokes_stay_within_one_pixel(self):
        image, mask, inst = two_halves()
        shifted = 0
        for seed in range(20):
            out = simulate_annotators(
                image, mask, inst, np.random.default_rng(seed), 3, shift_prob=1
            )
            for o in out:
                cols = np.nonzero(o)[1]
                assert o.sum() >= 5 and set(cols.tolist()) <= {3, 4, 5}
                shifted += not np.all(cols == 4)
        assert shifted > 30  # 3 of 8 shifts keep the column; 60 strokes

    def test_small_regions_are_dropped_by_the_less_careful(self):
        # A 2x2 region (4 of 400 pixels = 1%) on a high-contrast background.
        mask = np.ones((20, 20), np.uint8)
        mask[8:10, 8:10] = 2
        image = np.where(mask[..., None] == 2, 255, 0).astype(np.uint8).repeat(3, 2)
        out = simulate_annotators(
            image,
            mask,
            np.zeros_like(mask, np.int32),
            np.random.default_rng(1),
            annotators=4,
            shift_prob=0,
            max_drop_area=0.05,
            max_drop_contrast=0,
        )
        # Thresholds 0.05 * (k + u) / 4 * 400 = 5 (k + u) pixels: annotator 0 keeps the 4-pixel
        # region when 5 u <= 4, annotators 1..3 (>= 5 px) drop it.
        u = np.random.default_rng(1).random()
        assert 5 * u <= 4
        assert out[0].sum() == 7 and not out[1:].any()  # 7 pixels: the square's one-sided outline

    def test_low_contrast_boundaries_are_dropped_by_some(self):
        image, mask, inst = two_halves(
            left=(100, 100, 100), right=(110, 100, 100)
        )  # contrast 10/255
        out = simulate_annotators(
            image,
            mask,
            inst,
            np.random.default_rng(3),
            annotators=4,
            shift_prob=0,
            max_drop_area=0,
            max_drop_contrast=0.1,
        )
        u = np.random.default_rng(3).random()  # the per-image offset, the first draw
        kept = (np.arange(4) + u) / 4 * 0.1 <= 10 / 255
        assert [bool(o.any()) for o in out] == kept.tolist()
        assert kept[0] and not kept[-1]

    def test_instances_separate_regions_of_one_class(self):
        image, mask, inst = two_halves(right=(0, 0, 0))
        mask[:] = 1
        inst[:, 5:] = 7
        out = simulate_annotators(
            image * 0 + 255, mask, inst, np.random.default_rng(0), 1, 0, max_drop_contrast=0
        )
        assert np.nonzero(out[0])[1].tolist() == [4] * 6

    def test_deterministic_for_a_seed(self):
        image, mask, inst = two_halves()
        a = simulate_annotators(image, mask, inst, np.random.default_rng(5), 4)
        b = simulate_annotators(image, mask, inst, np.random.default_rng(5), 4)
        assert np.array_equal(a, b)

    def test_bad_options(self):
        image, mask, inst = two_halves()
        with pytest.raises(ValueError, match="annotators=0"):
            simulate_annotators(image, mask, inst, np.random.default_rng(0), annotators=0)
        with pytest.raises(ValueError, match="shift_prob=2"):
            simulate_annotators(image, mask, inst, np.random.default_rng(0), shift_prob=2)


class TestSyntheticEdges:
    def test_items_are_deterministic_per_index_and_split(self):
        a = SyntheticEdges("val", size=(32, 48), length=3, seed=0, annotators=3)
        b = SyntheticEdges("val", size=(32, 48), length=3, seed=0, annotators=3)
        x, y = a[2], b[2]
        assert torch.equal(x["image"], y["image"]) and torch.equal(x["edges"], y["edges"])
        assert x["name"] == "val_00002"
        other = SyntheticEdges("test", size=(32, 48), length=3, seed=0, annotators=3)[2]
        assert not torch.equal(x["image"], other["image"])

    def test_annotators_trace_the_scene_boundaries_and_disagree(self):
        ds = SyntheticEdges("train", size=(48, 64), length=4, annotators=4, shift_prob=0.3)
        disagree = 0
        for i in range(len(ds)):
            scene = ds.scenes.render(i)
            _, annotations = ds.render(i)
            # Every drawn pixel lies within one pixel of a (two-sided) scene boundary.
            near = cv2.dilate(scene["boundaries"].astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
            assert not (annotations & ~near).any()
            assert annotations.any(axis=(1, 2)).all()
            mean = annotations.mean(0)
            disagree += int(((mean > 0) & (mean < 1)).sum())
        assert disagree > 0

    @pytest.mark.parametrize("mode, k", [("each", 3), ("mean", 1), ("consensus", 1)])
    def test_label_modes(self, mode, k):
        item = SyntheticEdges("train", size=(32, 48), length=1, annotators=3, label_mode=mode)[0]
        assert item["image"].shape == (3, 32, 48) and item["image"].dtype == torch.float32
        assert item["edges"].shape == (3, 32, 48) and item["edges"].dtype == torch.bool
        assert item["targets"].shape == item["weights"].shape == (k, 32, 48)
        frac = item["edges"].float().mean(0)
        if mode != "each":
            assert torch.equal(item["targets"][0], (frac >= 0.5).float())

    def test_bad_options(self):
        with pytest.raises(ValueError, match="label_mode='vote'"):
            SyntheticEdges(label_mode="vote")
        with pytest.raises(ValueError, match="annotators=0"):
            SyntheticEdges(annotators=0)
