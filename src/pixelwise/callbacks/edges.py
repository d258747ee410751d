"""Edge detection callbacks: boundary F (ODS/OIS/AP) with a P-R curve, panels, and PNG outputs."""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path
from typing import Any

import cv2
import lightning as L
import numpy as np
import torch

from pixelwise.callbacks.options import check_at_least
from pixelwise.callbacks.panels import ValidationPanels
from pixelwise.callbacks.stages import StageCallback
from pixelwise.callbacks.wandb_media import log_pr_curve
from pixelwise.drawing import to_uint8_image
from pixelwise.metrics.boundary_f import BoundaryF
from pixelwise.tasks.outputs import EdgeOutput

log = logging.getLogger("pixelwise")

SCALARS: tuple[str, ...] = ("ods", "ois", "ap", "r50", "ods_threshold")
APPROX_SUFFIX = "_approx"


def probability_png(pred: torch.Tensor) -> np.ndarray:
    """Edge probabilities [H,W] in [0,1] -> uint8 [H,W] (round(255 p)), what benchmarks read."""
    return (pred.detach().float().clamp(0, 1) * 255).round().byte().cpu().numpy()


def edge_panel(
    image: torch.Tensor, annotations: torch.Tensor, sides: torch.Tensor, fused: torch.Tensor
) -> np.ndarray:
    """image [3,H,W], annotations [K,H,W], sides [S,H,W], fused [H,W] -> uint8 [H,(S+3)W,3].

    Left to right: image | annotator mean | side outputs | fused (probabilities as gray).
    """

    def gray(x: torch.Tensor) -> np.ndarray:
        return np.repeat(probability_png(x)[..., None], 3, axis=2)

    parts = [to_uint8_image(image), gray(annotations.float().mean(0))]
    parts += [gray(s) for s in sides]
    parts.append(gray(fused))
    return np.concatenate(parts, axis=1)


