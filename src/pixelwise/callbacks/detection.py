"""Feed detections to COCO mAP (torchmetrics), log scalars, a per-class table, PR curves and boxes
to W&B; write test detections as a COCO results file."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.distributed as dist

from pixelwise.callbacks.data_info import data_fact
from pixelwise.callbacks.options import check_at_least
from pixelwise.callbacks.stages import StageCallback
from pixelwise.callbacks.wandb_media import first_val_batch_media_due, log_media, wandb_loggers
from pixelwise.formats.coco import coco_results
from pixelwise.metrics.coco_map import coco_box_map
from pixelwise.tasks.outputs import DetectionOutput

log = logging.getLogger("pixelwise")

# torchmetrics' MeanAveragePrecision keys -> logged names (COCO's AP, AP50, ..., AR@100).
SCALARS: tuple[str, ...] = (
    "map",
    "map_50",
    "map_75",
    "map_small",
    "map_medium",
    "map_large",
    "mar_1",
    "mar_10",
    "mar_100",
    "mar_small",
    "mar_medium",
    "mar_large",
)


def per_class_ap(
    prefix: str, per_class: Any, classes: Any, names: Sequence[str]
) -> dict[str, float]:
    """MeanAveragePrecision's per-class AP [K] of class ids [K] -> ``{f"{prefix}/{name}": ap}``.

    Empty unless there is more than one class; classes absent from the data (AP -1) are left out,
    an id without a name is logged by its number.
    """
    if per_class is None or classes is None or per_class.numel() <= 1:
        return {}
    return {
        f"{prefix}/{names[c] if c < len(names) else c}": float(ap)
        for c, ap in zip(classes.tolist(), per_class.tolist())
        if ap >= 0
    }


def crowd_and_area(batch: dict[str, Any], i: int) -> dict[str, torch.Tensor]:
    """Item ``i``'s "iscrowd" (long) and "area" (float) for a MeanAveragePrecision target, where the batch has them."""
    fields = (("iscrowd", torch.long), ("area", torch.float32))
    return {key: batch[key][i].to(dtype) for key, dtype in fields if batch.get(key) is not None}


def metric_targets(batch: dict[str, Any]) -> list[dict[str, torch.Tensor]]:
    """The batch's ground truth as MeanAveragePrecision targets, in original image coordinates.

    Boxes are divided by the batch's ``scale`` (resized / original) and ``area`` (the original
    annotation area, when the data gives it) is passed on, so small/medium/large follow the
    dataset's own areas as in pycocotools on the dataset's JSON.
    """
    n = batch["image"].shape[0]
    scales = batch.get("scale")
    targets = []
    for i in range(n):
        s = float(scales[i]) if scales is not None else 1.0
        boxes = batch["boxes"][i].float() / s
        targets.append(
            {"boxes": boxes, "labels": batch["labels"][i].long(), **crowd_and_area(batch, i)}
        )
    return targets


def metric_preds(outputs: DetectionOutput, batch: dict[str, Any]) -> list[dict[str, torch.Tensor]]:
    """The detections as MeanAveragePrecision preds, in original image coordinates."""
    scales = batch.get("scale")
    preds = outputs.as_torchmetrics()
    if scales is not None:
        for i, p in enumerate(preds):
            p["boxes"] = p["boxes"].float() / float(scales[i])
    return preds


