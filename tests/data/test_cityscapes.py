"""Cityscapes on a tiny leftImg8bit/gtFine tree written in the real formats (8-bit labelIds, 16-bit instanceIds)."""

from __future__ import annotations

from pathlib import Path

import albumentations as A
import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from pixelwise.data.cityscapes import Cityscapes, write_cityscapes_prediction
from pixelwise.data.cityscapes_labels import (
    CATEGORY_NAMES,
    CITYSCAPES_MEAN_INSTANCE_SIZE,
    CLASS_NAMES,
    CLASS_TO_CATEGORY,
    trainid_to_labelid,
)
from pixelwise.data.label_io import DatasetLayoutError

H, W = 4, 6
# label ids: 7 road, 23 sky, 26 car, 24 person, 25 rider, 29 caravan, 4 static, 0 unlabeled
LABEL_IDS = np.array(
    [
        [23, 23, 23, 23, 4, 0],
        [26, 26, 24, 29, 29, 25],
        [26, 26, 24, 26, 26, 25],
        [7, 7, 7, 7, 7, 7],
    ],
    dtype=np.uint8,
)
INSTANCE_IDS = np.array(
    [
        [23, 23, 23, 23, 4, 0],
        [26000, 26000, 24000, 29000, 29000, 25],  # rider without instance (a group): value 25
        [26000, 26000, 24000, 26001, 26001, 25],
        [7, 7, 7, 7, 7, 7],
    ],
    dtype=np.uint16,
)
# by hand from the official table: sky 10, static/unlabeled/caravan 255, car 13, person 11, rider 12, road 0
EXPECTED_MASK = np.array(
    [
        [10, 10, 10, 10, 255, 255],
        [13, 13, 11, 255, 255, 12],
        [13, 13, 11, 13, 13, 12],
        [0, 0, 0, 0, 0, 0],
    ]
)
# instances numbered in the order of their raw ids: 24000 -> 1, 26000 -> 2, 26001 -> 3; caravan has no trainId
EXPECTED_INSTANCES = np.array(
    [
        [0, 0, 0, 0, 0, 0],
        [2, 2, 1, 0, 0, 0],
        [2, 2, 1, 3, 3, 0],
        [0, 0, 0, 0, 0, 0],
    ]
)


