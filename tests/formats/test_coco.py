"""Tests of the COCO file boundary: box conversions, results and ground-truth files, segment masks."""

import json

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from pixelwise.formats.coco import (
    coco_ground_truth_json,
    coco_results,
    decode_segmentation,
    encode_mask,
    write_coco_results,
    xywh_to_xyxy,
    xyxy_to_xywh,
)


def test_box_conversions_hand_case():
    xyxy = np.array([[1.0, 2.0, 4.0, 7.5]])
    np.testing.assert_array_equal(xyxy_to_xywh(xyxy), [[1, 2, 3, 5.5]])
    np.testing.assert_array_equal(xywh_to_xyxy(xyxy_to_xywh(xyxy)), xyxy)
    assert xyxy_to_xywh(torch.zeros(0, 4)).shape == (0, 4)


class TestResults:
    def test_scaled_back_and_category_ids(self, tmp_path):
        results = coco_results(
            image_ids=torch.tensor([42, 7]),
            boxes=[
                torch.tensor([[10.0, 20.0, 30.0, 60.0], [0.0, 0.0, 5.0, 5.0]]),
                torch.zeros(0, 4),
            ],
            scores=[torch.tensor([0.9, 0.25]), torch.zeros(0)],
            labels=[torch.tensor([2, 0]), torch.zeros(0, dtype=torch.long)],
            category_ids=[1, 3, 90],
            scales=[0.5, 2.0],
        )
        path = write_coco_results(tmp_path / "out" / "detections.json", results)
        assert json.loads(path.read_text()) == [
            {
                "image_id": 42,
                "category_id": 90,
                "bbox": [20.0, 40.0, 40.0, 80.0],
                "score": pytest.approx(0.9),
            },
            {"image_id": 42, "category_id": 1, "bbox": [0.0, 0.0, 10.0, 10.0], "score": 0.25},
        ]

    def test_label_without_category(self):
        with pytest.raises(
            ValueError, match=r"image 3: label 3 has no category id; expected labels in 0..2"
        ):
            coco_results([3], [np.zeros((1, 4))], [[0.5]], [[3]], category_ids=[1, 2, 3])

    def test_lengths_must_agree(self):
        with pytest.raises(ValueError, match="2 image ids, 1 box sets"):
            coco_results([1, 2], [np.zeros((1, 4))], [[0.5]], [[0]], category_ids=[1])
        with pytest.raises(ValueError, match="image 1 has 1 boxes, 2 scores"):
            coco_results([1], [np.zeros((1, 4))], [[0.5, 0.1]], [[0]], category_ids=[1])

    def test_scales_must_be_positive(self):
        with pytest.raises(ValueError, match="scales"):
            coco_results([1], [np.zeros((1, 4))], [[0.5]], [[0]], category_ids=[1], scales=[0.0])


class TestGroundTruth:
    def test_file_loads_in_pycocotools_with_our_values(self, tmp_path):
        path = coco_ground_truth_json(
            tmp_path / "gt.json",
            image_ids=[5, 9],
            orig_sizes=[[40, 60], [30, 30]],
            boxes=[
                torch.tensor([[2.0, 4.0, 12.0, 24.0], [0.0, 0.0, 4.0, 4.0]]),
                torch.tensor([[1.0, 1.0, 3.0, 2.0]]),
            ],
            labels=[torch.tensor([1, 0]), torch.tensor([1])],
            category_ids=[1, 3],
            class_names=["person", "car"],
            iscrowd=[torch.tensor([False, True]), torch.tensor([False])],
            scales=[2.0, 1.0],
        )
        coco = COCO(str(path))
        assert sorted(coco.getImgIds()) == [5, 9] and coco.loadCats([3])[0]["name"] == "car"
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[5]))
        assert [a["id"] for a in anns] == [1, 2]  # ids from 1: id 0 means "unmatched" in COCOeval
        assert anns[0]["bbox"] == [1.0, 2.0, 5.0, 10.0] and anns[0]["category_id"] == 3
        assert anns[0]["area"] == 50.0 and anns[1]["iscrowd"] == 1
        assert coco.loadImgs([5])[0] == {
            "id": 5,
            "width": 60,
            "height": 40,
            "file_name": "000000000005.jpg",
        }

    def test_category_names_must_match(self, tmp_path):
        with pytest.raises(ValueError, match="2 category ids but 1 class names"):
            coco_ground_truth_json(
                tmp_path / "gt.json", [1], [[4, 4]], [np.zeros((0, 4))], [[]], [1, 2], ["a"]
            )


