"""Tests of SyntheticScenes and its renderer: determinism, labels, transforms, statistics, errors."""

import albumentations as A
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from pixelwise.data.synthetic_scenes import (
    SCENE_CLASSES,
    SCENE_PALETTE,
    SyntheticScenes,
    segment_boundaries,
)

SKY, ROAD, BUILDING = 1, 2, 4
THINGS = (6, 7, 8)  # car, truck, pedestrian


def brute_force_boundaries(mask: np.ndarray, inst: np.ndarray) -> np.ndarray:
    """Naive loop: a pixel is a boundary if a 4-neighbour inside the image has another segment."""
    h, w = mask.shape
    out = np.zeros((h, w), dtype=bool)
    for y in range(h):
        for x in range(w):
            for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
                yy, xx = y + dy, x + dx
                if 0 <= yy < h and 0 <= xx < w:
                    if mask[yy, xx] != mask[y, x] or inst[yy, xx] != inst[y, x]:
                        out[y, x] = True
    return out


@pytest.fixture(scope="module")
def small_items():
    """Twelve rendered validation scenes at 96x128, shared by the label tests."""
    ds = SyntheticScenes(size=(96, 128), length=12, seed=3, split="val")
    return [ds.render(i) for i in range(len(ds))]


class TestDeterminism:
    def test_same_item_twice_and_across_objects(self):
        a = SyntheticScenes(length=10, seed=7)
        b = SyntheticScenes(length=10, seed=7)
        first = a[4]
        for other in (a[4], b[4]):
            for key in first:
                assert torch.equal(first[key], other[key]), key

    def test_access_order_does_not_matter(self):
        a = SyntheticScenes(length=10, seed=1)
        fresh = a.render(6)
        b = SyntheticScenes(length=10, seed=1)
        for i in (9, 2, 0):
            b.render(i)
        later = b.render(6)
        for key in fresh:
            np.testing.assert_array_equal(fresh[key], later[key])

    def test_dataloader_workers_match_single_process(self):
        ds = SyntheticScenes(size=(48, 64), length=4, seed=5)
        single = list(DataLoader(ds, batch_size=2, num_workers=0))
        multi = list(DataLoader(ds, batch_size=2, num_workers=2))
        for s, m in zip(single, multi, strict=True):
            for key in s:
                assert torch.equal(s[key], m[key]), key

    def test_splits_and_seeds_give_different_scenes(self):
        imgs = [
            SyntheticScenes(length=2, seed=0, split="train")[1]["image"],
            SyntheticScenes(length=2, seed=0, split="val")[1]["image"],
            SyntheticScenes(length=2, seed=0, split="test")[1]["image"],
            SyntheticScenes(length=2, seed=1, split="train")[1]["image"],
            SyntheticScenes(length=2, seed=0, split="train")[0]["image"],
        ]
        for i in range(len(imgs)):
            for j in range(i + 1, len(imgs)):
                # Different scenes differ in a large share of pixels, not only in noise.
                assert (imgs[i] - imgs[j]).abs().mean() > 0.05, (i, j)


class TestItems:
    def test_shapes_dtypes_and_attributes(self):
        ds = SyntheticScenes(size=(64, 80), length=3)
        item = ds[2]
        assert item["image"].shape == (3, 64, 80) and item["image"].dtype == torch.float32
        assert 0.0 <= item["image"].min() and item["image"].max() <= 1.0
        assert item["mask"].shape == (64, 80) and item["mask"].dtype == torch.long
        assert item["instances"].shape == (64, 80) and item["instances"].dtype == torch.long
        assert item["boundaries"].shape == (64, 80) and item["boundaries"].dtype == torch.bool
        assert len(ds) == 3 and ds.num_classes == 9 and ds.ignore_index == 255
        assert ds.class_names == SCENE_CLASSES
        assert SCENE_CLASSES[0] == "unknown" and SCENE_CLASSES[8] == "pedestrian"
        assert SCENE_PALETTE.shape == (9, 3) and SCENE_PALETTE.dtype == np.uint8
        assert len({tuple(c) for c in SCENE_PALETTE.tolist()}) == 9

    def test_render_matches_getitem(self):
        ds = SyntheticScenes(length=3, seed=2)
        raw, item = ds.render(1), ds[1]
        assert raw["image"].dtype == np.uint8 and raw["image"].shape == (96, 128, 3)
        np.testing.assert_allclose(
            item["image"].numpy(), raw["image"].transpose(2, 0, 1) / 255.0, atol=1e-6
        )
        np.testing.assert_array_equal(item["mask"].numpy(), raw["mask"])
        np.testing.assert_array_equal(item["instances"].numpy(), raw["instances"])
        np.testing.assert_array_equal(item["boundaries"].numpy(), raw["boundaries"])

    def test_negative_index_counts_from_the_end(self):
        ds = SyntheticScenes(length=5, seed=2)
        np.testing.assert_array_equal(ds.render(-1)["mask"], ds.render(4)["mask"])


