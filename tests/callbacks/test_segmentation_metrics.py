import math
from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch.loggers import WandbLogger

from pixelwise.callbacks.segmentation import SegmentationMetrics
from pixelwise.data.info import DatasetInfo
from pixelwise.metrics import InstanceIoU
from pixelwise.tasks.outputs import SegmentationOutput


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
        cb.on_validation_batch_end(trainer, module, SegmentationOutput(preds=p), {"mask": t}, i)
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


# ---- iIoU, category IoU, facts from the data, W&B table ----------------------------------


K = 5
NAMES = ["background", "car", "person", "road", "traffic light"]
INSTANCE_CLASSES = [1, 2]
# flat: background, road; vehicle: car; human: person; object: traffic light (never in targets)
CATEGORY_NAMES = ["flat", "human", "vehicle", "object"]
CLASS_TO_CATEGORY = [0, 2, 1, 0, 3]
FACTS = {
    "instance_classes": INSTANCE_CLASSES,
    "class_to_category": CLASS_TO_CATEGORY,
    "category_names": CATEGORY_NAMES,
}


def make_batches(seed=0, n=3, b=2, h=12, w=16):
    """Batches of (preds, target, instances): rectangles of cars/persons (instance ids) on background/road."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        target = torch.where(torch.rand(b, h, w, generator=g) < 0.5, 0, 3)
        inst = torch.zeros(b, h, w, dtype=torch.long)
        for k in range(b):
            for j in range(1, int(torch.randint(2, 5, (1,), generator=g)) + 1):
                y = int(torch.randint(0, h - 3, (1,), generator=g))
                x = int(torch.randint(0, w - 3, (1,), generator=g))
                dh, dw = (int(v) for v in torch.randint(2, 6, (2,), generator=g))
                cls = int(torch.randint(1, 3, (1,), generator=g))
                target[k, y : y + dh, x : x + dw] = cls
                inst[k, y : y + dh, x : x + dw] = j
        target[torch.rand(b, h, w, generator=g) < 0.05] = 255
        inst[target == 255] = 0
        preds = target.clone()
        noisy = torch.rand(b, h, w, generator=g) < 0.4
        preds[noisy] = torch.randint(0, K - 1, (int(noisy.sum()),), generator=g)
        preds[preds == 255] = 0
        out.append((preds, target, inst))
    return out


def naive_iiou(batches, classes, mean_size=None, to_cat=None, evaluated=None):
    """iIoU per class (to_cat None) or per category, by loops over instances; NaN where undefined."""
    cat = (lambda c: c) if to_cat is None else (lambda c: to_cat[c] if 0 <= c < len(to_cat) else -1)
    groups = []  # (class, size, hits)
    fp = {}
    for preds, target, inst in batches:
        for p, t, i in zip(preds, target, inst):
            for key in {(int(a), int(c)) for a, c in zip(i.flatten(), t.flatten()) if a > 0}:
                a, c = key
                if c not in classes:
                    continue
                sel = (i == a) & (t == c)
                hits = sum(cat(int(v)) == cat(c) for v in p[sel])
                groups.append((c, int(sel.sum()), hits))
            for pv, tv in zip(p.flatten().tolist(), t.flatten().tolist()):
                if tv != 255 and cat(pv) != cat(tv):
                    fp[cat(pv)] = fp.get(cat(pv), 0) + 1
    sizes = {}
    for c, n, _ in groups:
        sizes.setdefault(c, []).append(n)
    mean = mean_size or {c: sum(v) / len(v) for c, v in sizes.items()}
    units = sorted({cat(c) for c in classes}) if evaluated is None else evaluated
    out = {}
    for u in units:
        itp = sum(mean[c] / n * hits for c, n, hits in groups if cat(c) == u)
        ifn = sum(mean[c] / n * (n - hits) for c, n, hits in groups if cat(c) == u)
        denom = itp + ifn + fp.get(u, 0)
        out[u] = itp / denom if denom else math.nan
    return out


def naive_category_iou(batches, to_cat, n_cat):
    out = {}
    for k in range(n_cat):
        inter = union = 0
        for preds, target, _ in batches:
            valid = target != 255
            tc = torch.tensor(to_cat)[target.clamp(max=K - 1)]
            pc = torch.tensor(to_cat)[preds]
            inter += int(((pc == k) & (tc == k) & valid).sum())
            union += int((((pc == k) | (tc == k)) & valid).sum())
        out[k] = inter / union if union else math.nan
    return out


class FakeWandb(WandbLogger):
    """A WandbLogger that starts nothing and records log_table calls."""

    def __init__(self):
        self.tables = []

    def log_table(self, key, columns=None, data=None, dataframe=None, step=None):
        self.tables.append({"key": key, "columns": columns, "data": data, "step": step})


def fake_trainer(facts=None, loggers=()):
    dm = SimpleNamespace(info=DatasetInfo(**(facts or {})))
    return SimpleNamespace(
        sanity_checking=False,
        datamodule=dm,
        loggers=list(loggers),
        global_step=7,
        is_global_zero=True,
        current_epoch=0,
    )


def run_stage(cb, trainer, batches, stage="val"):
    """Run a validation or test epoch of the callback over batches; return what it logged."""
    module = FakeModule()
    hook = {"val": "validation", "test": "test"}[stage]
    getattr(cb, f"on_{hook}_epoch_start")(trainer, module)
    for i, (p, t, inst) in enumerate(batches):
        getattr(cb, f"on_{hook}_batch_end")(
            trainer, module, SegmentationOutput(preds=p), {"mask": t, "instances": inst}, i
        )
    getattr(cb, f"on_{hook}_epoch_end")(trainer, module)
    return module.logged


class TestInstanceAndCategoryMetrics:
    def test_iiou_matches_naive_loop_and_instance_iou(self):
        batches = make_batches()
        logged = run_stage(SegmentationMetrics(K, NAMES), fake_trainer(FACTS), batches, "test")
        ref = naive_iiou(batches, INSTANCE_CLASSES)
        assert logged["test/iiou/car"] == pytest.approx(ref[1], rel=1e-6)
        assert logged["test/iiou/person"] == pytest.approx(ref[2], rel=1e-6)
        assert logged["test/iiou"] == pytest.approx((ref[1] + ref[2]) / 2, rel=1e-6)
        direct = InstanceIoU(K, INSTANCE_CLASSES)
        for p, t, i in batches:
            direct.update(p, t, i)
        assert logged["test/iiou"] == pytest.approx(float(direct.compute()["iiou"]), rel=1e-6)
        # non-instance classes have no iIoU key; spaces become underscores in keys
        assert not any(k.startswith("test/iiou/background") for k in logged)

    def test_category_miou_and_category_iiou_match_naive(self):
        batches = make_batches(seed=1)
        logged = run_stage(SegmentationMetrics(K, NAMES), fake_trainer(FACTS), batches)
        ref = naive_category_iou(batches, CLASS_TO_CATEGORY, len(CATEGORY_NAMES))
        present = [v for v in ref.values() if not math.isnan(v)]
        assert logged["val/category_miou"] == pytest.approx(sum(present) / len(present), rel=1e-6)
        for k, name in enumerate(CATEGORY_NAMES):
            if math.isnan(ref[k]):
                assert f"val/category_iou/{name}" not in logged
            else:
                assert logged[f"val/category_iou/{name}"] == pytest.approx(ref[k], rel=1e-6)
        # human (1) and vehicle (2) hold only instance classes: the evaluated categories
        iref = naive_iiou(batches, INSTANCE_CLASSES, to_cat=CLASS_TO_CATEGORY, evaluated=[1, 2])
        assert logged["val/category_iiou/human"] == pytest.approx(iref[1], rel=1e-6)
        assert logged["val/category_iiou/vehicle"] == pytest.approx(iref[2], rel=1e-6)
        assert logged["val/category_iiou"] == pytest.approx((iref[1] + iref[2]) / 2, rel=1e-6)
        assert "val/category_iiou/flat" not in logged

    def test_without_facts_only_iou_is_logged(self):
        logged = run_stage(SegmentationMetrics(K, NAMES), fake_trainer(), make_batches())
        assert "val/miou" in logged
        assert not [k for k in logged if "iiou" in k or "category" in k]

    def test_constructor_arguments_override_the_data(self):
        batches = make_batches(seed=2)
        cb = SegmentationMetrics(K, NAMES, instance_classes=[1], class_to_category=[])
        logged = run_stage(cb, fake_trainer(FACTS), batches)
        ref = naive_iiou(batches, [1])
        assert logged["val/iiou"] == pytest.approx(ref[1], rel=1e-6)
        assert "val/iiou/person" not in logged
        assert not [k for k in logged if "category" in k]

    def test_mean_instance_size_table_from_data_and_observed_override(self):
        batches = make_batches(seed=3)
        table = {1: 7.0, 2: 30.0}
        facts = {**FACTS, "mean_instance_size": table}
        logged = run_stage(SegmentationMetrics(K, NAMES), fake_trainer(facts), batches)
        ref = naive_iiou(batches, INSTANCE_CLASSES, mean_size=table)
        assert logged["val/iiou/car"] == pytest.approx(ref[1], rel=1e-6)
        assert logged["val/iiou/person"] == pytest.approx(ref[2], rel=1e-6)
        observed = SegmentationMetrics(K, NAMES, mean_instance_size="observed")
        logged = run_stage(observed, fake_trainer(facts), batches)
        ref_obs = naive_iiou(batches, INSTANCE_CLASSES)
        assert logged["val/iiou/car"] == pytest.approx(ref_obs[1], rel=1e-6)
        assert ref_obs[1] != pytest.approx(ref[1], rel=1e-3)  # the table really mattered

    def test_no_ground_truth_instance_means_no_iiou(self):
        batches = [(p, t, torch.zeros_like(i)) for p, t, i in make_batches(seed=4)]
        logged = run_stage(SegmentationMetrics(K, NAMES), fake_trainer(FACTS), batches)
        assert "val/miou" in logged and "val/category_miou" in logged
        assert not [k for k in logged if "iiou" in k]

    def test_batch_without_instances_is_an_error(self):
        cb = SegmentationMetrics(K, NAMES)
        trainer = fake_trainer(FACTS)
        cb.on_validation_epoch_start(trainer, FakeModule())
        p, t, _ = make_batches(n=1)[0]
        with pytest.raises(ValueError, match="batch has no 'instances'"):
            cb.on_validation_batch_end(
                trainer, FakeModule(), SegmentationOutput(preds=p), {"mask": t}, 0
            )

    def test_bad_facts_name_the_key(self):
        cb = SegmentationMetrics(K, NAMES)
        with pytest.raises(
            ValueError, match="class_to_category .* has 3 entries; expected one per class"
        ):
            cb.on_validation_epoch_start(
                fake_trainer({"class_to_category": [0, 1, 0]}), FakeModule()
            )
        with pytest.raises(
            ValueError, match=r"instance_classes .*\[7\] are not classes in \[0, 5\)"
        ):
            cb.on_validation_epoch_start(fake_trainer({"instance_classes": [1, 7]}), FakeModule())
        with pytest.raises(ValueError, match="uses category 3 but category_names has 2 names"):
            cb.on_validation_epoch_start(
                fake_trainer(
                    {"class_to_category": CLASS_TO_CATEGORY, "category_names": ["a", "b"]}
                ),
                FakeModule(),
            )
        with pytest.raises(ValueError, match="mean_instance_size='median'"):
            SegmentationMetrics(K, NAMES, mean_instance_size="median")


class TestClassTable:
    def test_rows_hold_iou_iiou_and_pixel_frequency(self):
        batches = make_batches(seed=5)
        wandb = FakeWandb()
        cb = SegmentationMetrics(K, NAMES)
        logged = run_stage(cb, fake_trainer(FACTS, [wandb]), batches, "test")
        (call,) = wandb.tables
        assert call["key"] == "test/per_class" and call["step"] == 7
        assert call["columns"] == ["class", "category", "iou", "iiou", "pixel_frequency"]
        rows = {row[0]: row for row in call["data"]}
        targets = torch.cat([t.flatten() for _, t, _ in batches])
        targets = targets[targets != 255]
        iou = naive_iou([p for p, _, _ in batches], [t for _, t, _ in batches], K)
        iiou = naive_iiou(batches, INSTANCE_CLASSES)
        for c, name in enumerate(NAMES):
            _, category, row_iou, row_iiou, freq = rows[name]
            assert category == CATEGORY_NAMES[CLASS_TO_CATEGORY[c]]
            assert freq == pytest.approx(float((targets == c).sum()) / targets.numel())
            assert row_iou == (pytest.approx(iou[c]) if c in iou else None)
            assert row_iiou == (pytest.approx(iiou[c], rel=1e-6) if c in iiou else None)
        assert rows["car"][2] == pytest.approx(logged["test/iou/car"])

    def test_table_every_n_validations_and_only_to_wandb(self):
        wandb = FakeWandb()
        cb = SegmentationMetrics(K, NAMES, table_every_n_epochs=2)
        trainer = fake_trainer(FACTS, [FakeModule(), wandb])
        for _ in range(5):
            run_stage(cb, trainer, make_batches(n=1))
        assert len(wandb.tables) == 3  # validations 1, 3, 5
        assert len(cb.tables["val"]) == K

    def test_no_category_column_without_categories(self):
        wandb = FakeWandb()
        run_stage(
            SegmentationMetrics(K, NAMES), fake_trainer({}, [wandb]), make_batches(n=1), "test"
        )
        assert wandb.tables[0]["columns"] == ["class", "iou", "iiou", "pixel_frequency"]
        assert all(len(row) == 4 and row[2] is None for row in wandb.tables[0]["data"])
