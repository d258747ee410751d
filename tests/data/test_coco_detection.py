"""Tests of COCODetection on a small dataset written in COCO's on-disk format."""

import json

import albumentations as A
import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools.coco import COCO
from torch.utils.data import DataLoader

from pixelwise.data.coco_detection import COCODetection, CocoFormatError
from pixelwise.data.collate import DictCollate
from pixelwise.data.detection_items import DETECTION_LIST_KEYS
from pixelwise.data.label_io import DatasetLayoutError
from tests.data.coco_fixture import annotations, write_coco_fixture


@pytest.fixture
def root(tmp_path):
    return write_coco_fixture(tmp_path)


class TestItems:
    def test_categories_follow_sorted_ids(self, root):
        ds = COCODetection(root, split="val", size=None)
        assert ds.category_ids == (1, 3, 90) and ds.num_classes == 3
        assert ds.class_names == ("person", "car", "toothbrush")

    def test_boxes_labels_crowd_area_in_image_id_order(self, root):
        ds = COCODetection(root, split="val", size=None)
        assert len(ds) == 3  # the empty image 7 is kept for val
        a, b, c = ds[0], ds[1], ds[2]
        assert (a["image_id"], b["image_id"], c["image_id"]) == (3, 5, 7)
        np.testing.assert_array_equal(
            a["boxes"].numpy(), [[10, 5, 30, 20], [40, 10, 70, 30], [70, 2, 78, 6]]
        )
        assert a["labels"].tolist() == [0, 1, 2] and a["area"].tolist() == [150, 600, 32]
        np.testing.assert_array_equal(b["boxes"].numpy(), [[25.5, 4, 45.5, 29], [5, 30, 25, 50]])
        assert b["iscrowd"].tolist() == [False, True] and b["labels"].tolist() == [0, 0]
        assert c["boxes"].shape == (0, 4) and c["labels"].shape == (0,)
        assert a["name"] == "000000000003" and a["scale"] == 1.0
        assert a["orig_size"].tolist() == [40, 80] and a["image"].shape == (3, 40, 80)

    def test_image_is_the_file_as_read(self, root):
        item = COCODetection(root, split="val", size=None)[1]
        pixels = np.array(Image.open(root / "val2017" / "000000000005.jpg").convert("RGB"))
        assert torch.equal(item["image"], torch.from_numpy(pixels).permute(2, 0, 1).float() / 255)

    def test_train_drops_images_without_annotations(self, tmp_path):
        write_coco_fixture(tmp_path, split="train")
        assert [
            COCODetection(tmp_path, split="train", size=None)[i]["image_id"] for i in range(2)
        ] == [3, 5]
        assert len(COCODetection(tmp_path, split="train", size=None)) == 2
        assert len(COCODetection(tmp_path, split="train", keep_empty=True, size=None)) == 3

    def test_letterbox_scales_boxes_and_pads_bottom_right(self, root):
        ds = COCODetection(root, split="val", size=64)
        a = ds[0]  # 40 x 80 -> scale 0.8 -> 32 x 64, padded to 64 x 64
        assert a["scale"] == pytest.approx(0.8) and a["image"].shape == (3, 64, 64)
        assert a["image"][:, 32:].abs().sum() == 0 and a["image"][:, :32].abs().sum() > 0
        np.testing.assert_allclose(
            a["boxes"].numpy(),
            np.array([[10, 5, 30, 20], [40, 10, 70, 30], [70, 2, 78, 6]]) * 0.8,
            rtol=1e-6,
        )
        assert a["orig_size"].tolist() == [40, 80] and a["area"].tolist() == [150, 600, 32]
        b = ds[1]  # 60 x 50 -> scale 64/60
        assert b["scale"] == pytest.approx(64 / 60) and b["image"].shape == (3, 64, 64)

    def test_rectangular_size(self, root):
        item = COCODetection(root, split="val", size=(48, 64))[1]  # 60x50 fits by height: 0.8
        assert item["image"].shape == (3, 48, 64) and item["scale"] == pytest.approx(0.8)

    def test_min_box_size_makes_thin_boxes_crowd(self, root):
        a = COCODetection(root, split="val", size=None, min_box_size=5)[0]
        assert a["iscrowd"].tolist() == [False, False, True]  # the 8 x 4 box

    def test_limit(self, root):
        assert len(COCODetection(root, split="val", limit=2)) == 2