class TestLabels:
    def test_mask_values_in_range(self, small_items):
        for it in small_items:
            assert it["mask"].min() >= 0 and it["mask"].max() <= 8

    def test_instances_exactly_on_thing_pixels(self, small_items):
        for it in small_items:
            things = np.isin(it["mask"], THINGS)
            np.testing.assert_array_equal(it["instances"] > 0, things)

    def test_instance_ids_are_1_to_n_and_single_class(self, small_items):
        for it in small_items:
            ids = np.unique(it["instances"])
            ids = ids[ids > 0]
            np.testing.assert_array_equal(ids, np.arange(1, len(ids) + 1))
            for i in ids:
                assert len(np.unique(it["mask"][it["instances"] == i])) == 1

    def test_several_instances_per_image(self, small_items):
        counts = [it["instances"].max() for it in small_items]
        assert min(counts) >= 2 and np.mean(counts) >= 5

    def test_boundaries_equal_brute_force_loop(self):
        ds = SyntheticScenes(size=(32, 48), length=3, seed=11)
        for i in range(3):
            it = ds.render(i)
            ref = brute_force_boundaries(it["mask"], it["instances"])
            np.testing.assert_array_equal(it["boundaries"], ref)

    def test_boundaries_between_touching_instances_of_one_class(self):
        # Two cars side by side: same class, different instances -> a boundary on both sides.
        mask = np.full((4, 6), 6, dtype=np.uint8)
        inst = np.array([[1, 1, 1, 2, 2, 2]] * 4, dtype=np.int32)
        expected = np.zeros((4, 6), dtype=bool)
        expected[:, 2:4] = True
        np.testing.assert_array_equal(segment_boundaries(mask, inst), expected)
        np.testing.assert_array_equal(brute_force_boundaries(mask, inst), expected)

    def test_layout_sky_above_buildings_above_road(self, small_items):
        for it in small_items:
            rows = np.arange(it["mask"].shape[0])[:, None]
            mean_row = {
                c: rows.repeat(128, 1)[it["mask"] == c].mean() for c in (SKY, BUILDING, ROAD)
            }
            assert mean_row[SKY] < mean_row[BUILDING] < mean_row[ROAD]

    def test_perspective_nearer_pedestrians_are_taller(self):
        # Pedestrians stand on the ground: the lower their feet, the nearer and taller they are.
        feet, heights = [], []
        ds = SyntheticScenes(length=30, seed=4)
        for i in range(len(ds)):
            it = ds.render(i)
            for j in range(1, it["instances"].max() + 1):
                ys, _ = np.nonzero(it["instances"] == j)
                if it["mask"][it["instances"] == j][0] == 8 and ys.max() < 95 and len(ys) > 20:
                    feet.append(ys.max())
                    heights.append(ys.max() - ys.min() + 1)
        assert len(feet) > 30
        assert np.corrcoef(feet, heights)[0, 1] > 0.6


class TestTransform:
    def test_horizontal_flip_applied_jointly(self):
        plain = SyntheticScenes(length=2, seed=9)
        flipped = SyntheticScenes(length=2, seed=9, transform=A.Compose([A.HorizontalFlip(p=1)]))
        a, b = plain[1], flipped[1]
        for key in ("image", "mask", "instances", "boundaries"):
            assert torch.equal(b[key], a[key].flip(-1)), key
        assert b["mask"].dtype == torch.long and b["boundaries"].dtype == torch.bool

    def test_crop_keeps_labels_aligned(self):
        plain = SyntheticScenes(length=1, seed=9)
        crop = SyntheticScenes(
            length=1, seed=9, transform=A.Compose([A.Crop(x_min=10, y_min=20, x_max=74, y_max=68)])
        )
        a, b = plain[0], crop[0]
        assert b["image"].shape == (3, 48, 64)
        for key in ("image", "mask", "instances", "boundaries"):
            assert torch.equal(b[key], a[key][..., 20:68, 10:74]), key


class TestStatistics:
    def test_every_class_present_with_a_good_share(self):
        ds = SyntheticScenes(length=50, seed=0, split="train")
        present = np.zeros(9)
        pixels = np.zeros(9)
        for i in range(len(ds)):
            counts = np.bincount(ds.render(i)["mask"].ravel(), minlength=9)
            present += counts >= 20  # a visible blob, not a stray pixel
            pixels += counts
        share = pixels / pixels.sum()
        for c, name in enumerate(SCENE_CLASSES):
            assert present[c] >= 0.8 * len(ds), (name, present[c])
            assert share[c] >= 0.015, (name, share[c])


class TestErrors:
    @pytest.mark.parametrize("split", ["training", "", None, "TRAIN"])
    def test_bad_split(self, split):
        with pytest.raises(ValueError, match=r"split=.*expected one of \['test', 'train', 'val'\]"):
            SyntheticScenes(split=split)

    @pytest.mark.parametrize(
        "size",
        [(96,), (96, 128, 3), (16, 128), (96, 10_000), (96.0, 128), "96x128", 96, (True, 64)],
    )
    def test_bad_size(self, size):
        with pytest.raises(ValueError, match=r"size=.*expected \(height, width\)"):
            SyntheticScenes(size=size)

    @pytest.mark.parametrize(
        "kwargs", [{"length": -1}, {"length": 2.5}, {"seed": -3}, {"seed": "0"}]
    )
    def test_bad_length_or_seed(self, kwargs):
        ((name, value),) = kwargs.items()
        with pytest.raises(ValueError, match=rf"{name}={value!r} is invalid"):
            SyntheticScenes(**kwargs)

    def test_transform_not_callable(self):
        with pytest.raises(TypeError, match="transform=.*not callable"):
            SyntheticScenes(transform="hflip")

    @pytest.mark.parametrize("index", [5, 100, -6])
    def test_index_out_of_range(self, index):
        ds = SyntheticScenes(length=5)
        with pytest.raises(IndexError, match=f"index {index} is out of range.*length 5"):
            ds[index]
        with pytest.raises(IndexError):
            ds.render(index)
