"""KITTISemantics on a tiny training/ tree in the KITTI formats (8-bit semantic, 16-bit id*256+n instance)."""

from __future__ import annotations

from pathlib import Path

import albumentations as A
import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from pixelwise.data.kitti import KITTISemantics, kitti_split, write_kitti_prediction
from pixelwise.data.label_io import DatasetLayoutError

H, W = 3, 5
SEMANTIC = np.array(
    [
        [23, 23, 11, 11, 0],
        [26, 26, 24, 26, 26],
        [7, 7, 7, 26, 9],
    ],
    dtype=np.uint8,
)
# id * 256 + n: cars 26/1 and 26/2, person 24/1, a building "instance" 11/1 (KITTI numbers stuff too),
# a car pixel with n = 0 (no instance ground truth)
INSTANCE = np.array(
    [
        [23 * 256, 23 * 256, 11 * 256 + 1, 11 * 256 + 1, 0],
        [26 * 256 + 1, 26 * 256 + 1, 24 * 256 + 1, 26 * 256 + 2, 26 * 256 + 2],
        [7 * 256, 7 * 256, 7 * 256, 26 * 256, 9 * 256],
    ],
    dtype=np.uint16,
)
# sky 10, building 2, unlabeled 255 / car 13, person 11 / road 0, car 13, parking 255
EXPECTED_MASK = np.array([[10, 10, 2, 2, 255], [13, 13, 11, 13, 13], [0, 0, 0, 13, 255]])
# sorted raw values: 24*256+1 -> 1, 26*256+1 -> 2, 26*256+2 -> 3; building and n = 0 -> none
EXPECTED_INSTANCES = np.array([[0, 0, 0, 0, 0], [2, 2, 1, 3, 3], [0, 0, 0, 0, 0]])


