"""Panoptic format, synthetic panoptic scenes and the Cityscapes panoptic reader (files written here)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pixelwise.data.panoptic_export import export_panoptic
from pixelwise.data.panoptic_scenes import CityscapesPanoptic, SyntheticPanopticScenes
from pixelwise.formats.panoptic import (
    PanopticFormatError,
    id_to_rgb,
    labels_from_panoptic,
    panoptic_from_labels,
    read_panoptic_png,
    rgb_to_id,
    write_panoptic_png,
)

SYN = dict(category_ids=range(1, 10), instance_classes=[6, 7, 8])


class TestIds:
    def test_rgb_encoding_by_hand(self) -> None:
        rgb = np.array([[[1, 2, 3], [0, 0, 0]]], dtype=np.uint8)
        assert rgb_to_id(rgb).tolist() == [[1 + 2 * 256 + 3 * 65536, 0]]
        ids = np.array([[26005, 7, 0, 256**3 - 1]])
        assert np.array_equal(rgb_to_id(id_to_rgb(ids)), ids)
        assert id_to_rgb(np.array([[26005]]))[0, 0].tolist() == [26005 % 256, 26005 // 256, 0]

    def test_png_round_trip(self, tmp_path: Path) -> None:
        ids = np.array([[0, 7, 26001], [26002, 24000, 33001]])
        assert np.array_equal(read_panoptic_png(write_panoptic_png(tmp_path / "p.png", ids)), ids)

    def test_out_of_range(self) -> None:
        with pytest.raises(ValueError, match="expected 0 <= id"):
            id_to_rgb(np.array([256**3]))


class TestPanopticFromLabels:
    def test_hand_case(self) -> None:
        # classes: 0 road (stuff), 1 car (thing), 2 person (thing); category ids 7, 26, 24.
        mask = np.array([[0, 0, 1, 1], [255, 1, 1, 2], [2, 2, 0, 2]])
        inst = np.array([[0, 0, 5, 5], [0, 9, 9, 0], [3, 3, 0, 4]])
        pan, seg = panoptic_from_labels(mask, inst, [1, 2], [7, 26, 24])
        # car instances 5, 9 -> 26001, 26002; person: instance 3 -> 24001, 4 -> 24002; pixel (1,3)
        # is a person without instance -> crowd 24.
        assert pan.tolist() == [
            [7, 7, 26001, 26001],
            [0, 26002, 26002, 24],
            [24001, 24001, 7, 24002],
        ]
        assert seg.tolist() == [
            [7, 0, 0],
            [24, 2, 1],
            [24001, 2, 0],
            [24002, 2, 0],
            [26001, 1, 0],
            [26002, 1, 0],
        ]
        sem, ins = labels_from_panoptic(pan, seg, [1, 2])
        assert np.array_equal(sem, mask)
        # instances numbered in the order of the segment table, crowd and stuff 0.
        assert ins.tolist() == [[0, 0, 3, 3], [0, 4, 4, 0], [1, 1, 0, 2]]

    def test_bad_class(self) -> None:
        with pytest.raises(ValueError, match="outside"):
            panoptic_from_labels(np.array([[3]]), np.array([[0]]), [1], [7, 26, 24])


class TestSyntheticPanoptic:
    def test_item_consistent_with_scene(self) -> None:
        ds = SyntheticPanopticScenes(split="val", length=3)
        for i in range(3):
            item, scene = ds[i], ds.render(i)
            pan, seg = item["panoptic"].numpy(), item["segments"].numpy()
            assert np.array_equal(item["mask"].numpy(), scene["mask"])
            # every thing instance of the scene is one segment, stuff one segment per class.
            for k in np.unique(scene["instances"][scene["instances"] > 0]):
                ids = np.unique(pan[scene["instances"] == k])
                assert len(ids) == 1 and ids[0] >= 1000
            stuff = ~np.isin(scene["mask"], [6, 7, 8])
            assert np.array_equal(pan[stuff], scene["mask"][stuff] + 1)
            assert set(seg[:, 0]) == set(np.unique(pan)) and not seg[:, 2].any()
            assert (item["instances"] > 0).eq(torch.from_numpy(~stuff)).all()
            assert item["image_id"] == f"synthetic_000001_{i:06d}"


def write_cityscapes_instance_ids(root: Path, split: str, stem: str, raw: np.ndarray) -> None:
    """An instanceIds PNG (16-bit) and a matching image, in the Cityscapes layout."""
    city = stem.split("_")[0]
    (root / "gtFine" / split / city).mkdir(parents=True, exist_ok=True)
    (root / "leftImg8bit" / split / city).mkdir(parents=True, exist_ok=True)
    Image.fromarray(raw.astype(np.uint16)).save(
        root / "gtFine" / split / city / f"{stem}_gtFine_instanceIds.png"
    )
    rgb = np.random.default_rng(0).integers(0, 255, (*raw.shape, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png")


class TestCityscapesPanoptic:
    def test_reads_official_conversion(self, tmp_path: Path) -> None:
        """cityscapesScripts' createPanopticImgs writes the files; the reader gives the hand-made labels."""
        prep = pytest.importorskip("cityscapesscripts.preparation.createPanopticImgs")
        # road 7 (trainId 0), car 26000/26001 (trainId 13), car crowd 26, person 24000 (11), void 0, sky 23 (10).
        raw = np.array(
            [
                [7, 7, 26000, 26000, 23],
                [0, 26001, 26001, 26, 23],
                [24000, 24000, 7, 26, 4],
            ]
        )
        write_cityscapes_instance_ids(tmp_path, "val", "aachen_000000_000019", raw)
        prep.convert2panoptic(str(tmp_path / "gtFine"), str(tmp_path / "gtFine"), setNames=["val"])
        ds = CityscapesPanoptic(tmp_path, "val")
        item = ds[0]
        assert item["image_id"] == "aachen_000000_000019"
        # The official ids are the instanceIds values; 4 (static) is ignoreInEval -> void.
        expected_pan = np.where(np.isin(raw, [0, 4]), 0, raw)
        assert np.array_equal(item["panoptic"].numpy(), expected_pan)
        assert item["mask"].tolist() == [
            [0, 0, 13, 13, 10],
            [255, 13, 13, 13, 10],
            [11, 11, 0, 13, 255],
        ]
        seg = {tuple(r) for r in item["segments"].tolist()}
        assert seg == {
            (7, 0, 0),
            (23, 10, 0),
            (24000, 11, 0),
            (26, 13, 1),
            (26000, 13, 0),
            (26001, 13, 0),
        }
        ins = item["instances"].numpy()
        # three instances (person, two cars), crowd car and stuff are 0.
        assert len(np.unique(ins[ins > 0])) == 3 and ins[1, 3] == 0 and ins[0, 0] == 0
        assert ds.info.instance_classes == tuple(range(11, 19))

    def test_synthetic_export_round_trip(self, tmp_path: Path) -> None:
        export_panoptic(tmp_path, "val", count=3, size=(48, 64))
        ds = CityscapesPanoptic(tmp_path, "val", class_names=None, **SYN)
        syn = SyntheticPanopticScenes(split="val", length=3, size=(48, 64))
        for i in range(3):
            a, b = ds[i], syn[i]
            for key in ("image", "mask", "instances", "panoptic", "segments"):
                assert torch.equal(a[key], b[key]), key
            assert a["image_id"] == b["image_id"]

    def _broken(self, tmp_path: Path, edit) -> CityscapesPanoptic:
        export_panoptic(tmp_path, "val", count=1, size=(48, 64))
        json_path = tmp_path / "gtFine" / "cityscapes_panoptic_val.json"
        doc = json.loads(json_path.read_text())
        edit(doc, tmp_path)
        json_path.write_text(json.dumps(doc))
        return CityscapesPanoptic(tmp_path, "val", **SYN)

    def test_png_id_missing_from_json(self, tmp_path: Path) -> None:
        def edit(doc, root):
            doc["annotations"][0]["segments_info"] = [
                s for s in doc["annotations"][0]["segments_info"] if s["id"] != 3
            ]

        with pytest.raises(
            PanopticFormatError,
            match=r"gtFine_panoptic.png.*segment id 3 .*in the PNG but not in segments_info",
        ):
            self._broken(tmp_path, edit)[0]

    def test_json_id_missing_from_png(self, tmp_path: Path) -> None:
        def edit(doc, root):
            doc["annotations"][0]["segments_info"].append(
                {"id": 7099, "category_id": 7, "iscrowd": 0}
            )

        with pytest.raises(
            PanopticFormatError, match="segment id 7099 is in segments_info but has no pixel"
        ):
            self._broken(tmp_path, edit)[0]

    def test_unknown_category(self, tmp_path: Path) -> None:
        def edit(doc, root):
            doc["annotations"][0]["segments_info"][0]["category_id"] = 42

        with pytest.raises(
            PanopticFormatError,
            match=r"segment id \d+ has unknown category_id 42; expected one of \[1, 2",
        ):
            self._broken(tmp_path, edit)[0]

    def test_wrong_area_and_duplicate(self, tmp_path: Path) -> None:
        def edit(doc, root):
            doc["annotations"][0]["segments_info"][0]["area"] += 1

        with pytest.raises(PanopticFormatError, match="has area .* expected equal"):
            self._broken(tmp_path, edit)[0]

    def test_wrong_size(self, tmp_path: Path) -> None:
        def edit(doc, root):
            png = next((root / "gtFine" / "cityscapes_panoptic_val").glob("*.png"))
            write_panoptic_png(png, np.ones((10, 10), dtype=np.int64))

        with pytest.raises(
            PanopticFormatError, match=r"panoptic PNG is 10x10 \(WxH\), image .* is 64x48"
        ):
            self._broken(tmp_path, edit)[0]

    def test_missing_layout(self, tmp_path: Path) -> None:
        with pytest.raises(FileNotFoundError, match="cityscapes_panoptic_val.json"):
            CityscapesPanoptic(tmp_path, "val")