def write_frame(
    root: Path, split: str, city: str, frame: str, labels=LABEL_IDS, instances=INSTANCE_IDS, seed=0
):
    """One Cityscapes frame: RGB PNG, 8-bit labelIds PNG, 16-bit instanceIds PNG."""
    stem = f"{city}_000000_{frame}"
    img_dir = root / "leftImg8bit" / split / city
    gt_dir = root / "gtFine" / split / city
    img_dir.mkdir(parents=True, exist_ok=True)
    gt_dir.mkdir(parents=True, exist_ok=True)
    rgb = np.random.default_rng(seed).integers(0, 255, (H, W, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(img_dir / f"{stem}_leftImg8bit.png")
    Image.fromarray(labels).save(gt_dir / f"{stem}_gtFine_labelIds.png")
    Image.fromarray(instances).save(gt_dir / f"{stem}_gtFine_instanceIds.png")
    return rgb


@pytest.fixture
def cs_root(tmp_path: Path) -> Path:
    write_frame(tmp_path, "train", "aachen", "000019")
    write_frame(tmp_path, "train", "bochum", "000020", seed=1)
    write_frame(tmp_path, "val", "frankfurt", "000021", seed=2)
    return tmp_path


def gt_path(root: Path, split: str, city: str, frame: str, kind: str) -> Path:
    return root / "gtFine" / split / city / f"{city}_000000_{frame}_gtFine_{kind}.png"


class TestLoading:
    def test_item(self, cs_root):
        ds = Cityscapes(cs_root, "train")
        assert len(ds) == 2 and len(Cityscapes(cs_root, "val")) == 1
        item = ds[0]
        assert item["path"].endswith(
            "leftImg8bit/train/aachen/aachen_000000_000019_leftImg8bit.png"
        )
        rgb = np.random.default_rng(0).integers(0, 255, (H, W, 3), dtype=np.uint8)
        np.testing.assert_allclose(item["image"].permute(1, 2, 0).numpy(), rgb / 255.0, atol=1e-7)
        assert item["image"].dtype == torch.float32
        assert item["mask"].dtype == torch.long and item["instances"].dtype == torch.long

    def test_label_ids_to_train_ids(self, cs_root):
        np.testing.assert_array_equal(Cityscapes(cs_root)[0]["mask"].numpy(), EXPECTED_MASK)

    def test_instances(self, cs_root):
        np.testing.assert_array_equal(
            Cityscapes(cs_root)[0]["instances"].numpy(), EXPECTED_INSTANCES
        )

    def test_instance_png_written_by_opencv(self, cs_root):
        # the same 16-bit content from another writer (cv2 stores big-endian 16-bit samples too)
        path = gt_path(cs_root, "train", "aachen", "000019", "instanceIds")
        assert cv2.imwrite(str(path), INSTANCE_IDS)
        assert Image.open(path).mode.startswith("I")
        np.testing.assert_array_equal(
            Cityscapes(cs_root)[0]["instances"].numpy(), EXPECTED_INSTANCES
        )

    def test_transform_jointly(self, cs_root):
        plain = Cityscapes(cs_root)[0]
        out = Cityscapes(cs_root, transform=A.Compose([A.VerticalFlip(p=1.0)]))[0]
        for key in ("image", "mask", "instances"):
            torch.testing.assert_close(out[key], plain[key].flip(-2))

    def test_tables(self):
        assert Cityscapes.num_classes == 19 and CLASS_NAMES[13] == "car"
        assert tuple(Cityscapes.palette[13]) == (0, 0, 142)
        assert Cityscapes.instance_classes == (11, 12, 13, 14, 15, 16, 17, 18)
        assert CATEGORY_NAMES == (
            "flat",
            "construction",
            "object",
            "nature",
            "sky",
            "human",
            "vehicle",
        )
        assert [CATEGORY_NAMES[k] for k in CLASS_TO_CATEGORY[:2]] == ["flat", "flat"]
        assert (
            CATEGORY_NAMES[CLASS_TO_CATEGORY[12]] == "human"
            and CATEGORY_NAMES[CLASS_TO_CATEGORY[18]] == "vehicle"
        )
        # the benchmark's avgClassSize for car and person
        assert CITYSCAPES_MEAN_INSTANCE_SIZE[13] == 12794.0202738185
        assert CITYSCAPES_MEAN_INSTANCE_SIZE[11] == 3462.4756337644


class TestPredictionFiles:
    def test_train_ids_to_label_ids(self):
        pred = np.array([[0, 1, 10, 11, 13, 18, 255]])
        np.testing.assert_array_equal(trainid_to_labelid(pred), [[7, 8, 23, 24, 26, 33, 0]])

    def test_written_png_holds_label_ids(self, tmp_path):
        path = write_cityscapes_prediction(
            tmp_path / "x" / "a_pred.png", torch.from_numpy(EXPECTED_MASK)
        )
        ids = np.asarray(Image.open(path))
        assert Image.open(path).mode == "L"
        # every evaluated pixel gets its original label id back
        keep = EXPECTED_MASK != 255
        np.testing.assert_array_equal(ids[keep], LABEL_IDS[keep])

    def test_bad_train_id(self):
        with pytest.raises(ValueError, match="value 19 is not a Cityscapes trainId"):
            trainid_to_labelid(np.array([[19]]))


class TestBadLayout:
    def test_missing_root_shows_tree(self, tmp_path):
        with pytest.raises(DatasetLayoutError, match="leftImg8bit/train is missing") as err:
            Cityscapes(tmp_path)
        assert "_gtFine_instanceIds.png" in str(err.value)

    def test_empty_split(self, tmp_path):
        (tmp_path / "leftImg8bit" / "train").mkdir(parents=True)
        (tmp_path / "gtFine" / "train").mkdir(parents=True)
        with pytest.raises(DatasetLayoutError, match="no \\*_leftImg8bit.png under"):
            Cityscapes(tmp_path)

    def test_image_without_label(self, cs_root):
        gt_path(cs_root, "train", "bochum", "000020", "labelIds").unlink()
        with pytest.raises(
            DatasetLayoutError,
            match=r"bochum_000000_000020_leftImg8bit.png has no labelIds file; expected .*bochum_000000_000020_gtFine_labelIds.png",
        ):
            Cityscapes(cs_root)

    def test_image_without_instance_ids(self, cs_root):
        gt_path(cs_root, "train", "bochum", "000020", "instanceIds").unlink()
        with pytest.raises(DatasetLayoutError, match="has no instanceIds file"):
            Cityscapes(cs_root)

    def test_label_without_image(self, cs_root):
        (cs_root / "leftImg8bit/train/bochum/bochum_000000_000020_leftImg8bit.png").unlink()
        with pytest.raises(
            DatasetLayoutError,
            match=r"label .*bochum_000000_000020_gtFine_labelIds.png has no image",
        ):
            Cityscapes(cs_root)

    def test_bad_split(self, cs_root):
        with pytest.raises(ValueError, match="split='training' is invalid"):
            Cityscapes(cs_root, "training")


class TestBadFiles:
    def test_label_id_not_in_table(self, tmp_path):
        labels = LABEL_IDS.copy()
        labels[0, 0] = 40
        write_frame(tmp_path, "train", "aachen", "000019", labels=labels)
        with pytest.raises(
            ValueError,
            match=r"aachen_000000_000019_gtFine_labelIds.png: label id value\(s\) \[40\]",
        ):
            Cityscapes(tmp_path)[0]

    def test_instance_label_not_in_table(self, tmp_path):
        inst = INSTANCE_IDS.copy()
        inst[0, 0] = 40001
        write_frame(tmp_path, "train", "aachen", "000019", instances=inst)
        with pytest.raises(
            ValueError,
            match=r"instanceIds.png: instance label id \(value // 1000\) value\(s\) \[40\]",
        ):
            Cityscapes(tmp_path)[0]

    def test_instance_map_size_differs(self, tmp_path):
        write_frame(
            tmp_path, "train", "aachen", "000019", instances=np.zeros((H + 1, W), dtype=np.uint16)
        )
        with pytest.raises(
            ValueError,
            match=r"gtFine_instanceIds.png: instance map is 6x5 \(WxH\) but its image .*leftImg8bit.png is 6x4",
        ):
            Cityscapes(tmp_path)[0]

    def test_label_map_size_differs(self, tmp_path):
        write_frame(
            tmp_path, "train", "aachen", "000019", labels=np.zeros((H, W - 1), dtype=np.uint8)
        )
        with pytest.raises(
            ValueError, match=r"labelIds.png: labelIds map is 5x4 \(WxH\) but its image"
        ):
            Cityscapes(tmp_path)[0]

    def test_colour_label_rejected(self, cs_root):
        Image.fromarray(np.zeros((H, W, 3), dtype=np.uint8)).save(
            gt_path(cs_root, "train", "aachen", "000019", "labelIds")
        )
        with pytest.raises(ValueError, match="labelIds PNG has mode 'RGB'"):
            Cityscapes(cs_root)[0]
