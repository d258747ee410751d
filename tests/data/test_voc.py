"""VOCSegmentation on a tiny VOCdevkit written in the real formats (JPEG, palette PNGs, split lists)."""

from __future__ import annotations

from pathlib import Path

import albumentations as A
import numpy as np
import pytest
import torch
from PIL import Image

from pixelwise.data.label_io import DatasetLayoutError
from pixelwise.data.voc import VOC_COLORMAP, VOCSegmentation, write_voc_prediction

H, W = 6, 8


def palette_png(path: Path, ids: np.ndarray) -> None:
    """Save ids as a mode-P PNG with the VOC colour map, as the devkit ships them."""
    im = Image.fromarray(ids.astype(np.uint8))
    im.putpalette(VOC_COLORMAP.reshape(-1).tolist())
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)


CLASS_A = np.zeros((H, W), dtype=np.uint8)
CLASS_A[1:4, 1:4] = 15  # person
CLASS_A[1:4, 5:7] = 7  # car
CLASS_A[0, :] = 255  # void border
OBJ_A = np.zeros((H, W), dtype=np.uint8)
OBJ_A[1:4, 1:4] = 1
OBJ_A[1:4, 5:7] = 2
OBJ_A[0, :] = 255


def make_voc(root: Path, objects: bool = True) -> Path:
    """VOCdevkit/VOC2012 with ids a, b (train) and c (val); returns the VOC2012 folder."""
    base = root / "VOCdevkit" / "VOC2012"
    rng = np.random.default_rng(0)
    for image_id in ("a", "b", "c"):
        (base / "JPEGImages").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(
            base / "JPEGImages" / f"{image_id}.jpg"
        )
        palette_png(
            base / "SegmentationClass" / f"{image_id}.png",
            CLASS_A if image_id == "a" else np.zeros((H, W)),
        )
        if objects:
            palette_png(
                base / "SegmentationObject" / f"{image_id}.png",
                OBJ_A if image_id == "a" else np.zeros((H, W)),
            )
    lists = base / "ImageSets" / "Segmentation"
    lists.mkdir(parents=True)
    (lists / "train.txt").write_text("a\nb\n")
    (lists / "val.txt").write_text("c\n")
    (lists / "trainval.txt").write_text("a\nb\nc\n")
    return base


@pytest.fixture
def voc_root(tmp_path: Path) -> Path:
    make_voc(tmp_path)
    return tmp_path


class TestLoading:
    def test_splits_and_item(self, voc_root):
        ds = VOCSegmentation(voc_root, "train")
        assert len(ds) == 2 and len(VOCSegmentation(voc_root, "val")) == 1
        assert len(VOCSegmentation(voc_root, "trainval")) == 3
        item = ds[0]
        assert set(item) == {"image", "mask", "instances", "path"}
        assert item["image"].dtype == torch.float32 and item["image"].shape == (3, H, W)
        assert item["mask"].dtype == torch.long and item["instances"].dtype == torch.long
        assert item["path"].endswith("JPEGImages/a.jpg")
        # the decoded JPEG, scaled to [0, 1]
        jpeg = np.asarray(Image.open(item["path"]).convert("RGB"))
        np.testing.assert_allclose(item["image"].permute(1, 2, 0).numpy(), jpeg / 255.0, atol=1e-6)

    def test_palette_indices_not_colours(self, voc_root):
        mask = VOCSegmentation(voc_root)[0]["mask"].numpy()
        assert mask[2, 2] == 15 and mask[2, 5] == 7 and mask[5, 0] == 0
        assert (mask[0] == 255).all()  # void border kept as ignore
        np.testing.assert_array_equal(mask, CLASS_A)

    def test_instances_from_segmentation_object(self, voc_root):
        inst = VOCSegmentation(voc_root)[0]["instances"].numpy()
        expected = OBJ_A.astype(np.int64)
        expected[expected == 255] = 0  # the void border is no instance
        np.testing.assert_array_equal(inst, expected)

    def test_without_object_folder_instances_are_zero(self, tmp_path):
        make_voc(tmp_path, objects=False)
        assert VOCSegmentation(tmp_path)[0]["instances"].sum() == 0

    def test_instances_false_gives_zeros(self, voc_root):
        assert VOCSegmentation(voc_root, instances=False)[0]["instances"].sum() == 0

    def test_transform_applies_to_image_mask_and_instances(self, voc_root):
        plain = VOCSegmentation(voc_root)[0]
        flipped = VOCSegmentation(voc_root, transform=A.Compose([A.HorizontalFlip(p=1.0)]))[0]
        torch.testing.assert_close(flipped["image"], plain["image"].flip(-1))
        torch.testing.assert_close(flipped["mask"], plain["mask"].flip(-1))
        torch.testing.assert_close(flipped["instances"], plain["instances"].flip(-1))

    def test_padding_is_ignore_and_no_instance(self, voc_root):
        pad = A.Compose(
            [
                A.PadIfNeeded(
                    min_height=H + 4, min_width=W, position="top_left", fill=0, fill_mask=255
                )
            ]
        )
        item = VOCSegmentation(voc_root, transform=pad)[0]
        assert item["mask"].shape == (H + 4, W)
        assert (item["mask"][H:] == 255).all() and (item["instances"][H:] == 0).all()
        np.testing.assert_array_equal(
            item["instances"][:H].numpy(), np.where(OBJ_A == 255, 0, OBJ_A)
        )

    def test_attributes(self):
        assert VOCSegmentation.num_classes == 21 and len(VOCSegmentation.class_names) == 21
        assert (
            VOCSegmentation.palette.shape == (21, 3) and VOCSegmentation.palette.dtype == np.uint8
        )
        # published VOC colours: person (192, 128, 128), void (224, 224, 192)
        assert tuple(VOCSegmentation.palette[15]) == (192, 128, 128)
        assert tuple(VOC_COLORMAP[255]) == (224, 224, 192)


