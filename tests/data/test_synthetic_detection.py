"""Tests of SyntheticDetectionScenes: boxes against brute force, transforms, masks, batches, errors."""

import albumentations as A
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from pixelwise.data.collate import DictCollate
from pixelwise.data.detection_items import DETECTION_LIST_KEYS
from pixelwise.data.synthetic_detection import SyntheticDetectionScenes
from pixelwise.data.synthetic_scenes import SyntheticScenes

SIZE = (96, 128)
SCENE_TO_LABEL = {6: 0, 7: 1, 8: 2}  # car, truck, pedestrian


def brute_force(inst: np.ndarray, mask: np.ndarray):
    """Boxes (x1, y1, x2 + 1, y2 + 1), labels and pixel counts of ids 1..max by a loop over ids."""
    boxes, labels, pixels = [], [], []
    for k in range(1, int(inst.max()) + 1):
        ys, xs = np.nonzero(inst == k)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        classes = np.unique(mask[inst == k])
        assert len(classes) == 1
        labels.append(SCENE_TO_LABEL[int(classes[0])])
        pixels.append(len(xs))
    return np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(labels), np.asarray(pixels)


def bbox_transform(*transforms, **params):
    return A.Compose(list(transforms), bbox_params=A.BboxParams(format="pascal_voc", **params))


class TestBoxes:
    def test_boxes_labels_areas_match_brute_force_on_the_instance_maps(self):
        ds = SyntheticDetectionScenes(size=SIZE, length=6, seed=2, split="val", min_pixels=0)
        scenes = SyntheticScenes(size=SIZE, length=6, seed=2, split="val")
        total = 0
        for i in range(len(ds)):
            item, scene = ds[i], scenes.render(i)
            boxes, labels, pixels = brute_force(scene["instances"], scene["mask"])
            np.testing.assert_array_equal(item["boxes"].numpy(), boxes)
            np.testing.assert_array_equal(item["labels"].numpy(), labels)
            np.testing.assert_array_equal(item["area"].numpy(), pixels)
            assert not item["iscrowd"].any()
            total += len(boxes)
        assert total >= 20  # several objects per scene

    def test_item_keys_types_and_metadata(self):
        item = SyntheticDetectionScenes(size=SIZE, length=3, split="test")[2]
        assert item["image"].dtype == torch.float32 and item["image"].shape == (3, *SIZE)
        assert 0 <= item["image"].min() and item["image"].max() <= 1
        assert item["boxes"].dtype == torch.float32 and item["boxes"].shape[1] == 4
        assert item["labels"].dtype == torch.int64 and item["iscrowd"].dtype == torch.bool
        assert item["area"].dtype == torch.float32
        assert item["image_id"] == 2 and item["scale"] == 1.0 and item["name"] == "000002"
        assert item["orig_size"].tolist() == list(SIZE) and "masks" not in item

    def test_small_instances_are_crowd_regions(self):
        ds = SyntheticDetectionScenes(size=SIZE, length=8, split="val", min_pixels=40)
        seen = 0
        for i in range(len(ds)):
            item = ds[i]
            np.testing.assert_array_equal(item["iscrowd"].numpy(), item["area"].numpy() < 40)
            seen += int(item["iscrowd"].sum())
        assert seen > 0

    def test_deterministic_and_splits_differ(self):
        a = SyntheticDetectionScenes(size=SIZE, length=4, seed=5, split="train")[3]
        b = SyntheticDetectionScenes(size=SIZE, length=4, seed=5, split="train")[3]
        c = SyntheticDetectionScenes(size=SIZE, length=4, seed=5, split="val")[3]
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["boxes"], b["boxes"])
        assert not torch.equal(a["image"], c["image"])


class TestMasks:
    def test_masks_are_the_instances_and_boxes_are_their_tight_boxes(self):
        ds = SyntheticDetectionScenes(size=SIZE, length=3, split="val", with_masks=True)
        item = ds[1]
        masks = item["masks"]
        assert masks.dtype == torch.uint8 and masks.shape == (len(item["boxes"]), *SIZE)
        for m, box, area in zip(masks.numpy(), item["boxes"].numpy(), item["area"].numpy()):
            ys, xs = np.nonzero(m)
            assert list(box) == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
            assert area == m.sum()
        assert masks.sum(0).max() <= 1  # instances do not overlap


