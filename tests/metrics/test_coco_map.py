"""coco_box_map (torchmetrics MeanAveragePrecision) agrees with pycocotools' COCOeval run on the JSON files we write.

Ground truth: small, medium and large boxes (segment areas differing from box areas), crowd
regions with detections on them, an image without objects, non-contiguous category ids, and
letterbox scales != 1 (files are in original coordinates, the metric gets boxes / scale).
"""

import contextlib
import io

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from pixelwise.formats.coco import coco_ground_truth_json, coco_results, write_coco_results
from pixelwise.metrics.coco_map import (
    COCO_IOU_THRESHOLDS,
    COCO_RECALL_THRESHOLDS,
    DEFAULT_BACKEND,
    coco_box_map,
)

CATEGORY_IDS = [1, 5, 90]
NAMES = ["car", "truck", "pedestrian"]
# COCOeval.stats order -> torchmetrics keys
KEYS = [
    "map",
    "map_50",
    "map_75",
    "map_small",
    "map_medium",
    "map_large",
    "mar_1",
    "mar_10",
    "mar_100",
    "mar_small",
    "mar_medium",
    "mar_large",
]


def make_case(seed: int = 0, n_images: int = 14):
    """Per image (in letterboxed coordinates): targets, detections, scale, original size."""
    rng = np.random.default_rng(seed)
    images = []
    for j in range(n_images):
        h, w = int(rng.integers(200, 480)), int(rng.integers(200, 640))
        scale = float(rng.choice([1.0, 0.5, 0.8]))
        m = 0 if j == 3 else int(rng.integers(1, 9))
        side = np.exp(rng.uniform(np.log(6), np.log(180), m))  # small (< 32) to large (> 96)
        bw = np.minimum(side * np.exp(rng.uniform(-0.5, 0.5, m)), w - 1)
        bh = np.minimum(side * np.exp(rng.uniform(-0.5, 0.5, m)), h - 1)
        x, y = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
        gt = np.stack([x, y, x + bw, y + bh], 1)
        labels = rng.integers(0, 3, m)
        crowd = rng.random(m) < 0.2
        area = bw * bh * rng.uniform(0.5, 1.0, m)  # segment area < box area
        # detections: jittered ground truth (incl. on crowd regions), duplicates, clutter
        k = m + int(rng.integers(0, 4))
        src = rng.integers(0, max(m, 1), k)
        if m:
            base = gt[src]
            size = np.repeat((base[:, 2:] - base[:, :2]), 2, axis=1)
            det = base + rng.normal(0, 0.1, (k, 4)) * size
            det_labels = np.where(rng.random(k) < 0.85, labels[src], rng.integers(0, 3, k))
        else:
            det, det_labels = np.zeros((0, 4)), np.zeros(0, np.int64)
        n_clutter = int(rng.integers(0, 6))
        cx, cy = rng.uniform(0, w - 40, n_clutter), rng.uniform(0, h - 40, n_clutter)
        cs = rng.uniform(4, 120, (2, n_clutter))
        det = np.concatenate([det, np.stack([cx, cy, cx + cs[0], cy + cs[1]], 1)])
        det_labels = np.concatenate([det_labels, rng.integers(0, 3, n_clutter)])
        det[:, 2:] = np.maximum(det[:, 2:], det[:, :2] + 1)
        scores = rng.random(len(det))
        images.append(
            {
                "id": 100 + 7 * j,
                "size": (h, w),
                "scale": scale,
                "boxes": torch.tensor(gt * scale, dtype=torch.float32),
                "labels": torch.tensor(labels),
                "iscrowd": torch.tensor(crowd),
                "area": torch.tensor(area, dtype=torch.float32),
                "det_boxes": torch.tensor(det * scale, dtype=torch.float32),
                "det_scores": torch.tensor(scores, dtype=torch.float32),
                "det_labels": torch.tensor(det_labels),
            }
        )
    return images


