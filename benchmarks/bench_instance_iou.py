"""Cityscapes pixel-level evaluation: our metrics vs cityscapesScripts itself, on the same PNG files.

The baseline is cityscapesScripts' own ``evaluateImgLists`` (evalPixelLevelSemanticLabeling:
``evaluatePair`` per file pair, then the class and category IoU / iIoU scores), run in this
process on Cityscapes-sized files this script writes: 8-bit labelIds, 16-bit instanceIds
(instances, crowd regions, caravan instances) and labelIds predictions. The PyPI package ships
no compiled ``addToConfusionMatrix``, so the script takes its numpy (np.unique) path, as it
does for anyone who installs it with pip.

Our side reads the same files (PIL), maps label ids to trainIds and instanceIds to instances
(``cityscapes_instances``, as the Cityscapes dataset does), and updates InstanceIoU,
CategoryIoU and CategoryInstanceIoU. Values are checked equal before anything is timed.

    .venv/bin/python benchmarks/bench_instance_iou.py [--quick]
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _machine import machine_line  # noqa: E402

from pixelwise.data.cityscapes import cityscapes_instances  # noqa: E402
from pixelwise.data.cityscapes_labels import (  # noqa: E402
    CATEGORY_NAMES,
    CITYSCAPES_MEAN_INSTANCE_SIZE,
    CLASS_NAMES,
    CLASS_TO_CATEGORY,
    INSTANCE_CLASSES,
    LABELID_TO_TRAINID,
    TRAINID_TO_LABELID,
)
from pixelwise.metrics import CategoryInstanceIoU, CategoryIoU, InstanceIoU  # noqa: E402

# Rough per-image instance counts of Cityscapes val (person, rider, car, truck, bus, train, moto, bike).
COUNTS = {11: 12, 12: 2, 13: 15, 14: 1, 15: 1, 16: 0, 17: 1, 18: 3}


def make_scene(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, ...]:
    """(labelIds uint8, instanceIds uint16, predicted labelIds uint8), each [H, W], Cityscapes-like.

    Stuff in 64-px blocks, an ego-vehicle band (label 1, ignored), instances of the eight
    evaluated classes with Cityscapes' size spread, two crowd regions (instanceIds = label id)
    and a caravan instance (ignored in evaluation). The prediction is the ground truth with
    16-px block errors and 2 % pixel noise, in trainIds mapped to label ids.
    """
    coarse = rng.integers(0, 11, (h // 64 + 1, w // 64 + 1))
    gt = np.kron(coarse, np.ones((64, 64), dtype=np.int64))[:h, :w]
    gt = TRAINID_TO_LABELID[gt].astype(np.int64)
    gt[int(h * 0.85) :, :] = 1  # ego vehicle
    inst = gt.copy()
    next_id = 1

    def box(area: float) -> tuple[slice, slice]:
        bh = max(2, int(np.sqrt(area * rng.uniform(0.5, 2.0))))
        bw = max(2, int(area / bh))
        bh, bw = min(bh, h - 1), min(bw, w - 1)
        y, x = int(rng.integers(0, h - bh)), int(rng.integers(0, w - bw))
        return slice(y, y + bh), slice(x, x + bw)

    scale = h * w / (1024 * 2048)
    for cls, n in COUNTS.items():
        label = int(TRAINID_TO_LABELID[cls])
        for _ in range(rng.poisson(n)):
            mean = CITYSCAPES_MEAN_INSTANCE_SIZE[cls] * scale
            ys, xs = box(float(np.exp(rng.uniform(np.log(60 * scale + 4), np.log(4 * mean)))))
            gt[ys, xs] = label
            inst[ys, xs] = label * 1000 + next_id
            next_id += 1
    for label, area in ((24, 20000), (26, 30000), (29, 30000)):  # crowds, then a caravan
        ys, xs = box(area * scale)
        gt[ys, xs] = label
        inst[ys, xs] = label if label != 29 else 29 * 1000 + next_id
    pred = LABELID_TO_TRAINID[gt]
    pred = np.where(pred == 255, 0, pred)
    wrong = np.kron(rng.random((h // 16 + 1, w // 16 + 1)) < 0.1, np.ones((16, 16), bool))[:h, :w]
    pred[wrong] = rng.integers(0, 19, int(wrong.sum()))
    flip = rng.random((h, w)) < 0.02
    pred[flip] = rng.integers(0, 19, int(flip.sum()))
    return gt.astype(np.uint8), inst.astype(np.uint16), TRAINID_TO_LABELID[pred]


def write_files(root: Path, scenes) -> tuple[list[str], list[str]]:
    """The scenes as Cityscapes files; (prediction PNGs, gtFine labelIds PNGs)."""
    preds, gts = [], []
    for k, (gt, inst, pred) in enumerate(scenes):
        stem = f"city_000000_{k:06d}"
        Image.fromarray(gt).save(root / f"{stem}_gtFine_labelIds.png")
        Image.fromarray(inst).save(root / f"{stem}_gtFine_instanceIds.png")
        Image.fromarray(pred).save(root / f"{stem}_pred.png")
        preds.append(str(root / f"{stem}_pred.png"))
        gts.append(str(root / f"{stem}_gtFine_labelIds.png"))
    return preds, gts


def official(pred_files: list[str], gt_files: list[str]) -> dict:
    """cityscapesScripts' evaluateImgLists: default arguments, quiet, no JSON file."""
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as cs_eval

    args = copy.copy(cs_eval.args)
    args.quiet, args.JSONOutput, args.colorized = True, False, False
    args.evalInstLevelScore, args.evalPixelAccuracy = True, False
    if not hasattr(np, "in1d"):  # cityscapesScripts 2.3.0 under numpy >= 2.4
        np.in1d = lambda a, b, assume_unique=False, invert=False: np.isin(  # type: ignore[attr-defined]
            a, b, assume_unique=assume_unique, invert=invert
        ).ravel()
    return cs_eval.evaluateImgLists(pred_files, gt_files, args)