class CocoMetrics(StageCallback):
    """One torchmetrics MeanAveragePrecision per evaluation stage, logged at the stage's end.

    A subclass makes the stage's metric (``_metric``), picks its logged scalars from the result
    (``_scalars``) and names its per-class AP (``per_class_key`` of the result, logged as
    ``<stage>/<per_class_name>/<class>``).
    """

    per_class_key = "map_per_class"
    per_class_name = "ap"

    def __init__(self, class_names: Sequence[str] | None, backend: str | None) -> None:
        self.class_names = list(class_names) if class_names else None
        self.backend = backend
        self.metrics: dict[str, Any] = {}

    def _names(self, pl_module: L.LightningModule) -> list[str]:
        return self.class_names or list(getattr(pl_module, "class_names", []))

    def _metric(self, stage: str, options: dict[str, Any]) -> Any:
        """The stage's fresh metric; ``options`` holds the chosen ``backend``, if any."""
        raise NotImplementedError

    def _scalars(self, stage: str, result: dict[str, Any]) -> dict[str, float]:
        """The scalars of a computed result, by logged name (a negative or NaN one is not logged)."""
        raise NotImplementedError

    def _start(self, stage: str, pl_module: L.LightningModule) -> None:
        options = {"backend": self.backend} if self.backend else {}
        self.metrics[stage] = self._metric(stage, options).to(pl_module.device)

    def _finish(self, stage: str, pl_module: L.LightningModule) -> dict[str, Any]:
        result = self.metrics[stage].compute()
        self.metrics[stage].reset()
        values = {
            name: value
            for name, value in self._scalars(stage, result).items()
            if value >= 0 and math.isfinite(value)  # COCO's -1: no object of that kind
        }
        values |= per_class_ap(
            f"{stage}/{self.per_class_name}",
            result.get(self.per_class_key),
            result.get("classes"),
            self._names(pl_module),
        )
        pl_module.log_dict(values, sync_dist=False)
        return result

    def stage_start(self, stage: str, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start(stage, pl_module)


class DetectionMetrics(CocoMetrics):
    """COCO box metrics of validation and test detections.

    Logs ``<stage>/map``, ``map_50``, ``map_75``, ``map_small|medium|large``, ``mar_1|10|100`` and
    ``mar_small|medium|large`` (a value of -1, COCO's "no object of that size", is not logged),
    and ``<stage>/ap/<class>`` per class. W&B loggers also get a per-class table (AP, AR@100)
    at test end, the precision-recall curve at IoU 0.5 per class, and validation images with
    their boxes every ``images_every_n_epochs`` epochs. The metric's states are gathered under
    DDP (the DataModule's evaluation sampler neither pads nor drops), so the value equals the
    single-process one.
    """

    def __init__(
        self,
        class_names: list[str] | None = None,
        backend: str | None = None,
        images_every_n_epochs: int = 5,
        max_images: int = 4,
        image_score_threshold: float = 0.3,
    ) -> None:
        check_at_least("DetectionMetrics", "images_every_n_epochs", images_every_n_epochs, 1)
        super().__init__(class_names, backend)
        self.images_every_n_epochs = images_every_n_epochs
        self.max_images = max_images
        self.image_score_threshold = image_score_threshold
        self._images: list[Any] = []

    def _metric(self, stage: str, options: dict[str, Any]) -> Any:
        return coco_box_map(class_metrics=True, extended_summary=stage == "test", **options)

    def _update(self, stage: str, outputs: DetectionOutput, batch: dict[str, Any]) -> None:
        self.metrics[stage].update(metric_preds(outputs, batch), metric_targets(batch))

    def _scalars(self, stage: str, result: dict[str, Any]) -> dict[str, float]:
        return {f"{stage}/{key}": float(result[key]) for key in SCALARS}

    # -- validation and test (StageCallback) -------------------------------------------------
    def stage_start(self, stage: str, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().stage_start(stage, trainer, pl_module)
        self._images = []

    def stage_batch_end(self, stage, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._update(stage, outputs, batch)
        if first_val_batch_media_due(trainer, stage, batch_idx, self.images_every_n_epochs):
            self._images = self._box_images(outputs, batch, self._names(pl_module))

    def stage_end(self, stage: str, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        result = self._finish(stage, pl_module)
        if stage == "val" and self._images and not trainer.sanity_checking:
            log_media(trainer, {"val/detections": self._images})
        self._images = []
        if stage == "test" and trainer.is_global_zero and wandb_loggers(trainer):
            self._log_tables(trainer, result, self._names(pl_module))

    # -- media --------------------------------------------------------------------------------
    def _box_images(
        self, outputs: DetectionOutput, batch: dict[str, Any], names: list[str]
    ) -> list:
        import wandb

        labels = {i: n for i, n in enumerate(names)}
        images = []
        for i in range(min(self.max_images, batch["image"].shape[0])):
            image = batch["image"][i].detach().float().cpu()
            h, w = image.shape[-2:]
            keep = outputs.scores[i] >= self.image_score_threshold

            def entries(boxes, cls, scores=None, w=w, h=h):
                rows = []
                for k, (b, c) in enumerate(zip(boxes.tolist(), cls.tolist())):
                    row = {
                        "position": {
                            "minX": b[0] / w,
                            "minY": b[1] / h,
                            "maxX": b[2] / w,
                            "maxY": b[3] / h,
                        },
                        "class_id": int(c),
                        "box_caption": names[int(c)] if int(c) < len(names) else str(c),
                    }
                    if scores is not None:
                        row["scores"] = {"score": float(scores[k])}
                        row["box_caption"] += f" {float(scores[k]):.2f}"
                    rows.append(row)
                return rows

            boxes = {
                "predictions": {
                    "box_data": entries(
                        outputs.boxes[i][keep].cpu(),
                        outputs.labels[i][keep].cpu(),
                        outputs.scores[i][keep].cpu(),
                    ),
                    "class_labels": labels,
                },
                "ground_truth": {
                    "box_data": entries(batch["boxes"][i].cpu(), batch["labels"][i].cpu()),
                    "class_labels": labels,
                },
            }
            images.append(wandb.Image(image.permute(1, 2, 0).clamp(0, 1).numpy(), boxes=boxes))
        return images

    def _log_tables(self, trainer: L.Trainer, result: dict[str, Any], names: list[str]) -> None:
        import wandb

        table = wandb.Table(columns=["class", "ap", "ap_50", "ar_100"])
        precision = result.get("precision")  # [T,R,K,A,M] (extended summary)
        classes = (
            result["classes"].tolist()
            if result["classes"].numel() > 1
            else [int(result["classes"])]
        )
        per_class = result["map_per_class"].reshape(-1).tolist()
        recall_per_class = result["mar_100_per_class"].reshape(-1).tolist()
        curves = {}
        for j, c in enumerate(classes):
            name = names[c] if c < len(names) else str(c)
            ap50 = float("nan")
            if precision is not None and precision.dim() == 5:
                p = precision[0, :, j, 0, -1]  # IoU 0.5, all recall points, all areas, 100 dets
                valid = p >= 0
                ap50 = float(p[valid].mean()) if valid.any() else float("nan")
                curves[name] = p.clamp(min=0).tolist()
            table.add_data(
                name,
                per_class[j] if j < len(per_class) else None,
                ap50,
                recall_per_class[j] if j < len(recall_per_class) else None,
            )
        payload: dict[str, Any] = {"test/per_class": table}
        if curves:
            recall = torch.linspace(0, 1, 101).tolist()
            payload["test/pr_curve_iou50"] = wandb.plot.line_series(
                xs=recall,
                ys=list(curves.values()),
                keys=list(curves),
                title="precision-recall at IoU 0.5",
                xname="recall",
            )
        log_media(trainer, payload)


class DetectionResultsWriter(L.Callback):
    """Write test detections as a COCO results file (``detections.json``: image_id, category_id,
    bbox [x, y, w, h] in original image pixels, score), gathered from every rank.

    Category ids come from the data contract, ``trainer.datamodule.info.category_ids``
    (contiguous label -> dataset id), else ``label + 1``; image ids from the batch's ``image_id``.
    """

    def __init__(self, dirpath: str, filename: str = "detections.json") -> None:
        self.path = Path(dirpath) / filename
        self._rows: list[dict[str, Any]] = []

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._rows = []

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if "image_id" not in batch:
            raise KeyError(
                "DetectionResultsWriter: the batch has no 'image_id'; COCO results need one per image"
            )
        category_ids = data_fact(trainer, "category_ids") or list(
            range(1, pl_module.num_classes + 1)
        )
        self._rows += coco_results(
            [int(i) for i in batch["image_id"]],
            [b.detach().cpu().numpy() for b in outputs.boxes],
            [s.detach().cpu().numpy() for s in outputs.scores],
            [lab.detach().cpu().numpy() for lab in outputs.labels],
            category_ids,
            [float(s) for s in batch["scale"]] if "scale" in batch else None,
        )

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        rows = self._rows
        if dist.is_available() and dist.is_initialized() and trainer.world_size > 1:
            gathered: list[Any] = [None] * trainer.world_size
            dist.all_gather_object(gathered, rows)
            rows = [r for part in gathered for r in part]
        if trainer.is_global_zero:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(rows))
            log.info("wrote %d detections to %s", len(rows), self.path)