def write_image(root: Path, name: str, semantic=SEMANTIC, instance=INSTANCE, seed=0) -> np.ndarray:
    """One KITTI training image: RGB PNG, 8-bit semantic PNG, 16-bit instance PNG (written by OpenCV)."""
    base = root / "training"
    for d in ("image_2", "semantic", "instance"):
        (base / d).mkdir(parents=True, exist_ok=True)
    rgb = np.random.default_rng(seed).integers(0, 255, (H, W, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(base / "image_2" / name)
    Image.fromarray(semantic).save(base / "semantic" / name)
    assert cv2.imwrite(str(base / "instance" / name), instance)
    return rgb


@pytest.fixture
def kitti_root(tmp_path: Path) -> Path:
    for i in range(5):
        write_image(tmp_path, f"{i:06d}_10.png", seed=i)
    return tmp_path


class TestLoading:
    def test_item(self, kitti_root):
        ds = KITTISemantics(kitti_root, "trainval")
        assert len(ds) == 5
        item = ds[0]
        assert item["path"].endswith("training/image_2/000000_10.png")
        rgb = np.random.default_rng(0).integers(0, 255, (H, W, 3), dtype=np.uint8)
        np.testing.assert_allclose(item["image"].permute(1, 2, 0).numpy(), rgb / 255.0, atol=1e-7)
        assert item["mask"].dtype == torch.long and item["instances"].dtype == torch.long

    def test_instance_png_is_16_bit(self, kitti_root):
        im = Image.open(kitti_root / "training/instance/000000_10.png")
        assert im.mode.startswith("I;16") and np.asarray(im).max() == 26 * 256 + 2

    def test_labels(self, kitti_root):
        item = KITTISemantics(kitti_root, "trainval")[0]
        np.testing.assert_array_equal(item["mask"].numpy(), EXPECTED_MASK)
        np.testing.assert_array_equal(item["instances"].numpy(), EXPECTED_INSTANCES)

    def test_transform_jointly(self, kitti_root):
        plain = KITTISemantics(kitti_root, "trainval")[0]
        out = KITTISemantics(
            kitti_root, "trainval", transform=A.Compose([A.HorizontalFlip(p=1.0)])
        )[0]
        for key in ("image", "mask", "instances"):
            torch.testing.assert_close(out[key], plain[key].flip(-1))

    def test_same_tables_as_cityscapes(self):
        assert KITTISemantics.num_classes == 19 and KITTISemantics.class_names[0] == "road"


class TestSplit:
    def test_deterministic_disjoint_cover(self, kitti_root):
        train = [p for p, _, _ in KITTISemantics(kitti_root, "train", val_fraction=0.4).items]
        val = [p for p, _, _ in KITTISemantics(kitti_root, "val", val_fraction=0.4).items]
        assert len(train) == 3 and len(val) == 2
        assert set(train).isdisjoint(val)
        assert sorted(train + val) == [
            p for p, _, _ in KITTISemantics(kitti_root, "trainval").items
        ]
        again = [p for p, _, _ in KITTISemantics(kitti_root, "val", val_fraction=0.4).items]
        assert again == val

    def test_split_independent_of_listing_order(self):
        names = [f"{i:06d}_10.png" for i in range(20)]
        assert kitti_split(names, "val", 0.25, 3) == kitti_split(names[::-1], "val", 0.25, 3)
        assert len(kitti_split(names, "val", 0.25, 3)) == 5
        assert kitti_split(names, "val", 0.25, 3) != kitti_split(names, "val", 0.25, 4)

    def test_empty_split_is_an_error(self, tmp_path):
        write_image(tmp_path, "000000_10.png")
        with pytest.raises(ValueError, match="split='val' is empty: 1 images"):
            KITTISemantics(tmp_path, "val", val_fraction=0.2)

    def test_bad_fraction(self, kitti_root):
        with pytest.raises(ValueError, match="val_fraction=1.5 is invalid"):
            KITTISemantics(kitti_root, val_fraction=1.5)


class TestPredictionFiles:
    def test_written_as_label_ids(self, tmp_path):
        path = write_kitti_prediction(tmp_path / "000000_10.png", torch.from_numpy(EXPECTED_MASK))
        ids = np.asarray(Image.open(path))
        keep = EXPECTED_MASK != 255
        np.testing.assert_array_equal(ids[keep], SEMANTIC[keep])


class TestBadLayout:
    def test_missing_instance_folder_shows_tree(self, kitti_root):
        for f in (kitti_root / "training/instance").iterdir():
            f.unlink()
        (kitti_root / "training/instance").rmdir()
        with pytest.raises(DatasetLayoutError, match="training/instance is missing") as err:
            KITTISemantics(kitti_root)
        assert "label id * 256 + instance number" in str(err.value)

    def test_image_without_semantic(self, kitti_root):
        (kitti_root / "training/semantic/000003_10.png").unlink()
        with pytest.raises(
            DatasetLayoutError, match=r"image .*image_2/000003_10.png has no semantic label"
        ):
            KITTISemantics(kitti_root)

    def test_instance_without_image(self, kitti_root):
        cv2.imwrite(str(kitti_root / "training/instance/000009_10.png"), INSTANCE)
        with pytest.raises(
            DatasetLayoutError, match=r"instance label .*instance/000009_10.png has no image"
        ):
            KITTISemantics(kitti_root)


class TestBadFiles:
    def test_semantic_id_not_in_table(self, tmp_path):
        bad = SEMANTIC.copy()
        bad[0, 0] = 50
        write_image(tmp_path, "000000_10.png", semantic=bad)
        with pytest.raises(ValueError, match=r"semantic/000000_10.png: label id value\(s\) \[50\]"):
            KITTISemantics(tmp_path, "trainval")[0]

    def test_instance_label_not_in_table(self, tmp_path):
        bad = INSTANCE.copy()
        bad[0, 0] = 60 * 256 + 1
        write_image(tmp_path, "000000_10.png", instance=bad)
        with pytest.raises(
            ValueError,
            match=r"instance/000000_10.png: instance label id \(value // 256\) value\(s\) \[60\]",
        ):
            KITTISemantics(tmp_path, "trainval")[0]

    def test_8_bit_instance_png_rejected(self, tmp_path):
        write_image(tmp_path, "000000_10.png", instance=np.zeros((H, W), dtype=np.uint8))
        with pytest.raises(ValueError, match="16-bit instance PNG has mode 'L'"):
            KITTISemantics(tmp_path, "trainval")[0]

    def test_instance_size_differs(self, tmp_path):
        write_image(tmp_path, "000000_10.png", instance=np.zeros((H, W + 2), dtype=np.uint16))
        with pytest.raises(
            ValueError,
            match=r"instance/000000_10.png: instance map is 7x3 \(WxH\) but its image .* is 5x3",
        ):
            KITTISemantics(tmp_path, "trainval")[0]
