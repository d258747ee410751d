"""InstanceIoU, CategoryIoU and CategoryInstanceIoU equal cityscapesScripts' own evaluation.

The scenes are written as Cityscapes files (8-bit labelIds, 16-bit instanceIds, labelIds
predictions). The reference is ``evaluateImgLists`` of cityscapesscripts'
evalPixelLevelSemanticLabeling (which runs its ``evaluatePair`` on each file pair and its
``getInstanceIouScoreForLabel`` / ``getIouScoreForCategory`` / ``getInstanceIouScoreForCategory``),
with its own ``avgClassSize``; our side reads the same files through the ``Cityscapes`` dataset
(labelIds -> trainIds, instanceIds -> instances) and maps the predicted label ids to trainIds.

The scenes hold every case the script treats specially: ground truth of every label id
(including the ignored ones: void, parking, guard rail, polegroup, ...), crowd regions
(instanceIds value = label id < 1000: in the class confusion, not instances), instances of
classes ignored in evaluation (caravan, trailer), classes that appear only in the predictions,
and predictions of ignored label ids. Predictions never hold caravan / trailer (29, 30): a
19-class net cannot output them (no trainId), and for them the script's category iIoU counts
a caravan prediction as a vehicle hit while a trainId prediction of 255 cannot be one.
"""

from __future__ import annotations

import contextlib
import copy
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pixelwise.data.cityscapes import Cityscapes
from pixelwise.data.cityscapes_labels import (
    CATEGORY_NAMES,
    CITYSCAPES_LABELS,
    CITYSCAPES_MEAN_INSTANCE_SIZE,
    CLASS_NAMES,
    CLASS_TO_CATEGORY,
    INSTANCE_CLASSES,
    LABELID_TO_TRAINID,
)
from pixelwise.metrics import CategoryInstanceIoU, CategoryIoU, InstanceIoU

cs_eval = pytest.importorskip(
    "cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling",
    reason="cityscapesScripts is in the dev extra: make install",
)

LABEL_IDS = [lab.id for lab in CITYSCAPES_LABELS if lab.id >= 0]  # 0..33
INSTANCE_LABEL_IDS = [lab.id for lab in CITYSCAPES_LABELS if lab.has_instances]  # 24..33
STUFF_LABEL_IDS = [i for i in LABEL_IDS if i not in INSTANCE_LABEL_IDS]
PRED_LABEL_IDS = [i for i in LABEL_IDS if i not in (29, 30)]  # no trainId: see the docstring
TRAIN = 31  # never in the ground truth below: a class only the predictions hold


