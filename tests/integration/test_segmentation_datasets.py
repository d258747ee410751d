"""train.py / evaluate.py on tiny Cityscapes and VOC trees in their real formats: metrics.json and written predictions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchmetrics.classification import MulticlassJaccardIndex

from pixelwise.data.cityscapes import Cityscapes
from pixelwise.data.cityscapes_labels import (
    CITYSCAPES_MEAN_INSTANCE_SIZE,
    CLASS_TO_CATEGORY,
    INSTANCE_CLASSES,
    LABELID_TO_TRAINID,
    PALETTE,
    TRAINID_TO_LABELID,
)
from pixelwise.data.voc import VOC_COLORMAP, VOCSegmentation
from pixelwise.metrics import CategoryInstanceIoU, CategoryIoU, InstanceIoU
from tests.integration.conftest import read_metrics, run_script
from tests.integration.dataset_trees import write_cityscapes, write_voc

TINY = [
    "task=segmentation",
    "data.batch_size=2",
    "data.eval_batch_size=2",
    "data.num_workers=0",
    "data.train.transform=null",
    "model.base_channels=8",
    "model.depth=2",
    # 20 epochs of 2 steps (seconds): enough to predict several classes, so the value checks
    # below compare non-trivial numbers.
    "trainer.max_epochs=20",
    "trainer.check_val_every_n_epoch=20",
    "task.optimizer.lr=0.01",
    "logger=csv",
]
# trainIds of the tiny frames and their Cityscapes labelIds (official table, by hand)
LABEL_IDS_OF = {0: 7, 1: 8, 2: 11, 10: 23, 11: 24, 12: 25, 13: 26}


@pytest.fixture(scope="module")
def cityscapes_run(tmp_path_factory):
    """Train on 4 frames, evaluate on the 3 val frames with save_predictions=true."""
    tmp = tmp_path_factory.mktemp("cityscapes")
    root = tmp / "cityscapes"
    write_cityscapes(root, {"train": 4, "val": 3})
    args = [*TINY, "data=cityscapes", f"data.root={root}"]
    run_script("train.py", [*args, "test=false", f"hydra.run.dir={tmp / 'train'}"], tmp)
    ckpt = tmp / "train" / "checkpoints" / "last.ckpt"
    out = tmp / "eval"
    run_script(
        "evaluate.py",
        [*args, f"ckpt_path={ckpt}", "save_predictions=true", f"hydra.run.dir={out}"],
        tmp,
    )
    return root, out, ckpt, args, tmp


def cityscapes_predictions(root: Path, out: Path) -> tuple[list[torch.Tensor], list[dict]]:
    """The written labelIds mapped back to trainIds, and the ground-truth items, per val image."""
    data = Cityscapes(root, "val")
    preds, items = [], []
    for i in range(len(data)):
        item = data[i]
        with Image.open(out / "predictions" / Path(item["path"]).name) as im:
            assert im.mode == "L" and im.size == (64, 32)
            label_ids = np.asarray(im)
        preds.append(torch.from_numpy(LABELID_TO_TRAINID[label_ids]))
        items.append(item)
    return preds, items


class TestCityscapes:
    def test_metrics_json_has_every_number(self, cityscapes_run):
        _, out, *_ = cityscapes_run
        metrics = read_metrics(out)
        for key in ("test/miou", "test/iiou", "test/category_miou", "test/category_iiou"):
            # > 0: the net learned something, so the value checks are not 0 == 0
            assert 0.0 < metrics[key] < 1.0, key
        assert "test/iou/road" in metrics and "test/category_iou/flat" in metrics
        assert "test/iiou/car" in metrics and "test/category_iiou/vehicle" in metrics
        assert "test/iiou/road" not in metrics  # road has no instances

    def test_predictions_are_label_ids_named_as_the_official_tools_expect(self, cityscapes_run):
        root, out, *_ = cityscapes_run
        names = sorted(p.name for p in (out / "predictions").iterdir())
        assert names == [f"tinycity_000002_{i:06d}_leftImg8bit.png" for i in range(3)]
        for name in names:
            with Image.open(out / "predictions" / name) as im:
                values = set(np.unique(np.asarray(im)).tolist())
            # only label ids that are some trainId's id (7 road, 26 car, ...), never trainIds
            assert values <= set(TRAINID_TO_LABELID[:19].tolist())
        preds, _ = cityscapes_predictions(root, out)
        for name, pred in zip(names, preds):
            with Image.open(out / "predictions_color" / name) as im:
                np.testing.assert_array_equal(np.asarray(im.convert("RGB")), PALETTE[pred.numpy()])

    def test_logged_metrics_equal_metrics_of_the_written_predictions(self, cityscapes_run):
        """The PNGs decode to the evaluated predictions: recomputing every number from them agrees."""
        root, out, *_ = cityscapes_run
        preds, items = cityscapes_predictions(root, out)
        pred = torch.stack(preds).long()
        target = torch.stack([it["mask"] for it in items])
        inst = torch.stack([it["instances"] for it in items])
        iou = MulticlassJaccardIndex(19, average="macro", ignore_index=255)(pred, target)
        iiou = InstanceIoU(19, INSTANCE_CLASSES, mean_instance_size=CITYSCAPES_MEAN_INSTANCE_SIZE)
        cat = CategoryIoU(CLASS_TO_CATEGORY, 7)
        cat_iiou = CategoryInstanceIoU(
            CLASS_TO_CATEGORY, 7, INSTANCE_CLASSES, mean_instance_size=CITYSCAPES_MEAN_INSTANCE_SIZE
        )
        iiou.update(pred, target, inst)
        cat.update(pred, target)
        cat_iiou.update(pred, target, inst)
        metrics = read_metrics(out)
        assert metrics["test/miou"] == pytest.approx(float(iou), abs=1e-6)
        assert metrics["test/iiou"] == pytest.approx(float(iiou.compute()["iiou"]), abs=1e-6)
        assert metrics["test/category_miou"] == pytest.approx(
            float(cat.compute()["category_miou"]), abs=1e-6
        )
        assert metrics["test/category_iiou"] == pytest.approx(
            float(cat_iiou.compute()["category_iiou"]), abs=1e-6
        )

    @pytest.mark.slow
    def test_ddp_evaluation_equals_single_process(self, cityscapes_run):
        """2 CPU ranks, 3 images: same numbers, each image written once, same pixels."""
        root, out, ckpt, args, tmp = cityscapes_run
        ddp = tmp / "eval_ddp"
        run_script(
            "evaluate.py",
            [
                *args,
                f"ckpt_path={ckpt}",
                "save_predictions=true",
                "trainer=ddp_cpu",
                f"hydra.run.dir={ddp}",
            ],
            tmp,
        )
        single, multi = read_metrics(out), read_metrics(ddp)
        for key in ("test/miou", "test/iiou", "test/category_miou", "test/category_iiou"):
            assert multi[key] == pytest.approx(single[key], abs=1e-6), key
        names = sorted(p.name for p in (out / "predictions").iterdir())
        assert sorted(p.name for p in (ddp / "predictions").iterdir()) == names
        for name in names:
            a = np.asarray(Image.open(out / "predictions" / name))
            b = np.asarray(Image.open(ddp / "predictions" / name))
            np.testing.assert_array_equal(a, b)


def test_voc_train_then_test_writes_palette_indices(tmp_path):
    """train.py on VOC (test after fit, +save_predictions): <id>.png palette PNGs equal to the logged mIoU's predictions."""
    root = tmp_path / "voc"
    write_voc(root, {"train": ["a", "b", "c", "d"], "val": ["e", "f", "g"]})
    out = tmp_path / "run"
    run_script(
        "train.py",
        [
            *TINY,
            "data=voc",
            f"data.root={root}",
            "+save_predictions=true",
            "data.eval_batch_size=1",
            f"hydra.run.dir={out}",
        ],
        tmp_path,
    )
    metrics = read_metrics(out)
    assert {"val/miou", "test/miou", "test/iiou"} <= set(metrics)
    assert not [k for k in metrics if "category" in k]  # VOC has no categories
    names = sorted(p.name for p in (out / "predictions").iterdir())
    assert names == ["e.png", "f.png", "g.png"]
    data = VOCSegmentation(root, "val")
    preds, targets = [], []
    for i, name in enumerate(names):
        with Image.open(out / "predictions" / name) as im:
            assert im.mode == "P"
            ids = np.asarray(im)
            palette = np.asarray(im.getpalette()[: 21 * 3]).reshape(21, 3)
        np.testing.assert_array_equal(palette, VOC_COLORMAP[:21])
        assert ids.max() <= 20
        with Image.open(out / "predictions_color" / name) as im:
            np.testing.assert_array_equal(np.asarray(im.convert("RGB")), VOC_COLORMAP[ids])
        preds.append(torch.from_numpy(ids.copy()).long())
        targets.append(data[i]["mask"])
    miou = MulticlassJaccardIndex(21, average="macro", ignore_index=255)(
        torch.stack(preds), torch.stack(targets)
    )
    assert metrics["test/miou"] == pytest.approx(float(miou), abs=1e-6)
