"""DetectionMetrics and DetectionResultsWriter, fed batch by batch as Lightning does: the logged
COCO values equal pycocotools' COCOeval on the written detections.json (and ground-truth JSON)."""

from __future__ import annotations

import contextlib
import io
import json
from types import SimpleNamespace

import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from pixelwise.callbacks.detection import DetectionMetrics, DetectionResultsWriter
from pixelwise.formats.coco import coco_ground_truth_json
from pixelwise.tasks.outputs import DetectionOutput
from tests.metrics.test_coco_map import CATEGORY_IDS, KEYS, NAMES, make_case


class FakeModule:
    device = torch.device("cpu")
    num_classes = 3
    class_names = NAMES

    def __init__(self):
        self.logged: dict[str, float] = {}

    def log_dict(self, values, **kwargs):
        self.logged.update(values)


def _trainer(tmp_path):
    return SimpleNamespace(
        loggers=[],
        is_global_zero=True,
        world_size=1,
        current_epoch=0,
        sanity_checking=False,
        datamodule=SimpleNamespace(info=SimpleNamespace(category_ids=CATEGORY_IDS)),
    )


def _batches(images, size=4):
    for i in range(0, len(images), size):
        chunk = images[i : i + size]
        batch = {
            "image": torch.zeros(len(chunk), 3, 8, 8),
            "boxes": [im["boxes"] for im in chunk],
            "labels": [im["labels"] for im in chunk],
            "iscrowd": [im["iscrowd"] for im in chunk],
            "area": [im["area"] for im in chunk],
            "scale": torch.tensor([im["scale"] for im in chunk]),
            "image_id": torch.tensor([im["id"] for im in chunk]),
        }
        out = DetectionOutput(
            boxes=[im["det_boxes"] for im in chunk],
            scores=[im["det_scores"] for im in chunk],
            labels=[im["det_labels"] for im in chunk],
        )
        yield out, batch


def _cocoeval(gt_path, dt_path):
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        ev = COCOeval(gt, gt.loadRes(str(dt_path)), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


@pytest.mark.parametrize("backend", ["faster_coco_eval", "pycocotools"])
def test_logged_metrics_equal_cocoeval_on_the_written_files(tmp_path, backend):
    images = make_case(seed=3)
    trainer, module = _trainer(tmp_path), FakeModule()
    metrics = DetectionMetrics(backend=backend)
    writer = DetectionResultsWriter(str(tmp_path))
    metrics.on_test_epoch_start(trainer, module)
    writer.on_test_epoch_start(trainer, module)
    for i, (out, batch) in enumerate(_batches(images)):
        metrics.on_test_batch_end(trainer, module, out, batch, i)
        writer.on_test_batch_end(trainer, module, out, batch, i)
    metrics.on_test_epoch_end(trainer, module)
    writer.on_test_epoch_end(trainer, module)

    gt_path = coco_ground_truth_json(
        tmp_path / "gt.json",
        [im["id"] for im in images],
        [im["size"] for im in images],
        [im["boxes"] for im in images],
        [im["labels"] for im in images],
        CATEGORY_IDS,
        NAMES,
        iscrowd=[im["iscrowd"] for im in images],
        areas=[im["area"] for im in images],
        scales=[im["scale"] for im in images],
    )
    stats = _cocoeval(gt_path, tmp_path / "detections.json")
    assert 0.1 < stats[0] < 0.9  # a case with something to get right
    for key, want in zip(KEYS, stats):
        if want < 0:  # COCO's "no object of this size": not logged
            assert f"test/{key}" not in module.logged
        else:
            assert module.logged[f"test/{key}"] == pytest.approx(want, abs=1e-4), key
    per_class = [module.logged[f"test/ap/{n}"] for n in NAMES]
    assert sum(per_class) / 3 == pytest.approx(module.logged["test/map"], abs=1e-4)
    rows = json.loads((tmp_path / "detections.json").read_text())
    assert len(rows) == sum(len(im["det_scores"]) for im in images)
    assert {r["category_id"] for r in rows} <= set(CATEGORY_IDS)


def test_writer_needs_image_ids(tmp_path):
    writer = DetectionResultsWriter(str(tmp_path))
    out, batch = next(_batches(make_case(seed=1)))
    del batch["image_id"]
    with pytest.raises(KeyError, match="image_id"):
        writer.on_test_batch_end(_trainer(tmp_path), FakeModule(), out, batch, 0)


def test_bad_option():
    with pytest.raises(ValueError, match="images_every_n_epochs"):
        DetectionMetrics(images_every_n_epochs=0)


def test_wandb_gets_box_images_tables_and_pr_curves(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    import wandb
    from lightning.pytorch.loggers import WandbLogger

    logger = WandbLogger(save_dir=str(tmp_path), offline=True)
    trainer = SimpleNamespace(
        loggers=[logger],
        is_global_zero=True,
        current_epoch=0,
        sanity_checking=False,
        global_step=3,
        world_size=1,
    )
    images = make_case(seed=5, n_images=4)
    cb, module = DetectionMetrics(max_images=2, image_score_threshold=0.0), FakeModule()
    cb.on_validation_epoch_start(trainer, module)
    for i, (out, batch) in enumerate(_batches(images)):
        batch["image"] = torch.rand(len(batch["boxes"]), 3, 32, 32)
        cb.on_validation_batch_end(trainer, module, out, batch, i)
    cb.on_validation_epoch_end(trainer, module)
    cb.on_test_epoch_start(trainer, module)
    for i, (out, batch) in enumerate(_batches(images)):
        cb.on_test_batch_end(trainer, module, out, batch, i)
    cb.on_test_epoch_end(trainer, module)
    wandb.finish()
    media = tmp_path / "wandb"
    assert list(media.rglob("media/images/val/detections_*.png"))  # W&B tiles a list into one file
    assert list(media.rglob("media/table/test/per_class_*.table.json"))
    curve = next(media.rglob("media/table/test/pr_curve_iou50_table_*.table.json"))
    assert set(json.loads(curve.read_text())["columns"]) >= {"lineKey", "lineVal", "step"}
