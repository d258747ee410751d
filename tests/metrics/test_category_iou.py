"""CategoryIoU and CategoryInstanceIoU against loops written from the Cityscapes script, and by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pixelwise.metrics.category_iou import CategoryInstanceIoU, CategoryIoU

IGNORE = 255
# 6 classes in 3 categories: 2 = {4, 5} holds only instance classes (like "vehicle") and is
# evaluated by the category iIoU; 1 = {2, 3} mixes stuff and an instance class, so it is not.
CLASS_TO_CAT = [0, 0, 1, 1, 2, 2]
INSTANCE_CLASSES = [3, 4, 5]


def confusion(preds, targets, num_classes):
    """[C+1, C+1] pixel counts; index C = ignored target / prediction outside the classes."""
    conf = np.zeros((num_classes + 1, num_classes + 1), dtype=np.int64)
    for pred, gt in zip(preds, targets):
        for g, p in zip(np.asarray(gt).ravel(), np.asarray(pred).ravel()):
            conf[
                g if g < num_classes else num_classes, p if 0 <= p < num_classes else num_classes
            ] += 1
    return conf


def reference_category_iou(preds, targets, class_to_cat, num_cats):
    """getIouScoreForCategory of the Cityscapes script, category by category."""
    c = len(class_to_cat)
    conf = confusion(preds, targets, c)
    scores = []
    for k in range(num_cats):
        ids = [i for i in range(c) if class_to_cat[i] == k]
        if not ids:
            scores.append(math.nan)
            continue
        tp = conf[np.ix_(ids, ids)].sum()
        fn = conf[ids, :].sum() - tp
        others = [i for i in range(c) if class_to_cat[i] != k]
        fp = conf[np.ix_(others, ids)].sum()
        denom = tp + fp + fn
        scores.append(math.nan if denom == 0 else tp / denom)
    return scores


def reference_category_iiou(
    preds, targets, instances, class_to_cat, num_cats, inst_classes, avg=None
):
    """getInstanceIouScoreForCategory + the instance loop of evaluatePair."""
    c = len(class_to_cat)
    conf = confusion(preds, targets, c)
    found = []  # (class, size, category tp)
    for pred, gt, inst in zip(preds, targets, instances):
        pred, gt, inst = np.asarray(pred), np.asarray(gt), np.asarray(inst)
        for inst_id in np.unique(inst[inst > 0]):
            mask = inst == inst_id
            label = int(gt[mask][0])
            if label not in inst_classes:
                continue
            cat_ids = [i for i in range(c) if class_to_cat[i] == class_to_cat[label]]
            cat_tp = int(np.count_nonzero(mask & np.isin(pred, cat_ids)))
            found.append((label, int(mask.sum()), cat_tp))
    if avg is None:
        avg = {}
        for cls in inst_classes:
            sizes = [s for lab, s, _ in found if lab == cls]
            if sizes:
                avg[cls] = sum(sizes) / len(sizes)
    scores = []
    for k in range(num_cats):
        ids = [i for i in range(c) if class_to_cat[i] == k]
        if not ids or any(i not in inst_classes for i in ids):
            scores.append(math.nan)
            continue
        tp = sum(t * avg[lab] / s for lab, s, t in found if class_to_cat[lab] == k)
        fn = sum((s - t) * avg[lab] / s for lab, s, t in found if class_to_cat[lab] == k)
        others = [i for i in range(c) if class_to_cat[i] != k]
        fp = conf[np.ix_(others, ids)].sum()
        denom = tp + fp + fn
        scores.append(math.nan if denom == 0 else tp / denom)
    return scores


def random_batch(rng, b=3, h=20, w=28):
    """Consistent (pred, target, instances) [B, H, W]: stuff blocks, ignore strip, instance rectangles."""
    out = []
    for _ in range(b):
        gt = np.kron(rng.integers(0, 3, (h // 4, w // 4)), np.ones((4, 4), dtype=np.int64))
        gt[: rng.integers(0, h), : rng.integers(0, 5)] = IGNORE
        inst = np.zeros_like(gt)
        for inst_id in rng.choice(np.arange(1, 500), 5, replace=False):
            y0, x0 = rng.integers(0, h - 2), rng.integers(0, w - 2)
            y1, x1 = y0 + rng.integers(1, 8), x0 + rng.integers(1, 10)
            gt[y0:y1, x0:x1] = rng.choice(INSTANCE_CLASSES)
            inst[y0:y1, x0:x1] = inst_id
        pred = np.where(gt == IGNORE, 0, gt)
        noise = rng.random(gt.shape) < 0.4
        pred[noise] = rng.integers(0, 7, noise.sum())  # 6 = outside the classes
        out.append((pred, gt, inst))
    return tuple(torch.as_tensor(np.stack(x)) for x in zip(*out))


class TestCategoryIoU:
    @pytest.mark.parametrize("seed", range(3))
    def test_random_maps_against_reference(self, seed):
        pred, gt, _ = random_batch(np.random.default_rng(seed))
        metric = CategoryIoU(CLASS_TO_CAT, 3)
        metric.update(pred[:1], gt[:1])
        metric.update(pred[1:], gt[1:])
        out = metric.compute()
        ref = reference_category_iou(pred.numpy(), gt.numpy(), CLASS_TO_CAT, 3)
        np.testing.assert_allclose(out["category_iou_per_category"].numpy(), ref, rtol=1e-6)
        assert out["category_miou"].item() == pytest.approx(np.nanmean(ref), rel=1e-6)

    def test_hand_computed(self):
        # categories: {0,1} -> 0, {2} -> 1
        gt = torch.tensor([[[0, 1, 2, 2, IGNORE]]])
        pred = torch.tensor([[[1, 2, 2, 0, 2]]])
        metric = CategoryIoU([0, 0, 1], 2)
        metric.update(pred, gt)
        # cat 0: TP 1 (0->1 same category), FN 1 (1->2), FP 1 (2->0) -> 1/3
        # cat 1: TP 1, FN 1, FP 1 (1->2); the prediction on the ignored pixel is not FP -> 1/3
        out = metric.compute()
        np.testing.assert_allclose(out["category_iou_per_category"].numpy(), [1 / 3, 1 / 3])

    def test_empty_category_is_nan(self):
        metric = CategoryIoU([0, 0], 2)
        metric.update(torch.tensor([[[0, 1]]]), torch.tensor([[[1, 1]]]))
        out = metric.compute()
        assert out["category_iou_per_category"][0].item() == 1.0
        assert math.isnan(out["category_iou_per_category"][1].item())
        assert out["category_miou"].item() == 1.0

    def test_merged_states_equal_one_process(self):
        pred, gt, _ = random_batch(np.random.default_rng(3), b=4)
        whole, a, b = (CategoryIoU(CLASS_TO_CAT, 3) for _ in range(3))
        whole.update(pred, gt)
        a.update(pred[:3], gt[:3])
        b.update(pred[3:], gt[3:])
        a.merge_state(b)
        torch.testing.assert_close(whole.compute(), a.compute(), equal_nan=True)

    def test_bad_table(self):
        with pytest.raises(ValueError, match=r"class_to_category\[1\] = 5"):
            CategoryIoU([0, 5], 2)

    def test_target_outside_classes(self):
        metric = CategoryIoU([0, 1], 2)
        with pytest.raises(ValueError, match="target value 2"):
            metric.update(torch.tensor([[[0]]]), torch.tensor([[[2]]]))


class TestCategoryInstanceIoU:
    @pytest.mark.parametrize("seed", range(3))
    @pytest.mark.parametrize("fixed", [False, True])
    def test_random_maps_against_reference(self, seed, fixed):
        pred, gt, inst = random_batch(np.random.default_rng(seed + 10))
        avg = {3: 10.0, 4: 25.0, 5: 4.0} if fixed else None
        metric = CategoryInstanceIoU(CLASS_TO_CAT, 3, INSTANCE_CLASSES, mean_instance_size=avg)
        metric.update(pred[:2], gt[:2], inst[:2])
        metric.update(pred[2:], gt[2:], inst[2:])
        out = metric.compute()
        ref = reference_category_iiou(
            pred.numpy(), gt.numpy(), inst.numpy(), CLASS_TO_CAT, 3, INSTANCE_CLASSES, avg
        )
        np.testing.assert_allclose(out["category_iiou_per_category"].numpy(), ref, rtol=1e-6)
        assert math.isnan(ref[0]) and math.isnan(ref[1]) and not math.isnan(ref[2])
        assert out["category_iiou"].item() == pytest.approx(ref[2], rel=1e-6)

    def test_hand_computed(self):
        # classes 0 (stuff, cat 0), 1 and 2 (instances, cat 1)
        gt = torch.tensor([[[1, 1, 2, 2, 2, 2, 0, 0]]])
        inst = torch.tensor([[[4, 4, 6, 6, 6, 6, 0, 0]]])
        pred = torch.tensor([[[2, 0, 1, 2, 0, 0, 1, 0]]])
        metric = CategoryInstanceIoU([0, 1, 1], 2, [1, 2], mean_instance_size={1: 4.0, 2: 2.0})
        metric.update(pred, gt, inst)
        # inst 4 (class 1, w = 2): category hit 1 of 2 -> iTP 2, iFN 2
        # inst 6 (class 2, w = 0.5): category hits 2 of 4 -> iTP 1, iFN 1
        # FP: pixel 6 predicted 1 (category 1) on stuff -> 1
        out = metric.compute()["category_iiou_per_category"]
        assert math.isnan(out[0].item())
        assert out[1].item() == pytest.approx(3 / (3 + 3 + 1))

    def test_merged_states_equal_one_process(self):
        pred, gt, inst = random_batch(np.random.default_rng(4), b=4)
        whole, a, b = (CategoryInstanceIoU(CLASS_TO_CAT, 3, INSTANCE_CLASSES) for _ in range(3))
        whole.update(pred, gt, inst)
        a.update(pred[:1], gt[:1], inst[:1])
        b.update(pred[1:], gt[1:], inst[1:])
        a.merge_state(b)
        torch.testing.assert_close(whole.compute(), a.compute(), equal_nan=True)

    def test_no_instances_but_fp_scores_zero(self):
        metric = CategoryInstanceIoU([0, 1], 2, [1])
        metric.update(
            torch.tensor([[[1, 0]]]),
            torch.tensor([[[0, 0]]]),
            torch.zeros(1, 1, 2, dtype=torch.long),
        )
        out = metric.compute()["category_iiou_per_category"]
        assert out[1].item() == 0.0 and math.isnan(out[0].item())

    def test_missing_mean_size(self):
        with pytest.raises(ValueError, match=r"no entry for instance classes \[5\]"):
            CategoryInstanceIoU(CLASS_TO_CAT, 3, INSTANCE_CLASSES, mean_instance_size={3: 1, 4: 1})