def cityscapes_scene(rng: np.random.Generator, h: int, w: int, n_inst: int = 8, crowd: int = 2):
    """(labelIds uint8 [H,W], instanceIds uint16 [H,W], predicted labelIds uint8 [H,W]).

    Stuff in 8x8 blocks of any non-instance label id (ignored ones included), then rectangles:
    instances (value label * 1000 + k) of person..bicycle and of caravan/trailer, and crowd
    regions (value = label id). The prediction is the ground truth with block and pixel noise
    over every label id but caravan/trailer, plus a patch of `train`, absent from the ground truth.
    """
    coarse = rng.choice(STUFF_LABEL_IDS, size=(h // 8 + 1, w // 8 + 1))
    gt = np.kron(coarse, np.ones((8, 8), dtype=np.int64))[:h, :w]
    inst = gt.copy()  # Cityscapes: a pixel that is no instance holds its label id
    gt_instance_ids = [i for i in INSTANCE_LABEL_IDS if i != TRAIN]
    for k in range(n_inst + crowd):
        label = int(rng.choice(gt_instance_ids))
        y0, x0 = int(rng.integers(0, h - 3)), int(rng.integers(0, w - 3))
        y1 = y0 + int(rng.integers(2, max(3, h // 2)))
        x1 = x0 + int(rng.integers(2, max(3, w // 2)))
        gt[y0:y1, x0:x1] = label
        inst[y0:y1, x0:x1] = label * 1000 + k if k < n_inst else label  # later ones occlude
    pred = gt.copy()
    pred[np.isin(pred, (29, 30))] = 26  # caravan / trailer predicted as car
    blocks = np.kron(rng.random((h // 8 + 1, w // 8 + 1)) < 0.15, np.ones((8, 8), bool))[:h, :w]
    pred[blocks] = rng.choice(PRED_LABEL_IDS, size=int(blocks.sum()))
    noise = rng.random((h, w)) < 0.2
    pred[noise] = rng.choice(PRED_LABEL_IDS, size=int(noise.sum()))
    y, x = int(rng.integers(0, h - 4)), int(rng.integers(0, w - 4))
    pred[y : y + 4, x : x + 4] = TRAIN
    return gt.astype(np.uint8), inst.astype(np.uint16), pred.astype(np.uint8)


def write_cityscapes_tree(root: Path, scenes, split: str = "val") -> tuple[list[str], list[str]]:
    """leftImg8bit + gtFine files of `scenes` and their predictions; (prediction files, labelIds files)."""
    preds, gts = [], []
    for k, (gt, inst, pred) in enumerate(scenes):
        stem = f"city_000000_{k:06d}"
        img_dir, gt_dir = root / "leftImg8bit" / split / "city", root / "gtFine" / split / "city"
        pred_dir = root / "results"
        for d in (img_dir, gt_dir, pred_dir):
            d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((*gt.shape, 3), np.uint8)).save(
            img_dir / f"{stem}_leftImg8bit.png"
        )
        Image.fromarray(gt).save(gt_dir / f"{stem}_gtFine_labelIds.png")
        Image.fromarray(inst).save(gt_dir / f"{stem}_gtFine_instanceIds.png")
        Image.fromarray(pred).save(pred_dir / f"{stem}_pred.png")
        preds.append(str(pred_dir / f"{stem}_pred.png"))
        gts.append(str(gt_dir / f"{stem}_gtFine_labelIds.png"))
    return preds, gts


@contextlib.contextmanager
def numpy_in1d():
    """``np.in1d`` for cityscapesScripts 2.3.0 under numpy >= 2.4 (which removed it).

    It is numpy's documented replacement, ``np.isin(a, b).ravel()``; set only while the
    script runs, only if numpy lacks it.
    """
    if hasattr(np, "in1d"):
        yield
        return
    np.in1d = lambda a, b, assume_unique=False, invert=False: np.isin(  # type: ignore[attr-defined]
        a, b, assume_unique=assume_unique, invert=invert
    ).ravel()
    try:
        yield
    finally:
        del np.in1d


def official_results(pred_files: list[str], gt_files: list[str]) -> dict:
    """cityscapesScripts' evaluateImgLists with its default arguments, quiet, writing no file."""
    args = copy.copy(cs_eval.args)
    args.quiet = True
    args.JSONOutput = False
    args.colorized = False
    args.evalInstLevelScore = True
    args.evalPixelAccuracy = False
    with numpy_in1d():
        return cs_eval.evaluateImgLists(pred_files, gt_files, args)


def our_results(root: Path, pred_files: list[str], split: str = "val") -> dict[str, torch.Tensor]:
    """The same files through the Cityscapes dataset and our three metrics, image by image."""
    metrics = {
        "iiou": InstanceIoU(19, INSTANCE_CLASSES, mean_instance_size=CITYSCAPES_MEAN_INSTANCE_SIZE),
        "cat": CategoryIoU(CLASS_TO_CATEGORY, len(CATEGORY_NAMES)),
        "cat_iiou": CategoryInstanceIoU(
            CLASS_TO_CATEGORY,
            len(CATEGORY_NAMES),
            INSTANCE_CLASSES,
            mean_instance_size=CITYSCAPES_MEAN_INSTANCE_SIZE,
        ),
    }
    dataset = Cityscapes(root, split)
    assert len(dataset) == len(pred_files)
    for item, pred_file in zip(dataset, sorted(pred_files)):
        pred_ids = np.asarray(Image.open(pred_file))
        pred = torch.as_tensor(LABELID_TO_TRAINID[pred_ids])[None]  # ignored ids -> 255
        target, instances = item["mask"][None], item["instances"][None]
        metrics["iiou"].update(pred, target, instances)
        metrics["cat"].update(pred, target)
        metrics["cat_iiou"].update(pred, target, instances)
    out: dict[str, torch.Tensor] = {}
    for metric in metrics.values():
        out.update(metric.compute())
    return out


def assert_same(ours: torch.Tensor, theirs: list[float]) -> None:
    """Equal to 1e-6 relative (our scores are float32), NaN where the script gives NaN."""
    np.testing.assert_allclose(ours.double().numpy(), np.array(theirs, float), rtol=1e-6, atol=0)


@pytest.mark.parametrize(
    "seed, size, n_images",
    [(0, (48, 64), 1), (1, (64, 96), 3), (2, (40, 56), 4)],
)
def test_equals_cityscapes_scripts(seed, size, n_images, tmp_path):
    rng = np.random.default_rng(seed)
    scenes = [cityscapes_scene(rng, *size) for _ in range(n_images)]
    # The cases the docstring promises are really in the files.
    gts = np.stack([s[0] for s in scenes])
    insts = np.stack([s[1] for s in scenes]).astype(np.int64)
    preds = np.stack([s[2] for s in scenes])
    assert np.isin(gts, [i for i in LABEL_IDS if LABELID_TO_TRAINID[i] == 255]).any()
    assert ((insts < 1000) & np.isin(gts, INSTANCE_LABEL_IDS)).any()  # crowd
    assert (TRAIN not in gts) and (TRAIN in preds)
    assert (LABELID_TO_TRAINID[preds] == 255).any()

    pred_files, gt_files = write_cityscapes_tree(tmp_path, scenes)
    ref = official_results(pred_files, gt_files)
    ours = our_results(tmp_path, pred_files)

    assert_same(ours["iiou_per_class"], [ref["classInstScores"][name] for name in CLASS_NAMES])
    assert ours["iiou"].item() == pytest.approx(ref["averageScoreInstClasses"], rel=1e-6)
    cat = [ref["categoryScores"][name] for name in CATEGORY_NAMES]
    assert_same(ours["category_iou_per_category"], cat)
    assert ours["category_miou"].item() == pytest.approx(ref["averageScoreCategories"], rel=1e-6)
    cat_inst = [ref["categoryInstScores"][name] for name in CATEGORY_NAMES]
    assert_same(ours["category_iiou_per_category"], cat_inst)
    assert ours["category_iiou"].item() == pytest.approx(
        ref["averageScoreInstCategories"], rel=1e-6
    )
    # The class only predicted scores 0 in both (false positives, nothing else), not NaN.
    assert ref["classInstScores"]["train"] == 0.0
    assert ours["iiou_per_class"][CLASS_NAMES.index("train")].item() == 0.0
    # The script's void category is NaN and ours has none: the means agree regardless.
    assert math.isnan(ref["categoryScores"]["void"])
