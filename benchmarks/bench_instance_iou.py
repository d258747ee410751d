"""InstanceIoU.update on 4 Cityscapes-sized maps vs the reference per-image evaluation loop.

The baseline re-implements `evaluatePair` of cityscapesscripts' evalPixelLevelSemanticLabeling.py
on label-id maps: a confusion matrix per image, then a numpy loop over the image's instances
(mask = instanceNp == id, count hits, weight by avgClassSize). The script builds its confusion
matrix either with a Cython loop or, without Cython, with np.unique over encoded pairs; the
Cython path is stood in for by np.bincount (the faster of the two in numpy), and the np.unique
fallback is timed too. Both sides use the official avgClassSize table, and their iIoU values
are checked equal before timing.

    .venv/bin/python benchmarks/bench_instance_iou.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _machine import machine_line  # noqa: E402

from pixelwise.data.cityscapes_labels import (  # noqa: E402
    CITYSCAPES_LABELS,
    CITYSCAPES_MEAN_INSTANCE_SIZE,
    CLASS_TO_CATEGORY,
    INSTANCE_CLASSES,
    TRAINID_TO_LABELID,
)
from pixelwise.metrics import CategoryInstanceIoU, CategoryIoU, InstanceIoU  # noqa: E402

H, W, B = 1024, 2048, 4
# Rough per-image instance counts of Cityscapes val (person, rider, car, truck, bus, train, moto, bike).
COUNTS = {11: 12, 12: 2, 13: 15, 14: 1, 15: 1, 16: 0, 17: 1, 18: 3}

ID2LABEL = {lab.id: lab for lab in CITYSCAPES_LABELS if lab.id >= 0}
AVG_BY_NAME = {
    ID2LABEL[int(TRAINID_TO_LABELID[t])].name: v for t, v in CITYSCAPES_MEAN_INSTANCE_SIZE.items()
}
EVAL_LABELS = sorted(ID2LABEL)
CATEGORY_LABEL_IDS = {
    cat: [lab.id for lab in CITYSCAPES_LABELS if lab.category == cat and lab.id >= 0]
    for cat in ("human", "vehicle")  # the categories whose labels all have instances
}


def make_scene(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One (pred trainIds, target trainIds, instance ids 1..K) scene of H x W, Cityscapes-like."""
    coarse = rng.integers(0, 11, (H // 64, W // 64))
    gt = np.kron(coarse, np.ones((64, 64), dtype=np.int64))
    gt[int(H * 0.85) :, :] = 255  # ego vehicle / out of roi
    inst = np.zeros((H, W), dtype=np.int64)
    next_id = 1
    for cls, n in COUNTS.items():
        for _ in range(rng.poisson(n)):
            area = float(
                np.exp(rng.uniform(np.log(60), np.log(4 * CITYSCAPES_MEAN_INSTANCE_SIZE[cls])))
            )
            h = max(2, int(np.sqrt(area * rng.uniform(0.5, 2.0))))
            w = max(2, int(area / h))
            y, x = rng.integers(0, H - h), rng.integers(0, W - w)
            gt[y : y + h, x : x + w] = cls
            inst[y : y + h, x : x + w] = next_id
            next_id += 1
    # Errors at block level (wrong region) plus scattered pixel noise.
    pred = np.where(gt == 255, 0, gt)
    wrong = np.kron(rng.random((H // 16, W // 16)) < 0.1, np.ones((16, 16), dtype=bool))
    pred[wrong] = rng.integers(0, 19, int(wrong.sum()))
    flip = rng.random((H, W)) < 0.02
    pred[flip] = rng.integers(0, 19, int(flip.sum()))
    return pred, gt, inst


def to_label_ids(pred: np.ndarray, gt: np.ndarray, inst: np.ndarray) -> tuple[np.ndarray, ...]:
    """The same scene in the script's input space: labelIds and `labelId * 1000 + k` instance ids."""
    pred_l = TRAINID_TO_LABELID[pred]
    gt_l = TRAINID_TO_LABELID[gt]
    inst_l = np.where(inst > 0, gt_l.astype(np.int64) * 1000 + inst, gt_l).astype(np.int32)
    return pred_l, gt_l, inst_l


def reference_evaluate_pair(pred, gt, inst, conf, stats, confusion="bincount", categories=False):
    """evaluatePair of the Cityscapes script (class level, optionally category level)."""
    n = conf.shape[0]
    if confusion == "bincount":
        conf += (
            np.bincount(gt.astype(np.int64).ravel() * n + pred.ravel(), minlength=n * n)
            .reshape(n, n)
            .astype(np.uint64)
        )
    else:  # the script's pure-Python fallback
        enc_val = int(max(gt.max(), pred.max())) + 1
        encoded = gt.astype(np.int32) * enc_val + pred
        values, cnt = np.unique(encoded, return_counts=True)
        for value, c in zip(values, cnt):
            pred_id = value % enc_val
            gt_id = int((value - pred_id) / enc_val)
            conf[gt_id][pred_id] += c
    if categories:
        cat_masks = {cat: np.isin(pred, ids) for cat, ids in CATEGORY_LABEL_IDS.items()}
    for inst_id in np.unique(inst[inst > 1000]):
        label = ID2LABEL[int(inst_id // 1000)]
        if label.ignore_in_eval:
            continue
        mask = inst == inst_id
        size = np.count_nonzero(mask)
        tp = np.count_nonzero(pred[mask] == label.id)
        weight = AVG_BY_NAME[label.name] / float(size)
        s = stats["classes"].setdefault(label.name, [0.0, 0.0])
        s[0] += tp * weight
        s[1] += (size - tp) * weight
        if categories and label.category in cat_masks:
            cat_tp = np.count_nonzero(np.logical_and(mask, cat_masks[label.category]))
            c = stats["categories"].setdefault(label.category, [0.0, 0.0])
            c[0] += cat_tp * weight
            c[1] += (size - cat_tp) * weight


def reference_iiou(conf: np.ndarray, stats: dict) -> float:
    """Mean of getInstanceIouScoreForLabel over the evaluated instance classes."""
    scores = []
    for lab in CITYSCAPES_LABELS:
        if lab.id < 0 or lab.ignore_in_eval or not lab.has_instances:
            continue
        tp, fn = stats["classes"].get(lab.name, [0.0, 0.0])
        rows = [i for i in EVAL_LABELS if not ID2LABEL[i].ignore_in_eval and i != lab.id]
        fp = float(conf[rows, lab.id].sum())
        if tp + fp + fn > 0:
            scores.append(tp / (tp + fp + fn))
    return float(np.mean(scores))


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
    torch.set_num_threads(
        1
    )  # numpy reference is single-threaded; 2 shared cores make threads noisy
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (< 60 s)")
    args = parser.parse_args()
    repeats = 1 if args.quick else 5
    rng = np.random.default_rng(0)
    scenes = [make_scene(rng) for _ in range(B)]
    pred_t, gt_t, inst_t = (torch.as_tensor(np.stack(x)) for x in zip(*scenes))
    label_scenes = [to_label_ids(*s) for s in scenes]
    inst_raw_t = torch.as_tensor(np.stack([s[2] for s in label_scenes]).astype(np.int64))
    n_inst = int(sum(len(np.unique(s[2][s[2] > 0])) for s in scenes))
    n_labels = max(EVAL_LABELS) + 1

    def ours(instances: torch.Tensor = inst_t) -> InstanceIoU:
        m = InstanceIoU(19, INSTANCE_CLASSES, mean_instance_size=CITYSCAPES_MEAN_INSTANCE_SIZE)
        m.update(pred_t, gt_t, instances)
        return m

    def ours_all() -> None:
        ours()
        CategoryIoU(CLASS_TO_CATEGORY, 7).update(pred_t, gt_t)
        CategoryInstanceIoU(
            CLASS_TO_CATEGORY, 7, INSTANCE_CLASSES, mean_instance_size=CITYSCAPES_MEAN_INSTANCE_SIZE
        ).update(pred_t, gt_t, inst_t)

    def reference(confusion: str = "bincount", categories: bool = False):
        conf = np.zeros((n_labels, n_labels), dtype=np.uint64)
        stats = {"classes": {}, "categories": {}}
        for p, g, i in label_scenes:
            reference_evaluate_pair(p, g, i, conf, stats, confusion, categories)
        return conf, stats

    # Same numbers first: the comparison is between two computations of one value.
    ours_value = ours().compute()["iiou"].item()
    ref_value = reference_iiou(*reference())
    raw_value = ours(inst_raw_t).compute()["iiou"].item()
    assert abs(ours_value - ref_value) < 1e-5 and abs(raw_value - ref_value) < 1e-5, (
        ours_value,
        ref_value,
        raw_value,
    )

    rows = [
        ("InstanceIoU.update (ids 1..K per image)", timed(ours, repeats)),
        (
            "InstanceIoU.update (raw Cityscapes ids, e.g. 26001)",
            timed(lambda: ours(inst_raw_t), repeats),
        ),
        ("InstanceIoU + CategoryIoU + CategoryInstanceIoU updates", timed(ours_all, repeats)),
        ("reference evaluatePair x4, class level (bincount confusion)", timed(reference, repeats)),
        (
            "reference evaluatePair x4, class + category (bincount confusion)",
            timed(lambda: reference(categories=True), repeats),
        ),
        (
            "reference evaluatePair x4, class + category (np.unique confusion)",
            timed(lambda: reference("unique", True), repeats),
        ),
    ]
    base = rows[3][1]
    print(
        f"\nbatch {B} x {H}x{W}, 19 classes, {n_inst} instances; iIoU ours {ours_value:.6f} = reference {ref_value:.6f}\n"
    )
    print("| computation | ms / batch | reference class-level / this |")
    print("|---|---:|---:|")
    for name, ms in rows:
        print(f"| {name} | {ms:.1f} | {base / ms:.2f}x |")
    print(f"\nper image, reference class level: {base / B:.1f} ms; ours: {rows[0][1] / B:.1f} ms")
    print(machine_line())


if __name__ == "__main__":
    main()
