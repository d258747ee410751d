"""Random panoptic ground truth / predictions with void, crowd and tiny segments, and the official files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pixelwise.formats.panoptic import (
    categories_json,
    segments_info,
    write_panoptic_json,
    write_panoptic_png,
)

NUM_CLASSES = 6
THINGS = (3, 4, 5)
CATEGORY_IDS = tuple(range(1, NUM_CLASSES + 1))
NAMES = tuple(f"class{c}" for c in range(NUM_CLASSES))


def random_pair(rng: np.random.Generator, h: int = 48, w: int = 64):
    """(gt map, gt segments, pred map, pred segments): ids int64 [H,W], segments [N,3] (id, class, crowd)."""
    # Ground truth: blocky stuff, rectangles of things, some crowd, some void.
    stuff = rng.integers(0, 3, (h // 8, w // 8)).repeat(8, 0).repeat(8, 1)
    cls = stuff.copy()
    inst = np.zeros((h, w), dtype=np.int64)
    for n in range(1, rng.integers(3, 9)):
        y, x = rng.integers(0, h - 4), rng.integers(0, w - 4)
        hh, ww = rng.integers(1, 14), rng.integers(1, 14)  # tiny ones too
        cls[y : y + hh, x : x + ww] = rng.choice(THINGS)
        inst[y : y + hh, x : x + ww] = n
    crowd = np.zeros((h, w), dtype=bool)
    if rng.random() < 0.7:
        y, x = rng.integers(0, h - 6), rng.integers(0, w - 6)
        crowd[y : y + 6, x : x + 8] = True
        cls[crowd] = rng.choice(THINGS)
        inst[crowd] = 0
    void = np.zeros((h, w), dtype=bool)
    y, x = rng.integers(0, h - 8), rng.integers(0, w - 8)
    void[y : y + rng.integers(2, 9), x : x + rng.integers(2, 12)] = True
    void |= rng.random((h, w)) < 0.02
    gt = np.where(cls < 3, cls + 1, 0)
    thing_pix = (cls >= 3) & (inst > 0)
    gt[thing_pix] = (cls[thing_pix] + 1) * 1000 + inst[thing_pix]
    gt[(cls >= 3) & (inst == 0)] = cls[(cls >= 3) & (inst == 0)] + 1  # crowd: the category id
    gt[void] = 0
    gt_seg = table(
        gt,
        lambda i: (i // 1000 - 1) if i >= 1000 else i - 1,
        lambda i: int(i < 1000 and i - 1 >= 3),
    )
    # Prediction: the ground truth shifted, with noise blocks, relabelled ids, some void.
    pred_cls = np.roll(np.where(void, cls, cls), rng.integers(-2, 3), axis=int(rng.integers(0, 2)))
    pred_inst = np.roll(inst, rng.integers(-2, 3), axis=1)
    pred_inst = np.where(pred_cls >= 3, pred_inst, 0)
    for _ in range(rng.integers(0, 5)):
        y, x = rng.integers(0, h - 4), rng.integers(0, w - 4)
        hh, ww = rng.integers(1, 12), rng.integers(1, 12)
        c = rng.integers(0, NUM_CLASSES)
        pred_cls[y : y + hh, x : x + ww] = c
        pred_inst[y : y + hh, x : x + ww] = 50 + _ if c >= 3 else 0
    noise = rng.random((h, w)) < 0.03
    pred_cls[noise] = rng.integers(0, NUM_CLASSES, noise.sum())
    pred_inst[noise] = 0
    offset = int(rng.integers(1, 500))
    pred = (pred_cls + 1) * 1000 + np.where(pred_cls >= 3, pred_inst + offset, 0)
    pred[rng.random((h, w)) < 0.02] = 0  # unlabelled prediction pixels
    pred_seg = table(pred, lambda i: i // 1000 - 1, lambda i: 0)
    return gt, gt_seg, pred, pred_seg


def table(pan: np.ndarray, cls_of, crowd_of) -> np.ndarray:
    ids = [int(i) for i in np.unique(pan) if i != 0]
    return np.array([(i, cls_of(i), crowd_of(i)) for i in ids], dtype=np.int64).reshape(-1, 3)


def write_official(root: Path, pairs) -> tuple[Path, Path, Path, Path]:
    """Write ground truth and predictions as Cityscapes panoptic JSON + PNG folders; returns their paths."""
    gt_dir, pred_dir = root / "gt", root / "pred"
    gt_anns, pred_anns, images = [], [], []
    for n, (gt, gt_seg, pred, pred_seg) in enumerate(pairs):
        image_id = f"city_000000_{n:06d}"
        name = f"{image_id}_panoptic.png"
        write_panoptic_png(gt_dir / name, gt)
        write_panoptic_png(pred_dir / name, pred)
        images.append(
            {
                "id": image_id,
                "file_name": f"{image_id}_leftImg8bit.png",
                "height": gt.shape[0],
                "width": gt.shape[1],
            }
        )
        gt_anns.append(
            {
                "image_id": image_id,
                "file_name": name,
                "segments_info": segments_info(gt, gt_seg, CATEGORY_IDS),
            }
        )
        pred_anns.append(
            {
                "image_id": image_id,
                "file_name": name,
                "segments_info": segments_info(pred, pred_seg, CATEGORY_IDS),
            }
        )
    cats = categories_json(NAMES, CATEGORY_IDS, THINGS)
    gt_json = write_panoptic_json(root / "gt.json", gt_anns, cats, images)
    pred_json = write_panoptic_json(root / "pred.json", pred_anns, cats, images)
    return gt_json, gt_dir, pred_json, pred_dir
