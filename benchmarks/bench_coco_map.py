"""COCO box mAP: torchmetrics' MeanAveragePrecision (both backends) vs pycocotools' COCOeval on the same detections.

500 images (--quick: 100) with 2..20 ground-truth boxes of 10 classes (small, medium and large,
a few crowd regions) and 50 detections each (jittered ground truth plus clutter). Timed:

- pixelwise.metrics.coco_box_map(backend=...): update in batches of 16 + compute;
- pycocotools directly: COCO ground truth from the dict, loadRes of the results list,
  evaluate + accumulate + summarize (what a script on the JSON files does).

The mAP values of all three are checked equal before timing.

    .venv/bin/python benchmarks/bench_coco_map.py [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _machine import machine_line  # noqa: E402

from pixelwise.formats.coco import coco_ground_truth, coco_results  # noqa: E402
from pixelwise.metrics.coco_map import coco_box_map  # noqa: E402

K = 10
CATS = list(range(1, K + 1))
NAMES = [f"c{k}" for k in CATS]
SIZE = 640


def make_data(n_images: int, n_det: int, seed: int = 0):
    """Targets and predictions (torchmetrics dicts, original coordinates)."""
    rng = np.random.default_rng(seed)
    targets, preds = [], []
    for _ in range(n_images):
        m = int(rng.integers(2, 21))
        side = np.exp(rng.uniform(np.log(8), np.log(300), m))
        aspect = np.exp(rng.uniform(-0.7, 0.7, m))
        w, h = side * aspect, side / aspect
        x, y = rng.uniform(0, SIZE - w), rng.uniform(0, SIZE - h)
        gt = np.stack([x, y, x + w, y + h], 1)
        labels = rng.integers(0, K, m)
        crowd = rng.random(m) < 0.05
        k = min(n_det, m)
        jitter = rng.normal(0, 0.08, (k, 4)) * np.repeat(np.stack([w[:k], h[:k]], 1), 2, 1)
        det = gt[:k] + jitter
        x2, y2 = rng.uniform(0, SIZE - 50, (2, n_det - k))
        s = rng.uniform(5, 120, (2, n_det - k))
        det = np.concatenate([det, np.stack([x2, y2, x2 + s[0], y2 + s[1]], 1)])
        det[:, 2:] = np.maximum(det[:, 2:], det[:, :2] + 1)
        det_labels = np.concatenate(
            [
                np.where(rng.random(k) < 0.8, labels[:k], rng.integers(0, K, k)),
                rng.integers(0, K, n_det - k),
            ]
        )
        targets.append(
            {
                "boxes": torch.tensor(gt, dtype=torch.float32),
                "labels": torch.tensor(labels),
                "iscrowd": torch.tensor(crowd),
                "area": torch.tensor(w * h, dtype=torch.float32),
            }
        )
        preds.append(
            {
                "boxes": torch.tensor(det, dtype=torch.float32),
                "scores": torch.tensor(rng.random(n_det), dtype=torch.float32),
                "labels": torch.tensor(det_labels),
            }
        )
    return targets, preds


def run_metric(backend: str, targets, preds) -> dict:
    metric = coco_box_map(backend=backend)
    for i in range(0, len(preds), 16):
        metric.update(preds[i : i + 16], targets[i : i + 16])
    return metric.compute()


def run_pycocotools(targets, preds) -> float:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    ids = list(range(len(targets)))
    gt = coco_ground_truth(
        ids,
        [[SIZE, SIZE]] * len(ids),
        [t["boxes"] for t in targets],
        [t["labels"] for t in targets],
        CATS,
        NAMES,
        iscrowd=[t["iscrowd"] for t in targets],
        areas=[t["area"] for t in targets],
    )
    results = coco_results(
        ids,
        [p["boxes"] for p in preds],
        [p["scores"] for p in preds],
        [p["labels"] for p in preds],
        CATS,
    )
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(results), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[0])


def timed(fn, repeats: int) -> float:
    """Median wall time of fn() in seconds (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n = 100 if args.quick else 500
    repeats = 1 if args.quick else 3
    targets, preds = make_data(n, 50)
    ref = run_pycocotools(targets, preds)
    values = {
        b: float(run_metric(b, targets, preds)["map"]) for b in ("faster_coco_eval", "pycocotools")
    }
    for b, v in values.items():
        assert abs(v - ref) < 1e-6, (b, v, ref)
    t_cocoeval = timed(lambda: run_pycocotools(targets, preds), repeats)
    t_fast = timed(lambda: run_metric("faster_coco_eval", targets, preds), repeats)
    t_pycoco = timed(lambda: run_metric("pycocotools", targets, preds), repeats)
    print(machine_line())
    print(f"COCO box mAP, {n} images x 50 detections, {K} classes (mAP {ref:.4f} in all three)")
    print(
        f"{'':44s} {'s':>7s} {'ms/image':>9s} {'vs COCOeval (baseline, measured in this run)':>12s}"
    )
    for name, t in (
        ("pycocotools COCOeval (loadRes+eval+acc+sum)", t_cocoeval),
        ("MeanAveragePrecision faster_coco_eval", t_fast),
        ("MeanAveragePrecision pycocotools", t_pycoco),
    ):
        print(f"{name:44s} {t:7.2f} {1000 * t / n:9.2f} {t / t_cocoeval:11.2f}x")
    print(
        f"faster_coco_eval backend is {t_pycoco / t_fast:.2f}x faster than the pycocotools backend"
    )


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