class EdgeMetrics(StageCallback):
    """Boundary F (BSDS protocol, pixelwise.metrics.BoundaryF) on validation and test.

    Logs `<stage>/ods`, `/ois`, `/ap`, `/r50`, `/ods_threshold`. With `val_approximate`
    (default) validation uses BoundaryF's fast approximate matching and every name gets the
    suffix `_approx` (`val/ods_approx` ...); test is exact unless `test_approximate`.
    `edge_nms` thins predictions by the HED/RCF evaluation NMS first (off, as the benchmark). The P-R
    curve goes to W&B loggers as a line plot, and the test curve to `<log dir>/test_pr_curve.csv`.
    The metric's states are sums and per-image rows, so the values under DDP (with the
    DataModule's unrepeated sampler) equal the single-process ones.
    """

    def __init__(
        self,
        thresholds: int = 99,
        max_dist: float = 0.0075,
        thin: bool = True,
        edge_nms: bool = False,
        val_approximate: bool = True,
        test_approximate: bool = False,
        metric_kwargs: dict[str, Any] | None = None,
    ) -> None:
        check_at_least("EdgeMetrics", "thresholds", thresholds, 1)
        self.thresholds = thresholds
        self.max_dist = max_dist
        self.thin = thin
        self.edge_nms = edge_nms
        self.approximate = {"val": val_approximate, "test": test_approximate}
        self.metric_kwargs = dict(metric_kwargs or {})
        self.metrics: dict[str, BoundaryF] = {}
        self.results: dict[str, dict[str, float]] = {}
        self.curves: dict[str, dict[str, np.ndarray]] = {}

    def metric_name(self, stage: str, name: str) -> str:
        """Logged name, e.g. val/ods_approx for approximate validation, test/ods for exact test."""
        return f"{stage}/{name}{APPROX_SUFFIX if self.approximate[stage] else ''}"

    def _start(self, stage: str, pl_module: L.LightningModule) -> None:
        metric = BoundaryF(
            thresholds=self.thresholds,
            max_dist=self.max_dist,
            thin=self.thin,
            approximate=self.approximate[stage],
            edge_nms=self.edge_nms,
            **self.metric_kwargs,
        )
        self.metrics[stage] = metric.to(pl_module.device)

    def _update(self, stage: str, outputs: EdgeOutput) -> None:
        edges = outputs.edges
        device = outputs.preds.device
        edges = (
            edges.to(device) if isinstance(edges, torch.Tensor) else [e.to(device) for e in edges]
        )
        self.metrics[stage].update(outputs.preds, edges)

    def _log(self, stage: str, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        metric = self.metrics[stage]
        out = metric.compute()
        scalars = {}
        for name in SCALARS:
            value = float(out[name])
            if not math.isfinite(value):
                # The metric defines empty cases; this only guards the log against NaN.
                log.warning("%s is %s; logged as 0", self.metric_name(stage, name), value)
                value = 0.0
            scalars[self.metric_name(stage, name)] = value
        for key, value in scalars.items():
            pl_module.log(key, value, sync_dist=False)
        self.results[stage] = scalars
        curve = {
            "threshold": torch.as_tensor(out["thresholds"]).double().cpu().numpy(),
            "recall": torch.as_tensor(out["recall"]).double().cpu().numpy(),
            "precision": torch.as_tensor(out["precision"]).double().cpu().numpy(),
        }
        self.curves[stage] = curve
        metric.reset()
        if not trainer.is_global_zero:
            return
        self._log_curve(stage, trainer, curve)
        if stage == "test":
            self._write_curve(Path(trainer.default_root_dir) / "test_pr_curve.csv", curve)

    def _log_curve(self, stage: str, trainer: L.Trainer, curve: dict[str, np.ndarray]) -> None:
        title = f"{stage} precision-recall" + (" (approximate)" if self.approximate[stage] else "")
        log_pr_curve(
            trainer,
            self.metric_name(stage, "pr_curve"),
            title,
            curve["threshold"],
            curve["recall"],
            curve["precision"],
        )

    @staticmethod
    def _write_curve(path: Path, curve: dict[str, np.ndarray]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["threshold", "recall", "precision"])
            for row in zip(curve["threshold"], curve["recall"], curve["precision"]):
                writer.writerow([f"{v:.6f}" for v in row])

    def stage_start(self, stage: str, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start(stage, pl_module)

    def stage_batch_end(self, stage, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if stage == "val" and trainer.sanity_checking:
            return  # the sanity check's few batches say nothing; skip the matching cost
        self._update(stage, outputs)

    def stage_end(self, stage: str, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if stage == "val" and trainer.sanity_checking:
            self.metrics[stage].reset()
            return
        self._log(stage, trainer, pl_module)


class EdgePanels(ValidationPanels):
    """Every few validation epochs, log (image | annotator mean | side outputs | fused) panels to W&B."""

    caption = "image | annotator mean | side outputs | fused"

    def __init__(self, every_n_epochs: int = 2, max_images: int = 4) -> None:
        super().__init__(every_n_epochs, max_images)

    def panel(self, trainer: L.Trainer, batch: Any, outputs: EdgeOutput, i: int) -> np.ndarray:
        return edge_panel(batch["image"][i], outputs.edges[i], outputs.sides[i], outputs.preds[i])


class EdgePredictionWriter(L.Callback):
    """Write each test (and predict) image's fused edge probabilities as a uint8 PNG `<name>.png`.

    The format the BSDS benchmark code reads (value / 255 = probability, image size). Items
    without a "name" are written as `<batch>_<index>.png`. Every rank writes its own images.
    """

    def __init__(self, dirpath: str | Path, stages: tuple[str, ...] = ("test", "predict")) -> None:
        self.dirpath = Path(dirpath)
        self.stages = tuple(stages)
        self.written: list[Path] = []

    def _write(self, preds: torch.Tensor, batch: dict[str, Any], batch_idx: int) -> None:
        self.dirpath.mkdir(parents=True, exist_ok=True)
        names = batch.get("name") or [f"{batch_idx:05d}_{i}" for i in range(preds.shape[0])]
        for pred, name in zip(preds, names):
            path = self.dirpath / f"{name}.png"
            if not cv2.imwrite(str(path), probability_png(pred)):
                raise OSError(f"{path}: could not write the prediction PNG")
            self.written.append(path)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if "test" in self.stages:
            self._write(outputs.preds, batch, batch_idx)

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if "predict" in self.stages:
            self._write(outputs.preds, batch, batch_idx)