def new_metrics() -> tuple[InstanceIoU, CategoryIoU, CategoryInstanceIoU]:
    """The three Cityscapes metrics with the official avgClassSize."""
    return (
        InstanceIoU(19, INSTANCE_CLASSES, mean_instance_size=CITYSCAPES_MEAN_INSTANCE_SIZE),
        CategoryIoU(CLASS_TO_CATEGORY, len(CATEGORY_NAMES)),
        CategoryInstanceIoU(
            CLASS_TO_CATEGORY,
            len(CATEGORY_NAMES),
            INSTANCE_CLASSES,
            mean_instance_size=CITYSCAPES_MEAN_INSTANCE_SIZE,
        ),
    )


def read_pair(pred_file: str, gt_file: str) -> tuple[torch.Tensor, ...]:
    """(pred trainIds, target trainIds, instances), long [1, H, W] each, from the files."""
    pred = LABELID_TO_TRAINID[np.asarray(Image.open(pred_file))]
    target = LABELID_TO_TRAINID[np.asarray(Image.open(gt_file))]
    inst_file = gt_file.replace("labelIds", "instanceIds")
    inst = cityscapes_instances(np.asarray(Image.open(inst_file)), Path(inst_file))
    return tuple(torch.as_tensor(x.astype(np.int64))[None] for x in (pred, target, inst))


def ours_from_files(pred_files: list[str], gt_files: list[str]) -> dict[str, torch.Tensor]:
    """Read each pair, update the three metrics, compute."""
    iiou, cat, cat_iiou = new_metrics()
    for p, g in zip(pred_files, gt_files):
        pred, target, inst = read_pair(p, g)
        iiou.update(pred, target, inst)
        cat.update(pred, target)
        cat_iiou.update(pred, target, inst)
    return {**iiou.compute(), **cat.compute(), **cat_iiou.compute()}


