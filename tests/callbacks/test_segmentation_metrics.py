from types import SimpleNamespace

import pytest
import torch

from pixelwise.callbacks.segmentation import SegmentationMetrics


class FakeModule:
    device = torch.device("cpu")

    def __init__(self):
        self.logged = {}

    def log(self, name, value, **kw):
        self.logged[name] = value


def naive_iou(preds, targets, k, ignore=255):
    ious = {}
    for c in range(k):
        inter = union = 0
        for p, t in zip(preds, targets):
            valid = t != ignore
            inter += int(((p == c) & (t == c) & valid).sum())
            union += int((((p == c) | (t == c)) & valid).sum())
        if union:
            ious[c] = inter / union
    return ious


def test_logged_iou_matches_naive_counts_over_batches():
    g = torch.Generator().manual_seed(0)
    k = 4
    batches = []
    for _ in range(3):
        t = torch.randint(0, 3, (2, 5, 7), generator=g)  # class 3 never in the target
        t[:, 0, :2] = 255
        p = torch.randint(0, 3, (2, 5, 7), generator=g)
        batches.append((p, t))
    cb = SegmentationMetrics(k, ["a", "b", "c", "d"])
    module = FakeModule()
    trainer = SimpleNamespace(sanity_checking=False)
    cb.on_validation_epoch_start(trainer, module)
    for i, (p, t) in enumerate(batches):
        cb.on_validation_batch_end(trainer, module, {"preds": p}, {"mask": t}, i)
    cb.on_validation_epoch_end(trainer, module)
    ref = naive_iou([p for p, _ in batches], [t for _, t in batches], k)
    assert set(ref) == {0, 1, 2}
    for c, name in enumerate("abc"):
        assert module.logged[f"val/iou/{name}"] == pytest.approx(ref[c])
    # class "d" is absent from predictions and targets: not logged, not in the mean
    assert "val/iou/d" not in module.logged
    assert module.logged["val/miou"] == pytest.approx(sum(ref.values()) / 3)


def test_class_name_count_must_match():
    with pytest.raises(ValueError, match="2 class names for 3 classes"):
        SegmentationMetrics(3, ["a", "b"])