class TestTransforms:
    def test_horizontal_flip_mirrors_the_boxes(self):
        plain = SyntheticDetectionScenes(size=SIZE, length=2, split="val")[1]
        flipped = SyntheticDetectionScenes(
            size=SIZE, length=2, split="val", transform=bbox_transform(A.HorizontalFlip(p=1.0))
        )[1]
        w = SIZE[1]
        b = plain["boxes"]
        expected = torch.stack([w - b[:, 2], b[:, 1], w - b[:, 0], b[:, 3]], dim=1)
        assert torch.equal(flipped["boxes"], expected)
        assert torch.equal(flipped["labels"], plain["labels"])
        assert torch.equal(flipped["image"], plain["image"].flip(-1))

    def test_crop_drops_boxes_below_min_area_and_visibility_and_tightens_the_rest(self):
        x0, y0, x1, y1 = 30, 20, 110, 84
        min_area, min_vis = 30.0, 0.4
        transform = bbox_transform(
            A.Crop(x_min=x0, y_min=y0, x_max=x1, y_max=y1),
            A.PadIfNeeded(
                min_height=SIZE[0], min_width=SIZE[1], position="top_left", fill=0, fill_mask=0
            ),
            min_area=min_area,
            min_visibility=min_vis,
        )
        ds = SyntheticDetectionScenes(
            size=SIZE, length=6, split="val", transform=transform, with_masks=True
        )
        plain = SyntheticDetectionScenes(size=SIZE, length=6, split="val", min_pixels=0)
        dropped = 0
        for i in range(len(ds)):
            ann = plain.annotations(i)
            inst = ann["instances"][y0:y1, x0:x1]
            expected = []
            for k, box in enumerate(ann["boxes"]):
                cx1, cy1 = max(box[0], x0), max(box[1], y0)
                cx2, cy2 = min(box[2], x1), min(box[3], y1)
                clipped = max(cx2 - cx1, 0) * max(cy2 - cy1, 0)
                full = (box[2] - box[0]) * (box[3] - box[1])
                if clipped >= min_area and clipped / full >= min_vis and (inst == k + 1).any():
                    ys, xs = np.nonzero(inst == k + 1)
                    expected.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
                else:
                    dropped += 1
            item = ds[i]
            np.testing.assert_array_equal(
                item["boxes"].numpy(), np.asarray(expected, np.float32).reshape(-1, 4)
            )
            assert item["image"].shape == (3, *SIZE)
            for m, box in zip(item["masks"].numpy(), item["boxes"].numpy()):
                ys, xs = np.nonzero(m)
                assert list(box) == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        assert dropped > 0

    def test_affine_boxes_stay_tight_and_inside(self):
        transform = bbox_transform(A.Affine(scale=(0.7, 1.3), rotate=(-10, 10), p=1.0), min_area=4)
        ds = SyntheticDetectionScenes(
            size=SIZE, length=4, split="train", transform=transform, with_masks=True
        )
        for i in range(len(ds)):
            item = ds[i]
            for m, box in zip(item["masks"].numpy(), item["boxes"].numpy()):
                ys, xs = np.nonzero(m)
                assert list(box) == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


class TestBatches:
    def test_dataloader_with_dict_collate_keeps_lists(self):
        ds = SyntheticDetectionScenes(size=SIZE, length=4, split="val", with_masks=True)
        loader = DataLoader(
            ds, batch_size=4, collate_fn=DictCollate(DETECTION_LIST_KEYS + ("masks",))
        )
        batch = next(iter(loader))
        assert batch["image"].shape == (4, 3, *SIZE)
        for key in DETECTION_LIST_KEYS + ("masks",):
            assert isinstance(batch[key], list) and len(batch[key]) == 4
        assert batch["image_id"].tolist() == [0, 1, 2, 3]
        assert batch["orig_size"].shape == (4, 2) and batch["name"][3] == "000003"
        assert [len(b) for b in batch["boxes"]] == [len(ds[i]["boxes"]) for i in range(4)]


class TestErrors:
    def test_transform_without_bbox_params(self):
        with pytest.raises(ValueError, match="no bbox_params"):
            SyntheticDetectionScenes(transform=A.Compose([A.HorizontalFlip()]))

    def test_transform_with_another_box_format(self):
        t = A.Compose([A.HorizontalFlip()], bbox_params=A.BboxParams(format="coco"))
        with pytest.raises(ValueError, match="'coco'.*expected 'pascal_voc'"):
            SyntheticDetectionScenes(transform=t)

    @pytest.mark.parametrize("bad", [-1, 2.5, True])
    def test_min_pixels(self, bad):
        with pytest.raises(ValueError, match="min_pixels"):
            SyntheticDetectionScenes(min_pixels=bad)

    def test_size_is_checked_by_the_scenes(self):
        with pytest.raises(ValueError, match="size"):
            SyntheticDetectionScenes(size=(8, 8))


class TestConfig:
    def test_data_config_builds_batches_of_the_contract(self):
        from hydra import compose, initialize_config_dir
        from hydra.utils import instantiate

        from pixelwise.cli import CONFIG_DIR

        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            cfg = compose(
                "train",
                overrides=["data=synthetic_detection", "data.num_workers=0", "data.train.length=4"],
            )
        dm = instantiate(cfg.data, _convert_="all")
        assert dm.info.num_classes == 3 and dm.info.class_names == ("car", "truck", "pedestrian")
        assert dm.info.category_ids == (1, 2, 3)
        dm.batch_size = 4
        dm.setup("fit")
        batch = next(iter(dm.train_dataloader()))
        assert batch["image"].shape == (4, 3, 128, 160)
        assert isinstance(batch["boxes"], list) and batch["boxes"][0].shape[1] == 4
        assert isinstance(batch["iscrowd"], list) and isinstance(batch["area"], list)

    def test_with_masks_batches_masks_as_lists(self):
        from hydra import compose, initialize_config_dir
        from hydra.utils import instantiate

        from pixelwise.cli import CONFIG_DIR

        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            cfg = compose(
                "train",
                overrides=[
                    "data=synthetic_detection",
                    "data.num_workers=0",
                    "data.with_masks=true",
                ],
            )
        dm = instantiate(cfg.data, _convert_="all")
        dm.eval_batch_size = 3
        batch = next(iter(dm.val_dataloader()))
        assert isinstance(batch["masks"], list) and batch["masks"][2].shape[1:] == (128, 160)
        assert [len(m) for m in batch["masks"]] == [len(b) for b in batch["boxes"]]


def test_info():
    info = SyntheticDetectionScenes(size=SIZE, length=1).info
    assert info.class_names == ("car", "truck", "pedestrian") and info.category_ids == (1, 2, 3)
    assert info.image_size == SIZE
