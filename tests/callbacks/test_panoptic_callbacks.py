"""Panoptic callbacks: logged values are the metric's; writer ids; panels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pixelwise.callbacks.panoptic import (
    PanopticMetrics,
    dataset_segment_ids,
    panoptic_colors,
    panoptic_panel,
    target_instances,
)
from pixelwise.data.info import DatasetInfo
from pixelwise.tasks.outputs import PanopticOutput


class FakeModule:
    device = torch.device("cpu")
    class_names = ["road", "car"]

    def __init__(self) -> None:
        self.logged: dict[str, float] = {}

    def log_dict(self, values, sync_dist=False) -> None:
        self.logged.update(values)


class FakeTrainer:
    loggers: list = []
    current_epoch = 0
    is_global_zero = True
    sanity_checking = False

    class datamodule:  # noqa: N801
        info = DatasetInfo(num_classes=2, instance_classes=[1])
        palette = None


def test_logs_pq_and_mask_ap() -> None:
    gt = torch.tensor([[[1, 1, 1001, 1001], [1, 1, 1001, 1002]]])
    gseg = [torch.tensor([[1, 0, 0], [1001, 1, 0], [1002, 1, 0]])]
    pred = torch.tensor([[[1000, 1000, 2001, 2001], [1000, 1000, 2001, 1000]]])
    pseg = [torch.tensor([[1000, 0, 0], [2001, 1, 0]])]
    heat = torch.zeros(1, 1, 2, 4)
    heat[0, 0, 0, 2] = 0.8
    out = PanopticOutput(panoptic=pred, segments=pseg, heatmap=heat)
    cb, module, trainer = PanopticMetrics(2, ["road", "car"]), FakeModule(), FakeTrainer()
    batch = {"image": torch.zeros(1, 3, 2, 4), "panoptic": gt, "segments": gseg}
    cb.on_validation_epoch_start(trainer, module)
    cb.on_validation_batch_end(trainer, module, out, batch, 0)
    cb.on_validation_epoch_end(trainer, module)
    v = module.logged
    # road: 4 / 5 (pred 5 px, gt 4 px, inter 4); car 2001 vs 1001: 3 / 3 = 1 -> TP; 1002 FN.
    assert v["val/pq/road"] == pytest.approx(0.8) and v["val/sq_things"] == pytest.approx(1.0)
    assert v["val/rq_things"] == pytest.approx(1 / 1.5) and v["val/pq"] == pytest.approx(
        (0.8 + 1 / 1.5) / 2
    )
    # the car as an instance: one of two cars found with IoU 1 -> precision 1 up to recall 0.5:
    # COCO's 101-point AP = 51 / 101 at every IoU threshold.
    assert v["val/mask_map_50"] == pytest.approx(51 / 101, abs=1e-6)
    assert v["val/mask_map"] == pytest.approx(51 / 101, abs=1e-6)


def test_missing_batch_keys_and_things() -> None:
    cb = PanopticMetrics(2)
    out = PanopticOutput(
        panoptic=torch.zeros(1, 2, 2, dtype=torch.long),
        segments=[torch.zeros(0, 3, dtype=torch.long)],
    )
    cb.on_validation_epoch_start(FakeTrainer(), FakeModule())
    with pytest.raises(KeyError, match="segments"):
        cb.on_validation_batch_end(
            FakeTrainer(),
            FakeModule(),
            out,
            {"image": torch.zeros(1, 3, 2, 2), "panoptic": out.panoptic},
            0,
        )

    class NoThings(FakeTrainer):
        class datamodule:  # noqa: N801
            info = DatasetInfo(num_classes=2)

    with pytest.raises(ValueError, match="instance_classes"):
        PanopticMetrics(2).on_validation_epoch_start(NoThings(), FakeModule())


def test_dataset_ids_and_targets() -> None:
    pan = np.array([[1000, 2003], [3001, 0]])
    seg = np.array([[1000, 0, 0], [2003, 1, 0], [3001, 2, 0]])
    new, nseg = dataset_segment_ids(pan, seg, [7, 26, 24])
    assert new.tolist() == [[7, 26003], [24001, 0]] and nseg[:, 0].tolist() == [7, 26003, 24001]
    t = target_instances(
        torch.tensor([[5, 6], [7, 0]]), torch.tensor([[5, 0, 0], [6, 1, 0], [7, 1, 1]]), [1]
    )
    assert (
        t["labels"].tolist() == [1, 1] and t["iscrowd"].tolist() == [0, 1] and t["masks"].sum() == 2
    )


def test_panel_shapes_and_colours() -> None:
    pal = np.array([[10, 20, 30], [200, 0, 0]], dtype=np.uint8)
    pan, seg = np.array([[1, 1001], [1002, 0]]), np.array([[1, 0, 0], [1001, 1, 0], [1002, 1, 0]])
    col = panoptic_colors(pan, seg, pal, [1])
    assert col[0, 0].tolist() == [10, 20, 30] and col[1, 1].tolist() == [0, 0, 0]
    assert col[0, 1].tolist() != col[1, 0].tolist()  # two instances of one class, two colours
    panel = panoptic_panel(
        torch.rand(3, 2, 2),
        (pan, seg),
        (pan, seg),
        pal,
        [1],
        torch.rand(1, 2, 2),
        torch.rand(2, 2, 2),
    )
    assert panel.shape == (2, 10, 3) and panel.dtype == np.uint8


def test_wandb_gets_panels_and_pq_tables(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    import json
    from types import SimpleNamespace

    import wandb
    from lightning.pytorch.loggers import WandbLogger

    from pixelwise.data.collate import DictCollate
    from pixelwise.data.panoptic_scenes import SyntheticPanopticScenes
    from pixelwise.geometry.panoptic import panoptic_segments

    logger = WandbLogger(save_dir=str(tmp_path), offline=True)
    info = DatasetInfo(num_classes=9, instance_classes=[6, 7, 8])
    trainer = SimpleNamespace(
        loggers=[logger],
        is_global_zero=True,
        current_epoch=0,
        sanity_checking=False,
        global_step=3,
        world_size=1,
        datamodule=SimpleNamespace(info=info, palette=None),
    )
    ds = SyntheticPanopticScenes(split="val", length=2, size=(48, 64))
    batch = DictCollate(["segments"])([ds[0], ds[1]])
    pred = torch.where(
        batch["panoptic"] >= 1000,
        (batch["panoptic"] // 1000) * 1000 + batch["panoptic"] % 1000,
        batch["panoptic"] * 1000,
    )
    out = PanopticOutput(
        pred,
        panoptic_segments(pred),
        heatmap=torch.rand(2, 1, 48, 64),
        offsets=torch.randn(2, 2, 48, 64),
    )
    cb, module = PanopticMetrics(9, max_images=2, mask_ap=False), FakeModule()
    cb.on_validation_epoch_start(trainer, module)
    cb.on_validation_batch_end(trainer, module, out, batch, 0)
    cb.on_validation_epoch_end(trainer, module)
    assert module.logged["val/pq"] == pytest.approx(1.0)  # the ground truth, renumbered
    cb.on_test_epoch_start(trainer, module)
    cb.on_test_batch_end(trainer, module, out, batch, 0)
    cb.on_test_epoch_end(trainer, module)
    wandb.finish()
    media = tmp_path / "wandb"
    assert list(media.rglob("media/images/val/panoptic_*.png"))
    table = next(media.rglob("media/table/test/pq_table_*.table.json"))
    assert json.loads(table.read_text())["columns"] == [
        "class",
        "kind",
        "pq",
        "sq",
        "rq",
        "tp",
        "fp",
        "fn",
    ]