class TestMasks:
    def test_rle_round_trip_and_pycocotools_area(self):
        rng = np.random.default_rng(0)
        mask = (rng.random((17, 23)) > 0.6).astype(np.uint8)
        rle = encode_mask(mask)
        assert isinstance(rle["counts"], str) and rle["size"] == [17, 23]
        json.dumps(rle)
        np.testing.assert_array_equal(decode_segmentation(rle, 17, 23), mask)
        assert (
            mask_utils.area({"size": rle["size"], "counts": rle["counts"].encode()}) == mask.sum()
        )

    @pytest.mark.filterwarnings(
        "ignore:__array__ implementation:DeprecationWarning"
    )  # pycocotools under numpy 2
    def test_polygon_and_uncompressed_rle(self):
        square = decode_segmentation([[2.0, 2.0, 6.0, 2.0, 6.0, 6.0, 2.0, 6.0]], 10, 10)
        expected = mask_utils.decode(
            mask_utils.merge(
                mask_utils.frPyObjects([[2.0, 2.0, 6.0, 2.0, 6.0, 6.0, 2.0, 6.0]], 10, 10)
            )
        )
        np.testing.assert_array_equal(square, expected)
        assert square[3:6, 3:6].all() and square.sum() >= 16
        column_major = {
            "size": [3, 2],
            "counts": [1, 2, 3],
        }  # pixels (row 1, col 0), (row 2, col 0)
        np.testing.assert_array_equal(
            decode_segmentation(column_major, 3, 2), [[0, 0], [1, 0], [1, 0]]
        )

    def test_not_a_segmentation(self):
        with pytest.raises(ValueError, match="not a polygon list or an RLE"):
            decode_segmentation({"size": [2, 2]}, 2, 2)


class TestDatasetGroundTruth:
    def test_synthetic_items_equal_the_export_and_score_one_against_themselves(self, tmp_path):
        import contextlib
        import io

        from pycocotools.cocoeval import COCOeval

        from pixelwise.data.coco_detection import COCODetection
        from pixelwise.data.coco_export import export_coco
        from pixelwise.data.synthetic_detection import SyntheticDetectionScenes
        from pixelwise.formats.coco import write_dataset_ground_truth

        ds = SyntheticDetectionScenes(size=(96, 128), length=5, split="val", seed=1)
        path = write_dataset_ground_truth(tmp_path / "gt.json", ds)
        exported = export_coco(tmp_path / "coco", split="val", count=5, size=(96, 128), seed=1)
        ours, theirs = json.loads(path.read_text()), json.loads(exported.read_text())
        for a, b in zip(ours["annotations"], theirs["annotations"], strict=True):
            b.pop("segmentation")
            assert a == b
        # letterboxed COCO items go back to original coordinates
        coco_items = COCODetection(tmp_path / "coco", split="val", size=(48, 64))
        back = json.loads(write_dataset_ground_truth(tmp_path / "gt2.json", coco_items).read_text())
        for a, b in zip(back["annotations"], ours["annotations"], strict=True):
            np.testing.assert_allclose(a["bbox"], b["bbox"], atol=1e-4)
        with contextlib.redirect_stdout(io.StringIO()):
            gt = COCO(str(path))
            dets = [dict(a, score=1.0) for a in ours["annotations"] if not a["iscrowd"]]
            ev = COCOeval(gt, gt.loadRes(dets), "bbox")
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        assert ev.stats[0] == pytest.approx(1.0)