class TestMasks:
    @pytest.mark.filterwarnings(
        "ignore:__array__ implementation:DeprecationWarning"
    )  # pycocotools under numpy 2
    def test_masks_equal_pycocotools_ann_to_mask(self, root):
        coco = COCO(str(root / "annotations" / "instances_val2017.json"))
        ds = COCODetection(root, split="val", size=None, with_masks=True)
        for j in range(2):
            item = ds[j]
            anns = coco.loadAnns(coco.getAnnIds(imgIds=[item["image_id"]]))
            assert item["masks"].shape == (len(anns), *item["image"].shape[-2:])
            for m, ann in zip(item["masks"].numpy(), anns):
                np.testing.assert_array_equal(m, coco.annToMask(ann))
        assert item["masks"][1].sum() == 400  # the crowd RLE

    def test_masks_follow_the_letterbox(self, root):
        item = COCODetection(root, split="val", size=64, with_masks=True)[0]
        assert item["masks"].shape == (3, 64, 64) and item["masks"][:, 32:].sum() == 0
        ys, xs = np.nonzero(item["masks"][1].numpy())  # the car rectangle 40..70 x 10..30, * 0.8
        assert (xs.min(), xs.max() + 1, ys.min(), ys.max() + 1) == (32, 56, 8, 24)

    def test_empty_image_gives_empty_masks(self, root):
        item = COCODetection(root, split="val", size=32, with_masks=True)[2]
        assert item["masks"].shape == (0, 32, 32)


class TestTransformAndBatches:
    def test_flip_moves_boxes_and_crowd_flags(self, root):
        t = A.Compose([A.HorizontalFlip(p=1.0)], bbox_params=A.BboxParams(format="pascal_voc"))
        b = COCODetection(root, split="val", size=None, transform=t)[1]
        np.testing.assert_allclose(
            b["boxes"].numpy(), [[4.5, 4, 24.5, 29], [25, 30, 45, 50]], atol=1e-4
        )  # albumentations normalises
        assert b["iscrowd"].tolist() == [False, True]

    def test_loader_stacks_letterboxed_images(self, root):
        ds = COCODetection(root, split="val", size=64, with_masks=True)
        batch = next(
            iter(
                DataLoader(
                    ds, batch_size=3, collate_fn=DictCollate(DETECTION_LIST_KEYS + ("masks",))
                )
            )
        )
        assert batch["image"].shape == (3, 3, 64, 64) and batch["image_id"].tolist() == [3, 5, 7]
        assert [len(b) for b in batch["boxes"]] == [3, 2, 0]
        assert batch["scale"].dtype == torch.float64 and batch["orig_size"].tolist() == [
            [40, 80],
            [60, 50],
            [32, 32],
        ]


class TestErrors:
    def test_missing_annotation_file_shows_the_layout(self, tmp_path):
        (tmp_path / "val2017").mkdir()
        with pytest.raises(DatasetLayoutError, match=r"instances_val2017\.json is missing") as err:
            COCODetection(tmp_path, split="val")
        assert "annotations/instances_val2017.json" in str(err.value)

    def test_missing_root(self, tmp_path):
        with pytest.raises(DatasetLayoutError, match="not a directory"):
            COCODetection(tmp_path / "nowhere")

    def test_image_listed_but_absent(self, root):
        (root / "val2017" / "000000000005.jpg").unlink()
        with pytest.raises(
            DatasetLayoutError, match=r"image id 5: expected .*val2017/000000000005\.jpg"
        ):
            COCODetection(root, split="val")

    def test_unknown_category_id(self, tmp_path):
        anns = annotations()
        anns[1]["category_id"] = 2
        write_coco_fixture(tmp_path, anns=anns)
        with pytest.raises(
            CocoFormatError,
            match=r"instances_val2017\.json: annotation id 12 has category_id 2; expected one of .*\[1, 3, 90\]",
        ):
            COCODetection(tmp_path, split="val")

    def test_box_with_negative_width(self, tmp_path):
        anns = annotations()
        anns[0]["bbox"] = [30.0, 5.0, -20.0, 15.0]
        write_coco_fixture(tmp_path, anns=anns)
        with pytest.raises(
            CocoFormatError, match=r"annotation id 11 .*000000000003\.jpg.*negative width.*x2 < x1"
        ):
            COCODetection(tmp_path, split="val")

    def test_box_outside_the_image(self, tmp_path):
        anns = annotations()
        anns[3]["bbox"] = [40.0, 4.0, 20.0, 25.0]  # x2 = 60 > width 50
        write_coco_fixture(tmp_path, anns=anns)
        with pytest.raises(CocoFormatError, match=r"annotation id 14 .*x2=60.*outside the image"):
            COCODetection(tmp_path, split="val")

    def test_small_overhang_is_clipped(self, tmp_path):
        anns = annotations()
        anns[3]["bbox"] = [31.0, 4.0, 20.5, 25.0]  # x2 = 51.5, 1.5 px past the edge
        write_coco_fixture(tmp_path, anns=anns)
        assert COCODetection(tmp_path, split="val", size=None)[1]["boxes"][0].tolist() == [
            31,
            4,
            50,
            29,
        ]

    def test_annotation_of_an_unknown_image(self, tmp_path):
        anns = annotations()
        anns[4]["image_id"] = 99
        write_coco_fixture(tmp_path, anns=anns)
        with pytest.raises(CocoFormatError, match="annotation id 15 refers to image_id 99"):
            COCODetection(tmp_path, split="val")

    def test_image_size_differs_from_the_json(self, root):
        Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(root / "val2017" / "000000000003.jpg")
        with pytest.raises(
            CocoFormatError, match=r"000000000003\.jpg: image is 10x10 .* says 80x40"
        ):
            COCODetection(root, split="val")[0]

    def test_not_a_coco_file(self, root):
        (root / "annotations" / "instances_val2017.json").write_text(json.dumps({"images": []}))
        with pytest.raises(CocoFormatError, match="no 'annotations' list"):
            COCODetection(root, split="val")

    def test_transform_without_bbox_params(self, root):
        with pytest.raises(ValueError, match="bbox_params"):
            COCODetection(root, split="val", transform=A.Compose([A.HorizontalFlip()]))

    @pytest.mark.parametrize("size", [0, (10,), "big", (10, 10, 3)])
    def test_bad_size(self, root, size):
        with pytest.raises(ValueError, match="size="):
            COCODetection(root, split="val", size=size)


