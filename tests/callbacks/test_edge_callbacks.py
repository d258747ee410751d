import csv
from types import SimpleNamespace

import cv2
import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import WandbLogger
from torch.utils.data import DataLoader

from pixelwise.callbacks.edges import (
    EdgeMetrics,
    EdgePanels,
    EdgePredictionWriter,
    edge_panel,
    probability_png,
)
from pixelwise.data.collate import DictCollate
from pixelwise.tasks.outputs import EdgeOutput


def edge_items(n=3, h=24, w=32):
    """Items with one annotation each: a vertical and a horizontal line."""
    items = []
    for i in range(n):
        edges = torch.zeros(1, h, w, dtype=torch.bool)
        edges[0, :, 5 + i] = True
        edges[0, 10 + i, :] = True
        items.append({"image": torch.rand(3, h, w), "edges": edges, "name": f"img{i}"})
    return items


class Oracle(L.LightningModule):
    """Predicts `scale` x the annotation (1 = perfect, 0 = nothing) with two fake side maps."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def _step(self, batch):
        preds = batch["edges"][:, 0].float() * self.scale + 0 * self.dummy
        return EdgeOutput(
            preds=preds, sides=preds[:, None].repeat(1, 2, 1, 1), edges=list(batch["edges"])
        )

    def validation_step(self, batch, batch_idx):
        return self._step(batch)

    def test_step(self, batch, batch_idx):
        return self._step(batch)


def run(module, callbacks, tmp_path, stage="test"):
    loader = DataLoader(edge_items(), batch_size=2, collate_fn=DictCollate())
    trainer = L.Trainer(
        accelerator="cpu",
        logger=False,
        callbacks=callbacks,
        default_root_dir=tmp_path,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    getattr(trainer, "validate" if stage == "val" else "test")(module, dataloaders=loader)
    return trainer


class TestEdgeMetrics:
    def test_perfect_predictions_score_one_exact_on_test(self, tmp_path):
        trainer = run(Oracle(1.0), [EdgeMetrics(thresholds=9)], tmp_path)
        m = trainer.callback_metrics
        assert m["test/ods"].item() == pytest.approx(1.0)
        assert m["test/ois"].item() == pytest.approx(1.0)
        assert "test/ods_approx" not in m

    def test_validation_names_say_approximate(self, tmp_path):
        cb = EdgeMetrics(thresholds=9)
        trainer = run(Oracle(1.0), [cb], tmp_path, stage="val")
        m = trainer.callback_metrics
        assert set(cb.results["val"]) == {
            f"val/{k}_approx" for k in ("ods", "ois", "ap", "r50", "ods_threshold")
        }
        assert m["val/ods_approx"].item() == pytest.approx(1.0) and "val/ods" not in m

    def test_empty_predictions_log_zero_not_nan(self, tmp_path):
        cb = EdgeMetrics(thresholds=9)
        run(Oracle(0.0), [cb], tmp_path)
        assert cb.results["test"]["test/ods"] == 0.0
        assert all(np.isfinite(v) for v in cb.results["test"].values())

    def test_test_pr_curve_is_written(self, tmp_path):
        run(Oracle(0.65), [EdgeMetrics(thresholds=9)], tmp_path)
        rows = list(csv.DictReader((tmp_path / "test_pr_curve.csv").open()))
        assert [float(r["threshold"]) for r in rows] == pytest.approx(
            np.arange(1, 10) / 10, abs=1e-6
        )
        # Predictions 0.65 on the annotation: everything found up to 0.6, nothing from 0.7.
        assert [float(r["recall"]) for r in rows] == pytest.approx([1.0] * 6 + [0.0] * 3)

    def test_bad_thresholds(self):
        with pytest.raises(ValueError, match="thresholds=0"):
            EdgeMetrics(thresholds=0)


class TestEdgePredictionWriter:
    def test_one_uint8_png_per_test_image(self, tmp_path):
        writer = EdgePredictionWriter(tmp_path / "png")
        run(Oracle(0.5), [writer], tmp_path)
        files = sorted(p.name for p in (tmp_path / "png").iterdir())
        assert files == ["img0.png", "img1.png", "img2.png"]
        png = cv2.imread(str(tmp_path / "png" / "img1.png"), cv2.IMREAD_UNCHANGED)
        expected = edge_items()[1]["edges"][0].numpy() * 128  # round(255 * 0.5)
        assert png.dtype == np.uint8 and np.array_equal(png, expected.astype(np.uint8))


class TestPanels:
    def test_panel_layout_and_values(self):
        image = torch.zeros(3, 4, 5)
        annotations = torch.zeros(2, 4, 5, dtype=torch.bool)
        annotations[0, 1, 1] = annotations[1, 1, 1] = annotations[0, 2, 2] = True
        sides = torch.full((3, 4, 5), 0.25)
        panel = edge_panel(image, annotations, sides, torch.ones(4, 5))
        assert panel.shape == (4, 6 * 5, 3) and panel.dtype == np.uint8
        assert panel[1, 5 + 1, 0] == 255 and panel[2, 5 + 2, 0] == 128  # annotator mean 1 and 1/2
        assert np.all(panel[:, 10:25] == 64) and np.all(panel[:, 25:] == 255)

    def test_probability_png_rounds(self):
        assert probability_png(torch.tensor([0.0, 0.5, 1.0, 1.5, -1.0])).tolist() == [
            0,
            128,
            255,
            255,
            0,
        ]


class RecordingWandb(WandbLogger):
    """A WandbLogger that records what would be sent to W&B instead of starting a run."""

    def __init__(self) -> None:
        super().__init__(mode="disabled")
        self.logged: list[dict] = []
        self.images: list[tuple[str, list, list]] = []

    @property
    def experiment(self):
        return SimpleNamespace(log=self.logged.append)

    def log_metrics(self, metrics, step=None) -> None:
        pass

    def log_hyperparams(self, params) -> None:
        pass

    def log_image(self, key, images, step=None, **kwargs) -> None:
        self.images.append((key, images, kwargs.get("caption")))


class TestWandbMedia:
    def test_pr_curve_and_panels_reach_wandb(self, tmp_path):
        logger = RecordingWandb()
        loader = DataLoader(edge_items(), batch_size=2, collate_fn=DictCollate())
        trainer = L.Trainer(
            accelerator="cpu",
            logger=logger,
            default_root_dir=tmp_path,
            callbacks=[EdgeMetrics(thresholds=9), EdgePanels(every_n_epochs=1, max_images=1)],
            enable_progress_bar=False,
            enable_model_summary=False,
        )
        trainer.validate(Oracle(0.65), dataloaders=loader)
        curves = [entry for entry in logger.logged if "val/pr_curve_approx" in entry]
        assert len(curves) == 1
        table = curves[0]["val/pr_curve_approx"].table
        assert table.columns == ["threshold", "recall", "precision"] and len(table.data) == 9
        assert [row[1] for row in table.data] == pytest.approx([1.0] * 6 + [0.0] * 3)
        ((key, panels, captions),) = logger.images
        assert key == "val/panels" and len(panels) == 1 and panels[0].shape == (24, 5 * 32, 3)
        assert captions == ["image | annotator mean | side outputs | fused"]
