"""coco_mask_map (torchmetrics segm + bbox) agrees with pycocotools' COCOeval on written JSON files."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from pixelwise.data.synthetic_detection import SyntheticDetectionScenes
from pixelwise.formats.coco import coco_ground_truth_json, encode_mask
from pixelwise.metrics.coco_mask_map import coco_mask_map, mask_boxes


def test_mask_boxes_by_hand() -> None:
    m = torch.zeros(1, 5, 6, dtype=torch.bool)
    m[0, 1:3, 2:5] = True
    assert mask_boxes(m).tolist() == [[2.0, 1.0, 5.0, 3.0]]
    assert mask_boxes(torch.zeros(0, 5, 6, dtype=torch.bool)).shape == (0, 4)


def test_segm_map_equals_cocoeval(tmp_path: Path) -> None:
    ds = SyntheticDetectionScenes(split="val", length=10, size=(64, 80), with_masks=True)
    rng = np.random.default_rng(0)
    metric = coco_mask_map(backend="pycocotools")
    gts, results = [], []
    for i in range(len(ds)):
        item = ds[i]
        masks = item["masks"].bool()
        preds = []
        for m, lab in zip(masks, item["labels"]):
            if rng.random() < 0.2:
                continue  # a miss
            p = torch.roll(m, int(rng.integers(-2, 3)), dims=int(rng.integers(0, 2)))
            preds.append(
                (
                    p,
                    int(lab) if rng.random() > 0.1 else int(rng.integers(0, 3)),
                    float(rng.random()),
                )
            )
        for _ in range(2):  # false positives
            p = torch.zeros_like(masks[0]) if len(masks) else torch.zeros(64, 80, dtype=torch.bool)
            y, x = rng.integers(0, 50), rng.integers(0, 60)
            p[y : y + 8, x : x + 12] = True
            preds.append((p, int(rng.integers(0, 3)), float(rng.random())))
        pm = torch.stack([p for p, _, _ in preds])
        pred = {
            "masks": pm,
            "boxes": mask_boxes(pm),
            "labels": torch.tensor([c for _, c, _ in preds]),
            "scores": torch.tensor([s for _, _, s in preds], dtype=torch.float32),
        }
        area = masks.flatten(1).sum(1).float()
        target = {
            "masks": masks,
            "boxes": mask_boxes(masks),
            "labels": item["labels"],
            "iscrowd": item["iscrowd"].long(),
            "area": area,
        }
        metric.update([pred], [target])
        gts.append((item, masks, area))
        for p, c, s in zip(pm, pred["labels"].tolist(), pred["scores"].tolist()):
            results.append(
                {
                    "image_id": int(item["image_id"]),
                    "category_id": c + 1,
                    "score": s,
                    "segmentation": encode_mask(p.numpy().astype(np.uint8)),
                }
            )
    gt_path = coco_ground_truth_json(
        tmp_path / "gt.json",
        [int(it["image_id"]) for it, _, _ in gts],
        [[64, 80]] * len(gts),
        [mask_boxes(m) for _, m, _ in gts],
        [it["labels"] for it, _, _ in gts],
        category_ids=[1, 2, 3],
        class_names=["car", "truck", "pedestrian"],
        iscrowd=[it["iscrowd"] for it, _, _ in gts],
        areas=[a for _, _, a in gts],
        segmentations=[[encode_mask(x.numpy().astype(np.uint8)) for x in m] for _, m, _ in gts],
    )
    for r in results:
        r["segmentation"]["counts"] = (
            r["segmentation"]["counts"].decode()
            if isinstance(r["segmentation"]["counts"], bytes)
            else r["segmentation"]["counts"]
        )
    (tmp_path / "res.json").write_text(json.dumps(results))
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        ev = COCOeval(gt, gt.loadRes(str(tmp_path / "res.json")), "segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        r = metric.compute()
    assert ev.stats[0] > 0.2  # a non-trivial case
    for key, want in zip(
        ["segm_map", "segm_map_50", "segm_map_75", "segm_map_small", "segm_map_medium"],
        ev.stats[:5],
    ):
        if want >= 0:
            assert float(r[key]) == pytest.approx(want, abs=1e-4), key
