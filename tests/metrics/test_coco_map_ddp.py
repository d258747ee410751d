"""Mask and box AP under DDP with an uneven split equal one process's, and pycocotools' COCOeval.

Evaluation loaders use Lightning's UnrepeatedDistributedSampler (nothing padded or repeated, so
nothing counted twice): 5 images on 2 ranks are images 0, 2, 4 on rank 0 and 1, 3 on rank 1. The
scores are rounded so detections of different images tie: COCOeval breaks ties by image order,
so the gathered images must come back in the dataset's order for the values to be exact.
"""

from __future__ import annotations

import contextlib
import io
import json
import queue as queue_module
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from pixelwise.data.synthetic_detection import SyntheticDetectionScenes
from pixelwise.formats.coco import coco_ground_truth_json, encode_mask
from pixelwise.metrics.coco_map import coco_box_map
from pixelwise.metrics.coco_mask_map import coco_mask_map, mask_boxes

SIZE = (64, 80)
IMAGES = 5
KEYS = ("map", "map_50", "map_75", "map_small", "map_medium", "map_large", "mar_100")


def scene_pairs(count: int = IMAGES) -> list[tuple[dict, dict, int]]:
    """(prediction, target, image_id) per synthetic scene: shifted masks, misses, false positives."""
    ds = SyntheticDetectionScenes(split="val", length=count, size=SIZE, with_masks=True)
    rng = np.random.default_rng(3)
    pairs = []
    for i in range(count):
        item = ds[i]
        masks = item["masks"].bool()
        preds = []
        for m, label in zip(masks, item["labels"].tolist()):
            if rng.random() < 0.2:
                continue  # a miss
            shifted = torch.roll(m, int(rng.integers(-2, 3)), dims=int(rng.integers(0, 2)))
            preds.append((shifted, label if rng.random() > 0.1 else int(rng.integers(0, 3))))
        for _ in range(2):  # false positives
            p = torch.zeros(SIZE, dtype=torch.bool)
            y, x = rng.integers(0, 50), rng.integers(0, 60)
            p[y : y + 8, x : x + 12] = True
            preds.append((p, int(rng.integers(0, 3))))
        pm = torch.stack([p for p, _ in preds])
        # One decimal: detections of different images share scores.
        scores = torch.tensor(np.round(rng.random(len(preds)), 1), dtype=torch.float32)
        pred = {
            "masks": pm,
            "boxes": mask_boxes(pm),
            "labels": torch.tensor([c for _, c in preds]),
            "scores": scores,
        }
        target = {
            "masks": masks,
            "boxes": mask_boxes(masks),
            "labels": item["labels"].long(),
            "iscrowd": item["iscrowd"].long(),
            "area": masks.flatten(1).sum(1).float(),
        }
        pairs.append((pred, target, int(item["image_id"])))
    return pairs


def metrics() -> dict:
    return {"mask": coco_mask_map(), "box": coco_box_map()}


def compute(pairs: list[tuple[dict, dict, int]], batch: int = 2) -> dict[str, float]:
    """Both metrics over ``pairs`` fed in batches of ``batch`` images, as plain floats."""
    out = {}
    for name, metric in metrics().items():
        for start in range(0, len(pairs), batch):
            chunk = pairs[start : start + batch]
            metric.update([p for p, _, _ in chunk], [t for _, t, _ in chunk])
        for key, value in metric.compute().items():
            if torch.as_tensor(value).numel() == 1 and key != "classes":
                out[f"{name}/{key}"] = float(value)
    return out


def _rank(rank: int, world: int, init_file: str, queue) -> None:
    torch.distributed.init_process_group(
        "gloo",
        init_method=f"file://{init_file}",
        rank=rank,
        world_size=world,
        timeout=timedelta(seconds=60),  # a mismatched collective fails instead of hanging
    )
    try:
        pairs = scene_pairs()
        # UnrepeatedDistributedSampler's shard: images rank, rank + world, ...
        queue.put((rank, compute(pairs[rank::world])))
    except Exception as err:  # noqa: BLE001 — reported to the test, which fails with it
        queue.put((rank, f"{type(err).__name__}: {err}"))
    finally:
        torch.distributed.destroy_process_group()


def cocoeval_stats(pairs: list[tuple[dict, dict, int]], tmp_path: Path, iou_type: str) -> list:
    """pycocotools' COCOeval stats on the pairs written as ground-truth and results JSON files."""
    gt_path = coco_ground_truth_json(
        tmp_path / "gt.json",
        [i for _, _, i in pairs],
        [list(SIZE)] * len(pairs),
        [t["boxes"] for _, t, _ in pairs],
        [t["labels"] for _, t, _ in pairs],
        category_ids=[1, 2, 3],
        class_names=["car", "truck", "pedestrian"],
        iscrowd=[t["iscrowd"] for _, t, _ in pairs],
        areas=[t["area"] for _, t, _ in pairs],
        segmentations=[
            [encode_mask(m.numpy().astype(np.uint8)) for m in t["masks"]] for _, t, _ in pairs
        ],
    )
    results = []
    for pred, _, image_id in pairs:
        for mask, box, label, score in zip(
            pred["masks"], pred["boxes"].tolist(), pred["labels"].tolist(), pred["scores"].tolist()
        ):
            x1, y1, x2, y2 = box
            results.append(
                {
                    "image_id": image_id,
                    "category_id": label + 1,
                    "score": score,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "segmentation": encode_mask(mask.numpy().astype(np.uint8)),
                }
            )
    (tmp_path / "res.json").write_text(json.dumps(results))
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        ev = COCOeval(gt, gt.loadRes(str(tmp_path / "res.json")), iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return list(ev.stats)


@pytest.mark.slow
def test_uneven_ddp_equals_one_process_and_cocoeval(tmp_path):
    import torch.multiprocessing as mp

    pairs = scene_pairs()
    single = compute(pairs)
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=_rank, args=(r, 2, str(tmp_path / "init"), queue)) for r in range(2)
    ]
    for p in procs:
        p.start()
    results: dict[int, object] = {}
    try:
        deadline = time.monotonic() + 240
        while len(results) < len(procs):
            try:
                rank, result = queue.get(timeout=1)
                results[rank] = result
            except queue_module.Empty:
                dead = [r for r, p in enumerate(procs) if p.exitcode not in (None, 0)]
                assert not dead, f"rank(s) {dead} died (exit {[procs[r].exitcode for r in dead]})"
                assert time.monotonic() < deadline, f"no result from every rank: {results}"
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    for rank in (0, 1):
        got = results[rank]
        assert isinstance(got, dict), f"rank {rank}: {got}"
        assert got.keys() == single.keys()
        for key, value in single.items():
            assert got[key] == pytest.approx(value, abs=1e-12), (rank, key)
    # ... and the single-process values are COCOeval's on the same images, as files.
    # The instance callback's metric (coco_mask_map: bbox and segm) and the detection one's.
    for iou_type, prefixes in (("segm", ["mask/segm_"]), ("bbox", ["mask/bbox_", "box/"])):
        stats = cocoeval_stats(pairs, tmp_path, iou_type)
        assert stats[0] > 0.2  # a non-trivial case
        for prefix in prefixes:
            for key, want in zip(KEYS, [*stats[:6], stats[8]]):
                assert single[prefix + key] == pytest.approx(want, abs=1e-6), prefix + key
