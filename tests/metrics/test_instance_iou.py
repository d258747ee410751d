"""InstanceIoU against a per-instance loop written from the Cityscapes script, and by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torchmetrics.utilities.data import dim_zero_sum

from pixelwise.metrics.instance_iou import InstanceIoU

IGNORE = 255


def reference_iiou(preds, targets, instances, num_classes, instance_classes, avg_size=None):
    """Per-image, per-instance loop in the manner of evalPixelLevelSemanticLabeling.py.

    Each instance is assumed to lie on a single target class (as in Cityscapes ground truth).
    With avg_size None, N̄_c is the mean size of class-c instances over all images (two passes).
    """
    conf = np.zeros((num_classes + 1, num_classes + 1), dtype=np.int64)  # last = ignore / other
    found = []  # (class, size, tp)
    for pred, gt, inst in zip(preds, targets, instances):
        pred, gt, inst = np.asarray(pred), np.asarray(gt), np.asarray(inst)
        for g, p in zip(gt.ravel(), pred.ravel()):
            row = g if g < num_classes else num_classes
            col = p if 0 <= p < num_classes else num_classes
            conf[row, col] += 1
        for inst_id in np.unique(inst[inst > 0]):
            mask = inst == inst_id
            label = int(gt[mask][0])
            if label not in instance_classes:
                continue
            size = int(np.count_nonzero(mask))
            tp = int(np.count_nonzero(pred[mask] == label))
            found.append((label, size, tp))
    if avg_size is None:
        avg_size = {}
        for c in instance_classes:
            sizes = [s for lab, s, _ in found if lab == c]
            if sizes:
                avg_size[c] = sum(sizes) / len(sizes)
    tp_w = dict.fromkeys(range(num_classes), 0.0)
    fn_w = dict.fromkeys(range(num_classes), 0.0)
    for label, size, tp in found:
        weight = avg_size[label] / size
        tp_w[label] += tp * weight
        fn_w[label] += (size - tp) * weight
    scores = []
    for c in range(num_classes):
        if c not in instance_classes:
            scores.append(math.nan)
            continue
        not_ignored = [r for r in range(num_classes) if r != c]
        fp = conf[not_ignored, c].sum()
        denom = tp_w[c] + fp + fn_w[c]
        scores.append(math.nan if denom == 0 else tp_w[c] / denom)
    valid = [s for s in scores if not math.isnan(s)]
    return (sum(valid) / len(valid) if valid else math.nan), scores


def random_scene(rng, h, w, num_classes, instance_classes, max_id=1000, n_inst=6):
    """Stuff classes in blocks, an ignored strip, then rectangles of instance classes with unique ids."""
    stuff = [c for c in range(num_classes) if c not in instance_classes]
    coarse = rng.choice(stuff, size=(h // 8 + 1, w // 8 + 1))
    gt = np.kron(coarse, np.ones((8, 8), dtype=np.int64))[:h, :w]
    gt[rng.integers(0, h) :, : rng.integers(0, w // 4)] = IGNORE
    inst = np.zeros((h, w), dtype=np.int64)
    ids = rng.choice(max_id, size=n_inst, replace=False) + 1
    for inst_id in ids:
        y0, x0 = rng.integers(0, h - 2), rng.integers(0, w - 2)
        y1, x1 = y0 + rng.integers(1, h // 2), x0 + rng.integers(1, w // 2)
        gt[y0:y1, x0:x1] = rng.choice(instance_classes)
        inst[y0:y1, x0:x1] = inst_id  # later rectangles occlude earlier ones
    pred = np.where(gt == IGNORE, rng.integers(0, num_classes, (h, w)), gt)
    noise = rng.random((h, w)) < 0.3
    pred[noise] = rng.integers(0, num_classes + 1, noise.sum())  # num_classes = "other"
    return pred, gt, inst


def batch(rng, b, **kw):
    """[B, H, W] long tensors (pred, target, instances) from random scenes."""
    scenes = [random_scene(rng, **kw) for _ in range(b)]
    return tuple(torch.as_tensor(np.stack(x)) for x in zip(*scenes))


SCENE = dict(h=24, w=32, num_classes=6, instance_classes=[3, 4, 5])


class TestAgainstReference:
    @pytest.mark.parametrize("seed", range(4))
    @pytest.mark.parametrize("fixed_size", [False, True])
    def test_random_maps(self, seed, fixed_size):
        rng = np.random.default_rng(seed)
        pred, gt, inst = batch(rng, 3, **SCENE)
        avg = {3: 50.0, 4: 120.5, 5: 7.25} if fixed_size else None
        metric = InstanceIoU(6, [3, 4, 5], mean_instance_size=avg)
        metric.update(pred[:2], gt[:2], inst[:2])
        metric.update(pred[2:], gt[2:], inst[2:])
        out = metric.compute()
        ref_mean, ref_scores = reference_iiou(
            pred.numpy(), gt.numpy(), inst.numpy(), 6, [3, 4, 5], avg
        )
        np.testing.assert_allclose(out["iiou_per_class"].numpy(), ref_scores, rtol=1e-6)
        assert out["iiou"].item() == pytest.approx(ref_mean, rel=1e-6)

    @pytest.mark.parametrize("max_id", [1_000_000, 10**12])
    def test_large_ids_take_same_value(self, max_id):
        # 10^6: ids compacted through a lookup table; 10^12: distinct tuples by torch.unique
        rng = np.random.default_rng(7)
        pred, gt, inst = batch(rng, 2, max_id=max_id, **SCENE)
        metric = InstanceIoU(6, [3, 4, 5])
        metric.update(pred, gt, inst)
        _, ref_scores = reference_iiou(pred.numpy(), gt.numpy(), inst.numpy(), 6, [3, 4, 5])
        np.testing.assert_allclose(
            metric.compute()["iiou_per_class"].numpy(), ref_scores, rtol=1e-6
        )

    def test_same_id_in_two_images_is_two_instances(self):
        gt = torch.tensor([[[1, 1, 0, 0]], [[1, 0, 0, 0]]])
        inst = torch.tensor([[[9, 9, 0, 0]], [[9, 0, 0, 0]]])
        pred = torch.tensor([[[1, 0, 0, 0]], [[1, 0, 0, 0]]])
        metric = InstanceIoU(2, [1])
        metric.update(pred, gt, inst)
        # N̄ = 1.5; instance sizes 2 and 1: iTP = 1.5*(1/2 + 1) = 2.25, iFN = 1.5*(1/2) = 0.75
        assert metric.compute()["iiou_per_class"][1].item() == pytest.approx(2.25 / 3.0)


class TestHandComputed:
    # C = 3, instance classes 1 and 2; instance 3 = 2x2 block of class 1, instance 7 = two px of class 2
    TARGET = torch.tensor([[1, 1, 0, 0], [1, 1, 0, 2], [0, 0, 0, 2], [IGNORE, IGNORE, 0, 0]])
    INST = torch.tensor([[3, 3, 0, 0], [3, 3, 0, 7], [0, 0, 0, 7], [0, 0, 0, 0]])
    PRED = torch.tensor([[1, 0, 1, 0], [1, 1, 0, 2], [0, 0, 2, 0], [1, 2, 0, 0]])

    def run(self, **kw):
        metric = InstanceIoU(3, [1, 2], **kw)
        metric.update(self.PRED[None], self.TARGET[None], self.INST[None])
        return metric.compute()

    def test_given_mean_sizes(self):
        out = self.run(mean_instance_size={1: 8, 2: 1})
        # class 1: w = 8/4 = 2, tp 3 -> iTP 6, iFN 2, FP 1 (pred 1 on target 0; not on ignore)
        # class 2: w = 1/2, tp 1 -> iTP 0.5, iFN 0.5, FP 1
        expected = [math.nan, 6 / 9, 0.5 / 2]
        np.testing.assert_allclose(out["iiou_per_class"].numpy(), expected, rtol=1e-6)
        assert out["iiou"].item() == pytest.approx((6 / 9 + 0.25) / 2, rel=1e-6)

    def test_mean_sizes_from_data(self):
        out = self.run()  # N̄_1 = 4, N̄_2 = 2 -> every weight is 1
        np.testing.assert_allclose(
            out["iiou_per_class"].numpy(), [math.nan, 3 / 5, 1 / 3], rtol=1e-6
        )

    def test_logits_are_argmaxed(self):
        logits = torch.nn.functional.one_hot(self.PRED, 3).permute(2, 0, 1).float()[None]
        metric = InstanceIoU(3, [1, 2], mean_instance_size={1: 8, 2: 1})
        metric.update(logits, self.TARGET[None], self.INST[None])
        assert metric.compute()["iiou"].item() == pytest.approx((6 / 9 + 0.25) / 2, rel=1e-6)


class TestEdgeCases:
    def test_no_update_gives_nan(self):
        with pytest.warns(UserWarning, match="before the ``update``"):
            out = InstanceIoU(3, [1, 2]).compute()
        assert math.isnan(out["iiou"].item())
        assert torch.isnan(out["iiou_per_class"]).all()

    def test_instance_class_without_instances_but_with_fp_scores_zero(self):
        gt = torch.tensor([[[0, 0, 1, 1]]])
        inst = torch.tensor([[[0, 0, 4, 4]]])
        pred = torch.tensor([[[2, 0, 1, 1]]])
        metric = InstanceIoU(3, [1, 2])
        metric.update(pred, gt, inst)
        per_class = metric.compute()["iiou_per_class"]
        assert per_class[2].item() == 0.0  # no class-2 instance, one false positive
        assert per_class[1].item() == 1.0
        assert math.isnan(per_class[0].item())  # not an instance class
        assert metric.compute()["iiou"].item() == pytest.approx(0.5)

    def test_instance_class_never_seen_nor_predicted_is_nan(self):
        gt = torch.tensor([[[0, 1]]])
        metric = InstanceIoU(3, [1, 2])
        metric.update(torch.tensor([[[0, 1]]]), gt, torch.tensor([[[0, 1]]]))
        per_class = metric.compute()["iiou_per_class"]
        assert math.isnan(per_class[2].item())
        assert metric.compute()["iiou"].item() == 1.0

    def test_non_instance_class_is_nan_even_with_instance_ids(self):
        gt = torch.tensor([[[0, 0, 1]]])
        metric = InstanceIoU(2, [1])
        metric.update(torch.tensor([[[0, 0, 1]]]), gt, torch.tensor([[[5, 5, 6]]]))
        assert math.isnan(metric.compute()["iiou_per_class"][0].item())

    def test_fp_not_counted_on_ignored_target(self):
        gt = torch.tensor([[[1, IGNORE, IGNORE]]])
        metric = InstanceIoU(2, [1])
        metric.update(torch.tensor([[[1, 1, 1]]]), gt, torch.tensor([[[2, 0, 0]]]))
        assert metric.compute()["iiou"].item() == 1.0

    def test_instance_pixels_on_ignored_target_do_not_count(self):
        # instance 2 spans 4 pixels but two are ignored: N_t = 2, one of them hit
        gt = torch.tensor([[[1, 1, IGNORE, IGNORE]]])
        pred = torch.tensor([[[1, 0, 0, 0]]])
        metric = InstanceIoU(2, [1], mean_instance_size={1: 2.0})
        metric.update(pred, gt, torch.tensor([[[2, 2, 2, 2]]]))
        assert metric.compute()["iiou"].item() == pytest.approx(0.5)

    def test_prediction_outside_classes_is_a_false_negative(self):
        gt = torch.tensor([[[1, 1]]])
        metric = InstanceIoU(2, [1])
        metric.update(torch.tensor([[[1, 255]]]), gt, torch.tensor([[[1, 1]]]))
        assert metric.compute()["iiou"].item() == pytest.approx(0.5)


class TestDistributedEquivalence:
    @pytest.mark.parametrize("fixed_size", [False, True])
    def test_merged_halves_equal_one_process(self, fixed_size):
        rng = np.random.default_rng(11)
        pred, gt, inst = batch(rng, 4, **SCENE)
        avg = {3: 30.0, 4: 60.0, 5: 90.0} if fixed_size else None
        whole = InstanceIoU(6, [3, 4, 5], mean_instance_size=avg)
        whole.update(pred, gt, inst)
        # Two "ranks" with unequal shares: merge_state sums the states as DDP's reduction does.
        rank0 = InstanceIoU(6, [3, 4, 5], mean_instance_size=avg)
        rank1 = InstanceIoU(6, [3, 4, 5], mean_instance_size=avg)
        rank0.update(pred[:1], gt[:1], inst[:1])
        rank1.update(pred[1:], gt[1:], inst[1:])
        rank0.merge_state(rank1)
        a, b = whole.compute(), rank0.compute()
        torch.testing.assert_close(a["iiou_per_class"], b["iiou_per_class"], equal_nan=True)
        torch.testing.assert_close(a["iiou"], b["iiou"])

    def test_states_are_sum_reduced(self):
        metric = InstanceIoU(6, [3, 4, 5])
        assert set(metric._reductions) == {
            "tp_over_size",
            "fn_over_size",
            "instance_pixels",
            "instance_count",
            "false_positives",
        }
        assert all(fn is dim_zero_sum for fn in metric._reductions.values())

    def test_summing_states_by_hand_matches(self):
        rng = np.random.default_rng(5)
        pred, gt, inst = batch(rng, 2, **SCENE)
        parts = [InstanceIoU(6, [3, 4, 5]) for _ in range(2)]
        for i, m in enumerate(parts):
            m.update(pred[i : i + 1], gt[i : i + 1], inst[i : i + 1])
        total = InstanceIoU(6, [3, 4, 5])
        for name in total._defaults:
            setattr(total, name, getattr(parts[0], name) + getattr(parts[1], name))
        total._update_count = 1
        _, ref = reference_iiou(pred.numpy(), gt.numpy(), inst.numpy(), 6, [3, 4, 5])
        np.testing.assert_allclose(total.compute()["iiou_per_class"].numpy(), ref, rtol=1e-6)


class TestBadInput:
    def test_missing_mean_size_entry(self):
        with pytest.raises(ValueError, match=r"no entry for instance classes \[2\]"):
            InstanceIoU(3, [1, 2], mean_instance_size={1: 10.0})

    def test_non_positive_mean_size(self):
        with pytest.raises(ValueError, match=r"mean_instance_size\[1\] = 0.0"):
            InstanceIoU(3, [1], mean_instance_size={1: 0})

    def test_instance_class_out_of_range(self):
        with pytest.raises(ValueError, match=r"instance_classes \[7\]"):
            InstanceIoU(3, [1, 7])

    def test_target_value_not_a_class(self):
        metric = InstanceIoU(3, [1])
        with pytest.raises(ValueError, match="target value 9"):
            metric.update(
                torch.zeros(1, 2, 2, dtype=torch.long),
                torch.full((1, 2, 2), 9),
                torch.zeros(1, 2, 2, dtype=torch.long),
            )

    def test_shape_mismatch(self):
        metric = InstanceIoU(3, [1])
        z = torch.zeros(1, 2, 2, dtype=torch.long)
        with pytest.raises(ValueError, match=r"instances \[1, 2, 3\]"):
            metric.update(z, z, torch.zeros(1, 2, 3, dtype=torch.long))

    def test_negative_instance_id(self):
        metric = InstanceIoU(3, [1])
        z = torch.zeros(1, 2, 2, dtype=torch.long)
        with pytest.raises(ValueError, match="instance ids must be >= 0"):
            metric.update(z, z, z - 1)