class TestPredictionFiles:
    def test_round_trip_as_palette_png(self, tmp_path):
        pred = torch.tensor([[0, 15, 20], [255, 7, 1]])
        path = write_voc_prediction(tmp_path / "out" / "a.png", pred)
        im = Image.open(path)
        assert im.mode == "P"
        np.testing.assert_array_equal(np.asarray(im), pred.numpy())
        assert im.getpalette()[15 * 3 : 15 * 3 + 3] == [192, 128, 128]

    def test_dataset_method_writes_same(self, voc_root, tmp_path):
        path = VOCSegmentation(voc_root).save_prediction(np.array([[3, 4]]), tmp_path / "p.png")
        np.testing.assert_array_equal(np.asarray(Image.open(path)), [[3, 4]])

    def test_bad_value(self, tmp_path):
        with pytest.raises(ValueError, match="prediction value 21 is not a VOC class id"):
            write_voc_prediction(tmp_path / "p.png", np.array([[21]]))


class TestBadLayout:
    def test_missing_root_shows_tree(self, tmp_path):
        with pytest.raises(DatasetLayoutError, match="nowhere is missing") as err:
            VOCSegmentation(tmp_path / "nowhere")
        assert "JPEGImages/<id>.jpg" in str(err.value)

    def test_missing_folder_named(self, voc_root):
        (voc_root / "VOCdevkit/VOC2012/ImageSets/Segmentation/val.txt").unlink()
        with pytest.raises(
            DatasetLayoutError, match=r"Segmentation/val.txt is missing \(expected a file\)"
        ):
            VOCSegmentation(voc_root, "val")

    def test_listed_id_without_image(self, voc_root):
        (voc_root / "VOCdevkit/VOC2012/JPEGImages/b.jpg").unlink()
        with pytest.raises(
            DatasetLayoutError, match=r"id 'b' .* has no image; expected .*JPEGImages/b.jpg"
        ):
            VOCSegmentation(voc_root)

    def test_image_without_label(self, voc_root):
        (voc_root / "VOCdevkit/VOC2012/SegmentationClass/b.png").unlink()
        with pytest.raises(
            DatasetLayoutError, match=r"b.jpg has no label; expected .*SegmentationClass/b.png"
        ):
            VOCSegmentation(voc_root)

    def test_image_without_object_label(self, voc_root):
        (voc_root / "VOCdevkit/VOC2012/SegmentationObject/a.png").unlink()
        with pytest.raises(DatasetLayoutError, match="SegmentationObject/a.png"):
            VOCSegmentation(voc_root)
        assert len(VOCSegmentation(voc_root, instances=False)) == 2

    def test_instances_true_requires_folder(self, tmp_path):
        make_voc(tmp_path, objects=False)
        with pytest.raises(DatasetLayoutError, match="SegmentationObject is missing"):
            VOCSegmentation(tmp_path, instances=True)

    def test_bad_split(self, voc_root):
        with pytest.raises(ValueError, match=r"split='test' is invalid"):
            VOCSegmentation(voc_root, "test")


class TestBadFiles:
    def test_label_value_not_in_table(self, voc_root):
        bad = CLASS_A.copy()
        bad[5, 5] = 30
        palette_png(voc_root / "VOCdevkit/VOC2012/SegmentationClass/a.png", bad)
        with pytest.raises(
            ValueError, match=r"SegmentationClass/a.png: class label value\(s\) \[30\]"
        ):
            VOCSegmentation(voc_root)[0]

    def test_rgb_label_rejected(self, voc_root):
        path = voc_root / "VOCdevkit/VOC2012/SegmentationClass/a.png"
        Image.fromarray(np.zeros((H, W, 3), dtype=np.uint8)).save(path)
        with pytest.raises(ValueError, match=r"a.png: class label PNG has mode 'RGB'"):
            VOCSegmentation(voc_root)[0]

    def test_label_size_differs(self, voc_root):
        palette_png(voc_root / "VOCdevkit/VOC2012/SegmentationClass/a.png", np.zeros((H, W + 1)))
        with pytest.raises(
            ValueError,
            match=r"SegmentationClass/a.png: class label is 9x6 \(WxH\) but its image .*a.jpg is 8x6",
        ):
            VOCSegmentation(voc_root)[0]

    def test_object_size_differs(self, voc_root):
        palette_png(voc_root / "VOCdevkit/VOC2012/SegmentationObject/a.png", np.zeros((H + 2, W)))
        with pytest.raises(
            ValueError,
            match=r"SegmentationObject/a.png: object label is 8x8 \(WxH\) but its image .* is 8x6",
        ):
            VOCSegmentation(voc_root)[0]