def compose_data(overrides, build=True):
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from pixelwise.cli import CONFIG_DIR

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    return cfg, (instantiate(cfg.data, _convert_="all") if build else None)


class TestCategoryIds:
    def test_given_ids_decide_the_labels(self, root):
        ds = COCODetection(root, split="val", size=None, category_ids=[1, 2, 3, 50, 90])
        assert ds.category_ids == (1, 2, 3, 50, 90) and ds.num_classes == 5
        assert ds.class_names == ("person", "2", "car", "50", "toothbrush")
        assert ds[0]["labels"].tolist() == [0, 2, 4]

    def test_file_category_outside_the_given_ids(self, root):
        with pytest.raises(
            CocoFormatError,
            match=r"categories \[90\] \(toothbrush\) are not in data.category_ids=\[1, 3\]; .*data.num_classes=3 'data.class_names=\[person,car,toothbrush\]' 'data.category_ids=\[1, 3, 90\]'",
        ):
            COCODetection(root, split="val", category_ids=[1, 3])


class TestConfigs:
    def test_data_coco_reads_the_layout_with_cocos_80_classes(self, root):
        cfg, dm = compose_data(
            ["data=coco", f"data.root={root}", "data.num_workers=0", "data.size=[64,64]"]
        )
        assert (
            dm.info.num_classes == 80
            and len(dm.info.class_names) == 80
            and dm.info.class_names[79] == "toothbrush"
        )
        assert cfg.data.test.split == "val"
        dm.setup("validate")
        batch = next(iter(dm.val_dataloader()))
        assert batch["image"].shape == (3, 3, 64, 64)
        assert batch["labels"][0].tolist() == [0, 2, 79]  # person, car, toothbrush in COCO's 80
        assert dm.info.category_ids[79] == 90

    def test_data_coco_synthetic_reads_the_export(self, tmp_path):
        from pixelwise.data.coco_export import export_coco
        from pixelwise.data.synthetic_detection import SyntheticDetectionScenes

        export_coco(tmp_path, split="val", count=3)
        _, dm = compose_data(["data=coco_synthetic", f"data.root={tmp_path}", "data.num_workers=0"])
        assert dm.info.num_classes == 3 and dm.info.category_ids == (1, 2, 3)
        dm.setup("validate")
        batch = next(iter(dm.val_dataloader()))
        item = SyntheticDetectionScenes(split="val", length=3)[2]
        assert torch.equal(batch["image"][2], item["image"]) and torch.equal(
            batch["boxes"][2], item["boxes"]
        )

    def test_coco_images_is_the_unlabelled_2014_config(self):
        cfg, _ = compose_data(["data=coco_images"], build=False)
        assert (
            cfg.data.train._target_ == "pixelwise.data.images.COCO"
            and cfg.data.train.split == "train2014"
        )


def test_datamodule_info_falls_back_to_the_file(root):
    from pixelwise.data.datamodule import DataModule

    dm = DataModule(
        val=lambda: COCODetection(root, split="val", size=(48, 64)), list_keys=DETECTION_LIST_KEYS
    )
    dm.setup("validate")
    assert dm.info.category_ids == (1, 3, 90) and dm.info.num_classes == 3
    assert dm.info.class_names == ("person", "car", "toothbrush") and dm.info.image_size == (48, 64)