class TestCOCOPanoptic:
    def test_reads_coco_layout(self, tmp_path: Path) -> None:
        from pixelwise.data.panoptic_scenes import COCOPanoptic

        # COCO ids are arbitrary 24-bit values; categories person 1, car 3 (things), tree 184 (stuff).
        pan = np.array([[3226956, 3226956, 0], [1450, 6587345, 6587345]])
        info = [
            {"id": 3226956, "category_id": 184, "iscrowd": 0, "area": 2, "bbox": [0, 0, 2, 1]},
            {"id": 1450, "category_id": 1, "iscrowd": 1, "area": 1, "bbox": [0, 1, 1, 1]},
            {"id": 6587345, "category_id": 3, "iscrowd": 0, "area": 2, "bbox": [1, 1, 2, 1]},
        ]
        (tmp_path / "val2017").mkdir()
        Image.fromarray(np.zeros((2, 3, 3), dtype=np.uint8)).save(
            tmp_path / "val2017" / "000000000139.jpg"
        )
        write_panoptic_png(tmp_path / "annotations" / "panoptic_val2017" / "000000000139.png", pan)
        doc = {
            "images": [{"id": 139, "file_name": "000000000139.jpg", "height": 2, "width": 3}],
            "annotations": [
                {"image_id": 139, "file_name": "000000000139.png", "segments_info": info}
            ],
            "categories": [
                {"id": 184, "name": "tree-merged", "isthing": 0, "color": [1, 2, 3]},
                {"id": 1, "name": "person", "isthing": 1, "color": [4, 5, 6]},
                {"id": 3, "name": "car", "isthing": 1, "color": [7, 8, 9]},
            ],
        }
        (tmp_path / "annotations" / "panoptic_val2017.json").write_text(json.dumps(doc))
        ds = COCOPanoptic(tmp_path, "val")
        assert ds.category_ids == (1, 3, 184) and ds.class_names == ("person", "car", "tree-merged")
        assert ds.thing_classes == (0, 1) and ds.palette.tolist() == [
            [4, 5, 6],
            [7, 8, 9],
            [1, 2, 3],
        ]
        item = ds[0]
        assert item["image_id"] == "139"
        assert item["mask"].tolist() == [[2, 2, 255], [0, 1, 1]]
        assert item["instances"].tolist() == [
            [0, 0, 0],
            [0, 1, 1],
        ]  # the crowd person has no instance
        assert item["segments"].tolist() == [[3226956, 2, 0], [1450, 0, 1], [6587345, 1, 0]]
        assert np.array_equal(item["panoptic"].numpy(), pan)


def test_with_masks_gives_the_things_as_instances() -> None:
    ds = SyntheticPanopticScenes(split="val", length=2, with_masks=True)
    item = ds[1]
    pan, seg = item["panoptic"], item["segments"]
    things = seg[seg[:, 1] >= 6]
    assert item["labels"].tolist() == things[:, 1].tolist()
    for k, sid in enumerate(things[:, 0].tolist()):
        m = pan == sid
        assert torch.equal(item["masks"][k].bool(), m) and item["area"][k] == m.sum()
        ys, xs = torch.nonzero(m, as_tuple=True)
        assert item["boxes"][k].tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
    assert not item["iscrowd"].any()
    assert "masks" not in SyntheticPanopticScenes(split="val", length=1)[0]