def check_equal(ours: dict[str, torch.Tensor], ref: dict) -> float:
    """Largest |ours - official| over every class and category score (NaN must match NaN)."""
    pairs = [
        (ours["iiou_per_class"], [ref["classInstScores"][n] for n in CLASS_NAMES]),
        (ours["category_iou_per_category"], [ref["categoryScores"][n] for n in CATEGORY_NAMES]),
        (
            ours["category_iiou_per_category"],
            [ref["categoryInstScores"][n] for n in CATEGORY_NAMES],
        ),
        (ours["iiou"][None], [ref["averageScoreInstClasses"]]),
        (ours["category_miou"][None], [ref["averageScoreCategories"]]),
        (ours["category_iiou"][None], [ref["averageScoreInstCategories"]]),
    ]
    worst = 0.0
    for a, b in pairs:
        a, b = a.double().numpy(), np.asarray(b, float)
        assert np.array_equal(np.isnan(a), np.isnan(b)), (a, b)
        worst = max(worst, float(np.nanmax(np.abs(a - b), initial=0.0)))
    assert worst < 1e-5, worst
    return worst


def timed(fn, repeats: int) -> float:
    """Median wall time of fn() in milliseconds (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def main() -> None:
    # The official script is single-threaded numpy; 2 shared cores make threads noisy.
    torch.set_num_threads(1)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 images at 512x1024, 1 repeat")
    args = parser.parse_args()
    h, w, b = (512, 1024, 2) if args.quick else (1024, 2048, 4)
    repeats = 1 if args.quick else 5
    rng = np.random.default_rng(0)
    scenes = [make_scene(rng, h, w) for _ in range(b)]
    with tempfile.TemporaryDirectory() as tmp:
        pred_files, gt_files = write_files(Path(tmp), scenes)
        ours_values = ours_from_files(pred_files, gt_files)
        ref = official(pred_files, gt_files)
        worst = check_equal(ours_values, ref)
        tensors = [read_pair(p, g) for p, g in zip(pred_files, gt_files)]
        pred_t, gt_t, inst_t = (torch.cat(x) for x in zip(*tensors))
        n_inst = sum(len(torch.unique(i[i > 0])) for i in inst_t)

        def updates_only() -> None:
            for m, needs_inst in zip(new_metrics(), (True, False, True)):
                m.update(pred_t, gt_t, inst_t) if needs_inst else m.update(pred_t, gt_t)

        def iiou_only() -> None:
            new_metrics()[0].update(pred_t, gt_t, inst_t)

        def reading_only() -> None:
            for p, g in zip(pred_files, gt_files):
                read_pair(p, g)

        base = timed(lambda: official(pred_files, gt_files), repeats)
        rows = [
            ("InstanceIoU.update (tensors in memory)", timed(iiou_only, repeats)),
            (
                "InstanceIoU + CategoryIoU + CategoryInstanceIoU updates",
                timed(updates_only, repeats),
            ),
            ("reading the PNGs into tensors (PIL + id tables)", timed(reading_only, repeats)),
            (
                "ours end to end: read the PNGs + three metrics + compute",
                timed(lambda: ours_from_files(pred_files, gt_files), repeats),
            ),
        ]
    print(
        f"\n{b} images of {h}x{w}, 19 classes, {n_inst} evaluated instances (+ crowds, caravans); "
        f"iIoU {ours_values['iiou'].item():.6f}, largest |ours - cityscapesScripts| over all "
        f"class/category scores {worst:.1e}\n"
    )
    print("| computation | ms / batch | baseline / this |")
    print("|---|---:|---:|")
    print(
        f"| baseline, measured in this run: cityscapesScripts evaluateImgLists "
        f"(reads the PNGs; its numpy path, as pip installs it) | {base:.1f} | 1.00x |"
    )
    for name, ms in rows:
        print(f"| {name} | {ms:.1f} | {base / ms:.2f}x |")
    print(machine_line())


if __name__ == "__main__":
    main()