def pycocotools_stats(tmp_path, images) -> np.ndarray:
    gt_path = coco_ground_truth_json(
        tmp_path / "gt.json",
        [im["id"] for im in images],
        [im["size"] for im in images],
        [im["boxes"] for im in images],
        [im["labels"] for im in images],
        CATEGORY_IDS,
        NAMES,
        iscrowd=[im["iscrowd"] for im in images],
        areas=[im["area"] for im in images],
        scales=[im["scale"] for im in images],
    )
    results = coco_results(
        [im["id"] for im in images],
        [im["det_boxes"] for im in images],
        [im["det_scores"] for im in images],
        [im["det_labels"] for im in images],
        CATEGORY_IDS,
        scales=[im["scale"] for im in images],
    )
    dt_path = write_coco_results(tmp_path / "detections.json", results)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        ev = COCOeval(gt, gt.loadRes(str(dt_path)), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


def metric_values(images, backend: str, batch: int = 4) -> dict:
    metric = coco_box_map(backend=backend)
    for i in range(0, len(images), batch):
        chunk = images[i : i + batch]
        preds = [
            {
                "boxes": im["det_boxes"] / im["scale"],
                "scores": im["det_scores"],
                "labels": im["det_labels"],
            }
            for im in chunk
        ]
        targets = [
            {
                "boxes": im["boxes"] / im["scale"],
                "labels": im["labels"],
                "iscrowd": im["iscrowd"].long(),
                "area": im["area"],
            }
            for im in chunk
        ]
        metric.update(preds, targets)
    return {k: float(v) for k, v in metric.compute().items() if v.numel() == 1}


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    images = make_case()
    assert sum(int(im["iscrowd"].sum()) for im in images) >= 3
    areas = torch.cat([im["area"] for im in images])
    assert (
        (areas < 32**2).any()
        and ((areas > 32**2) & (areas < 96**2)).any()
        and (areas > 96**2).any()
    )
    return images, pycocotools_stats(tmp_path_factory.mktemp("coco"), images)


@pytest.mark.parametrize("backend", ["pycocotools", "faster_coco_eval"])
def test_agrees_with_cocoeval_on_the_written_files(case, backend):
    images, stats = case
    values = metric_values(images, backend)
    got = np.array([values[k] for k in KEYS])
    np.testing.assert_allclose(got, stats, atol=1e-4)
    assert 0.1 < values["map"] < 0.9  # a case where mistakes would show


def test_crowd_regions_change_the_result(case, tmp_path):
    """The crowd flags are used: treating crowds as objects gives another mAP, again equal in both."""
    images, stats = case
    plain = [dict(im, iscrowd=torch.zeros_like(im["iscrowd"])) for im in images]
    other = pycocotools_stats(tmp_path, plain)
    assert abs(other[0] - stats[0]) > 1e-3
    np.testing.assert_allclose(metric_values(plain, DEFAULT_BACKEND)["map"], other[0], atol=1e-4)


def test_segment_areas_decide_the_size_ranges(case):
    """Without `area` the box areas decide small/medium/large, which changes those values here."""
    images, stats = case
    no_area = [dict(im, area=torch.zeros_like(im["area"])) for im in images]  # 0 = use box area
    values = metric_values(no_area, DEFAULT_BACKEND)
    sized = np.array([values[k] for k in KEYS[3:6] + KEYS[9:]])
    assert np.abs(sized - stats[[3, 4, 5, 9, 10, 11]]).max() > 1e-3


def test_thresholds_are_cocoevals():
    from pycocotools.cocoeval import Params

    params = Params(iouType="bbox")
    assert np.array_equal(np.array(COCO_IOU_THRESHOLDS), params.iouThrs)
    assert np.array_equal(np.array(COCO_RECALL_THRESHOLDS), params.recThrs)
    metric = coco_box_map()
    assert (
        metric.iou_thresholds == COCO_IOU_THRESHOLDS
        and metric.rec_thresholds == COCO_RECALL_THRESHOLDS
    )


def test_factory_settings():
    metric = coco_box_map()
    assert metric.box_format == "xyxy" and metric.iou_type == ("bbox",)
    assert DEFAULT_BACKEND == "faster_coco_eval"
    assert coco_box_map(backend="pycocotools", class_metrics=True).class_metrics
