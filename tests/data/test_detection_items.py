"""Tests of the shared detection item helpers: letterbox, tight boxes, box-aware transforms, checks."""

import albumentations as A
import numpy as np
import pytest
import torch

from pixelwise.data.detection_items import (
    boxes_from_instances,
    check_size,
    detection_item,
    letterbox,
    transform_with_boxes,
)


class TestLetterbox:
    def test_scale_and_bottom_right_padding(self):
        image = np.full((30, 60, 3), 200, np.uint8)
        out, s, masks = letterbox(image, (64, 64))
        assert s == pytest.approx(64 / 60) and out.shape == (64, 64, 3) and masks is None
        assert (out[:32] == 200).all() and (out[32:] == 0).all()

    def test_content_scales_by_exactly_s_in_both_axes(self):
        # a rectangle over columns [20, 60) and rows [10, 30) of a 50 x 100 image, s = 0.5:
        # its edges land on [10, 30) x [5, 15) and the area-average is exact there
        image = np.zeros((50, 100, 3), np.uint8)
        image[10:30, 20:60] = 255
        out, s, _ = letterbox(image, (40, 50))
        assert s == 0.5
        ys, xs = np.nonzero(out[..., 0] == 255)
        assert (xs.min(), xs.max() + 1, ys.min(), ys.max() + 1) == (10, 30, 5, 15)
        assert out[..., 0].sum() == 255 * 20 * 10

    def test_upscaling_keeps_the_image_centred_on_its_pixels(self):
        image = np.zeros((10, 10, 3), np.uint8)
        image[:, 5:] = 255
        out, s, _ = letterbox(image, (30, 40))  # s = 3: column 5 -> [15, 18)
        assert s == 3.0 and out.shape == (30, 40, 3)
        row = out[0, :30, 0].astype(int)
        assert row[14] < 128 < row[15] and (row[16:30] == 255).all() and (out[:, 30:] == 0).all()

    def test_masks_are_resized_centre_aligned(self):
        masks = np.zeros((1, 40, 80), np.uint8)
        masks[0, 10:30, 40:70] = 1
        _, s, out = letterbox(np.zeros((40, 80, 3), np.uint8), (64, 64), masks)
        assert s == 0.8 and out.shape == (1, 64, 64)
        ys, xs = np.nonzero(out[0])
        assert (xs.min(), xs.max() + 1, ys.min(), ys.max() + 1) == (32, 56, 8, 24)


class TestBoxesFromInstances:
    def test_against_a_loop(self):
        rng = np.random.default_rng(0)
        inst = np.zeros((20, 30), np.int32)
        for k in range(1, 6):
            y, x = rng.integers(0, 15), rng.integers(0, 25)
            inst[y : y + rng.integers(1, 6), x : x + rng.integers(1, 6)] = k
        n = 7  # ids 6 and 7 absent (or overwritten ones)
        boxes, counts = boxes_from_instances(inst, n)
        for k in range(1, n + 1):
            ys, xs = np.nonzero(inst == k)
            if len(xs):
                assert boxes[k - 1].tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
            else:
                assert boxes[k - 1].tolist() == [0, 0, 0, 0]
            assert counts[k - 1] == len(xs)

    def test_no_instances(self):
        boxes, counts = boxes_from_instances(np.zeros((4, 4), np.int32), 0)
        assert boxes.shape == (0, 4) and counts.shape == (0,)


class TestTransformWithBoxes:
    def test_keep_gives_the_rows_of_the_kept_boxes(self):
        t = A.Compose(
            [A.Crop(x_min=0, y_min=0, x_max=50, y_max=40)],
            bbox_params=A.BboxParams(format="pascal_voc", min_area=10),
        )
        boxes = np.array([[60, 0, 80, 10], [10, 10, 20, 20], [45, 0, 70, 10]], np.float32)
        image, out, keep, masks = transform_with_boxes(t, np.zeros((40, 80, 3), np.uint8), boxes)
        assert image.shape == (40, 50, 3) and masks is None
        assert keep.tolist() == [1, 2]  # the first box is outside; the third is cut to 5 x 10
        np.testing.assert_allclose(out, [[10, 10, 20, 20], [45, 0, 50, 10]], atol=1e-4)

    def test_no_boxes(self):
        t = A.Compose([A.HorizontalFlip(p=1)], bbox_params=A.BboxParams(format="pascal_voc"))
        _, out, keep, _ = transform_with_boxes(t, np.zeros((8, 8, 3), np.uint8), np.zeros((0, 4)))
        assert out.shape == (0, 4) and keep.shape == (0,)


def test_detection_item_types():
    item = detection_item(
        np.zeros((4, 6, 3), np.uint8),
        np.array([[0, 0, 2, 2]]),
        np.array([1]),
        np.array([0]),
        np.array([4.0]),
        image_id=9,
        scale=0.5,
        orig_size=(8, 12),
        name="x",
        masks=np.ones((1, 4, 6)),
    )
    assert item["boxes"].dtype == torch.float32 and item["labels"].dtype == torch.int64
    assert item["iscrowd"].dtype == torch.bool and item["masks"].dtype == torch.uint8
    assert item["orig_size"].tolist() == [8, 12] and item["scale"] == 0.5 and item["image_id"] == 9


@pytest.mark.parametrize("size", [0, 7, (10,), "big", (10, 10, 3), True, (8.0, 8.0)])
def test_bad_sizes(size):
    with pytest.raises(ValueError, match=r"Data: size="):
        check_size(size, "Data")


def test_sizes():
    assert check_size(512, "D") == (512, 512) and check_size([48, 64], "D") == (48, 64)
    assert check_size(None, "D") is None
