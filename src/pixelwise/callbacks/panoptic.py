"""Panoptic metrics (PQ/SQ/RQ; mask AP of the things), W&B overlays and tables, and the prediction writer."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.distributed as dist

from pixelwise.callbacks.data_info import data_fact
from pixelwise.callbacks.options import check_at_least
from pixelwise.callbacks.overlays import default_palette
from pixelwise.callbacks.stages import StageCallback
from pixelwise.callbacks.wandb_media import first_val_batch_media_due, log_media, wandb_loggers
from pixelwise.drawing import to_uint8_image
from pixelwise.formats.panoptic import (
    categories_json,
    segments_info,
    write_panoptic_json,
    write_panoptic_png,
)
from pixelwise.metrics.coco_map import DEFAULT_BACKEND
from pixelwise.metrics.coco_mask_map import coco_mask_map
from pixelwise.metrics.panoptic_quality import PanopticQuality
from pixelwise.tasks.outputs import PanopticOutput

log = logging.getLogger("pixelwise")

PQ_KEYS: tuple[str, ...] = tuple(
    f"{q}{g}" for g in ("", "_things", "_stuff") for q in ("pq", "sq", "rq")
)
MASK_KEYS: tuple[str, ...] = ("map", "map_50", "map_75")


def _key(name: str) -> str:
    return "_".join(str(name).lower().split())


def target_instances(
    panoptic: torch.Tensor, segments: torch.Tensor, thing_classes: Sequence[int]
) -> dict[str, torch.Tensor]:
    """One image's thing segments as MeanAveragePrecision targets: masks bool [M,H,W], labels [M], iscrowd [M]."""
    things = torch.as_tensor(list(thing_classes), device=segments.device)
    seg = segments[torch.isin(segments[:, 1], things)]
    masks = panoptic.unsqueeze(0) == seg[:, 0].view(-1, 1, 1)
    return {"masks": masks, "labels": seg[:, 1], "iscrowd": seg[:, 2]}


def panoptic_colors(
    panoptic: np.ndarray, segments: np.ndarray, palette: np.ndarray, thing_classes: Sequence[int]
) -> np.ndarray:
    """uint8 [H,W,3]: stuff in the palette, each thing instance its own colour (palette jittered by id), void black."""
    out = np.zeros((*panoptic.shape, 3), dtype=np.uint8)
    things = set(int(c) for c in thing_classes)
    for sid, cls, _ in np.asarray(segments).reshape(-1, 3):
        colour = palette[int(cls) % len(palette)].astype(np.int64)
        if int(cls) in things:
            rng = np.random.default_rng(int(sid))
            colour = np.clip(colour + rng.integers(-70, 71, 3), 0, 255)
        out[panoptic == sid] = colour
    return out


def panoptic_panel(
    image: torch.Tensor,
    target: tuple[np.ndarray, np.ndarray],
    pred: tuple[np.ndarray, np.ndarray],
    palette: np.ndarray,
    thing_classes: Sequence[int],
    heatmap: torch.Tensor | None = None,
    offsets: torch.Tensor | None = None,
    alpha: float = 0.6,
) -> np.ndarray:
    """One panel [H, nW, 3]: image | ground truth | prediction | centre heatmap | offset magnitude."""
    rgb = to_uint8_image(image).astype(np.float32)
    parts = [rgb]
    for pan, seg in (target, pred):
        colours = panoptic_colors(pan, seg, palette, thing_classes).astype(np.float32)
        parts.append((1 - alpha) * rgb + alpha * colours)
    if heatmap is not None:
        hm = heatmap.detach().float().clamp(0, 1).cpu().numpy()[0]
        parts.append(np.repeat(hm[..., None] * 255.0, 3, axis=2))
    if offsets is not None:
        off = offsets.detach().float().cpu().numpy()
        mag = np.sqrt((off**2).sum(0))
        mag = mag / max(float(mag.max()), 1e-6)
        angle = (np.arctan2(off[1], off[0]) + np.pi) / (2 * np.pi)
        parts.append(np.stack([angle * 255 * mag, mag * 255, (1 - angle) * 255 * mag], axis=-1))
    return np.concatenate(parts, axis=1).round().clip(0, 255).astype(np.uint8)


class PanopticMetrics(StageCallback):
    """PQ, SQ, RQ (overall, things, stuff, per class) of validation and test panoptic maps.

    Logs ``<stage>/pq``, ``sq``, ``rq``, ``pq_things``, ``sq_things``, ``rq_things``, ``pq_stuff``,
    ``sq_stuff``, ``rq_stuff`` and ``<stage>/pq/<class>`` (NaN values, e.g. a group without any
    segment, are not logged); with ``mask_ap`` the things also as instance segmentation:
    ``<stage>/mask_map``, ``mask_map_50``, ``mask_map_75`` (torchmetrics MeanAveragePrecision,
    iou_type="segm", crowd as COCO's ignore). The batch needs "panoptic" [B,H,W] and "segments"
    (per image [N,3]). Thing classes: ``thing_classes``, else ``trainer.datamodule.info.instance_classes``.
    W&B: a per-class table (PQ, SQ, RQ, TP, FP, FN) and panels (image | ground truth | prediction
    | centre heatmap | offsets) every ``images_every_n_epochs`` validations. PQ states are sums
    (DDP-exact with the DataModule's unrepeated evaluation sampler, also when the ranks get
    different numbers of images); mask AP is :func:`~pixelwise.metrics.coco_mask_map.coco_mask_map`'s
    ``CocoMeanAveragePrecision``, DDP-exact in the same case.
    """

    def __init__(
        self,
        num_classes: int,
        class_names: Sequence[str] | None = None,
        thing_classes: Sequence[int] | None = None,
        mask_ap: bool = True,
        backend: str | None = None,
        images_every_n_epochs: int = 2,
        max_images: int = 4,
    ) -> None:
        check_at_least("PanopticMetrics", "images_every_n_epochs", images_every_n_epochs, 1)
        self.num_classes = num_classes
        self.class_names = (
            list(class_names) if class_names else [str(i) for i in range(num_classes)]
        )
        self.thing_classes = list(thing_classes) if thing_classes is not None else None
        self.mask_ap = mask_ap
        self.backend = backend or DEFAULT_BACKEND
        self.images_every_n_epochs = images_every_n_epochs
        self.max_images = max_images
        self.metrics: dict[str, PanopticQuality] = {}
        self.mask_metrics: dict[str, Any] = {}
        self._panels: list[np.ndarray] = []
        self.last: dict[str, dict[str, torch.Tensor]] = {}

    def _things(self, trainer: L.Trainer) -> list[int]:
        if self.thing_classes is not None:
            return self.thing_classes
        things = data_fact(trainer, "instance_classes")
        if not things:
            raise ValueError(
                "PanopticMetrics: no thing classes; set data.instance_classes (the things) or "
                "callbacks.panoptic_metrics.thing_classes"
            )
        return list(things)

    def _palette(self, trainer: L.Trainer) -> np.ndarray:
        palette = data_fact(trainer, "palette")
        return (
            np.asarray(palette, dtype=np.uint8)
            if palette is not None
            else default_palette(self.num_classes)
        )

    def _start(self, stage: str, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        things = self._things(trainer)
        self.metrics[stage] = PanopticQuality(self.num_classes, things).to(pl_module.device)
        if self.mask_ap:
            self.mask_metrics[stage] = coco_mask_map(iou_type="segm", backend=self.backend).to(
                pl_module.device
            )

    def _update(
        self, stage: str, trainer: L.Trainer, outputs: PanopticOutput, batch: dict[str, Any]
    ) -> None:
        for key in ("panoptic", "segments"):
            if key not in batch:
                raise KeyError(
                    f"PanopticMetrics: the batch has no {key!r}; a panoptic dataset gives it "
                    "(data=synthetic_panoptic | cityscapes_panoptic, with segments in data.list_keys)"
                )
        self.metrics[stage].update(
            outputs.panoptic, outputs.segments, batch["panoptic"], list(batch["segments"])
        )
        if self.mask_ap:
            things = self._things(trainer)
            preds = outputs.instances(things)
            targets = [
                target_instances(p, s, things) for p, s in zip(batch["panoptic"], batch["segments"])
            ]
            self.mask_metrics[stage].update(preds, targets)

    def _finish(
        self, stage: str, trainer: L.Trainer, pl_module: L.LightningModule
    ) -> dict[str, torch.Tensor]:
        result = self.metrics[stage].compute()
        self.metrics[stage].reset()
        values: dict[str, float] = {}
        for key in PQ_KEYS:
            v = float(result[key])
            if math.isfinite(v):
                values[f"{stage}/{key}"] = v
        seen = (result["tp"] + result["fp"] + result["fn"]) > 0
        for c, name in enumerate(self.class_names):
            if seen[c]:
                values[f"{stage}/pq/{_key(name)}"] = float(result["pq_per_class"][c])
        if self.mask_ap and stage in self.mask_metrics:
            mask = self.mask_metrics[stage].compute()
            self.mask_metrics[stage].reset()
            for key in MASK_KEYS:
                v = float(mask[key])
                if v >= 0 and math.isfinite(v):
                    values[f"{stage}/mask_{key}"] = v
        pl_module.log_dict(values, sync_dist=False)
        self.last[stage] = result
        return result

    def _table(self, trainer: L.Trainer, stage: str, result: dict[str, torch.Tensor]) -> None:
        import wandb

        things = set(self._things(trainer))
        table = wandb.Table(columns=["class", "kind", "pq", "sq", "rq", "tp", "fp", "fn"])
        for c, name in enumerate(self.class_names):
            table.add_data(
                name,
                "thing" if c in things else "stuff",
                float(result["pq_per_class"][c]),
                float(result["sq_per_class"][c]),
                float(result["rq_per_class"][c]),
                int(result["tp"][c]),
                int(result["fp"][c]),
                int(result["fn"][c]),
            )
        log_media(trainer, {f"{stage}/pq_table": table})

    def _make_panels(
        self, trainer: L.Trainer, outputs: PanopticOutput, batch: dict[str, Any]
    ) -> list[np.ndarray]:
        palette, things = self._palette(trainer), self._things(trainer)
        panels = []
        for i in range(min(self.max_images, batch["image"].shape[0])):
            panels.append(
                panoptic_panel(
                    batch["image"][i],
                    (batch["panoptic"][i].cpu().numpy(), batch["segments"][i].cpu().numpy()),
                    (outputs.panoptic[i].cpu().numpy(), outputs.segments[i].cpu().numpy()),
                    palette,
                    things,
                    outputs.heatmap[i] if outputs.heatmap is not None else None,
                    outputs.offsets[i] if outputs.offsets is not None else None,
                )
            )
        return panels

    # -- validation and test (StageCallback) -------------------------------------------------
    def stage_start(self, stage: str, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start(stage, trainer, pl_module)
        self._panels = []

    def stage_batch_end(self, stage, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._update(stage, trainer, outputs, batch)
        if first_val_batch_media_due(trainer, stage, batch_idx, self.images_every_n_epochs):
            self._panels = self._make_panels(trainer, outputs, batch)

    def stage_end(self, stage: str, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        result = self._finish(stage, trainer, pl_module)
        panels, self._panels = self._panels, []
        if trainer.sanity_checking or not trainer.is_global_zero or not wandb_loggers(trainer):
            return
        if stage == "test":
            self._table(trainer, "test", result)
        elif panels:
            import wandb

            caption = "image | ground truth | prediction | centre heatmap | offsets"
            log_media(trainer, {"val/panoptic": [wandb.Image(p, caption=caption) for p in panels]})
            self._table(trainer, "val", result)


def dataset_segment_ids(
    panoptic: np.ndarray,
    segments: np.ndarray,
    category_ids: Sequence[int],
    label_divisor: int = 1000,
) -> tuple[np.ndarray, np.ndarray]:
    """A model's ids ``(class+1)·L (+n)`` -> Cityscapes ids ``category_id·1000 (+n)``, stuff ``category_id``.

    panoptic [H,W], segments [N,3] -> (panoptic [H,W], segments [N,3]) in the dataset's ids.
    """
    segments = np.asarray(segments, dtype=np.int64).reshape(-1, 3)
    cats = np.asarray(category_ids, dtype=np.int64)[segments[:, 1]]
    n = segments[:, 0] % label_divisor
    new = np.where(n > 0, cats * 1000 + n, cats)
    out = np.zeros_like(panoptic, dtype=np.int64)
    for old_id, new_id in zip(segments[:, 0], new):
        out[panoptic == old_id] = new_id
    return out, np.stack([new, segments[:, 1], segments[:, 2]], axis=1)


class PanopticPredictionWriter(L.Callback):
    """Write test panoptic predictions in the Cityscapes panoptic format (what its evaluation reads).

    ``<dirpath>/<name>.json`` (images, annotations with ``segments_info``, categories) and
    ``<dirpath>/<name>/<image_id>_panoptic.png`` (ids as R + 256·G + 256²·B; Cityscapes ids:
    stuff = category id, thing = category id · 1000 + n; category ids from
    ``trainer.datamodule.info.category_ids``, else class + 1). With ``ground_truth=true`` the
    batch's ground truth is written the same way as ``<dirpath>/<name>_gt.json`` + PNG folder, so
    data without its own panoptic files (synthetic scenes) can be scored by the official tool.
    Under DDP every rank writes its PNGs; rank 0 writes the gathered JSON.
    """

    def __init__(
        self,
        dirpath: str | Path,
        name: str = "cityscapes_panoptic_val",
        enabled: bool = True,
        ground_truth: bool = False,
    ) -> None:
        self.dirpath = Path(dirpath)
        self.name = name
        self.enabled = enabled
        self.ground_truth = ground_truth
        self._anns: dict[str, list[dict[str, Any]]] = {"pred": [], "gt": []}
        self._images: list[dict[str, Any]] = []

    def _facts(
        self, trainer: L.Trainer, pl_module: L.LightningModule
    ) -> tuple[list[int], list[str], list[int]]:
        k = pl_module.num_classes
        cats = list(data_fact(trainer, "category_ids") or range(1, k + 1))
        names = list(
            data_fact(trainer, "class_names") or getattr(pl_module, "class_names", range(k))
        )
        things = list(
            data_fact(trainer, "instance_classes") or getattr(pl_module, "thing_classes", [])
        )
        return cats, [str(n) for n in names], things

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._anns = {"pred": [], "gt": []}
        self._images = []

    def _write(
        self,
        kind: str,
        image_id: str,
        pan: np.ndarray,
        seg: np.ndarray,
        cats: Sequence[int],
        divisor: int,
    ) -> None:
        pan, seg = dataset_segment_ids(pan, seg, cats, divisor) if kind == "pred" else (pan, seg)
        folder = self.dirpath / (self.name if kind == "pred" else f"{self.name}_gt")
        file_name = f"{image_id}_panoptic.png"
        write_panoptic_png(folder / file_name, pan)
        self._anns[kind].append(
            {
                "image_id": image_id,
                "file_name": file_name,
                "segments_info": segments_info(pan, seg, cats),
            }
        )

    def on_test_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        if not self.enabled:
            return
        if "image_id" not in batch:
            raise KeyError(
                "PanopticPredictionWriter: the batch has no 'image_id'; panoptic files are named by it"
            )
        cats, _, _ = self._facts(trainer, pl_module)
        for i, image_id in enumerate(batch["image_id"]):
            image_id = str(image_id)
            pan = outputs.panoptic[i].detach().cpu().numpy()
            seg = outputs.segments[i].detach().cpu().numpy()
            self._write("pred", image_id, pan, seg, cats, outputs.label_divisor)
            h, w = pan.shape
            self._images.append(
                {
                    "id": image_id,
                    "file_name": f"{image_id}_leftImg8bit.png",
                    "height": h,
                    "width": w,
                }
            )
            if self.ground_truth:
                self._write(
                    "gt",
                    image_id,
                    batch["panoptic"][i].cpu().numpy(),
                    batch["segments"][i].cpu().numpy(),
                    cats,
                    1,
                )

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.enabled:
            return
        parts = (self._anns["pred"], self._anns["gt"], self._images)
        if dist.is_available() and dist.is_initialized() and trainer.world_size > 1:
            gathered: list[Any] = [None] * trainer.world_size
            dist.all_gather_object(gathered, parts)
            parts = tuple([x for g in gathered for x in g[j]] for j in range(3))
        if not trainer.is_global_zero:
            return
        pred, gt, images = parts
        cats, names, things = self._facts(trainer, pl_module)
        palette = data_fact(trainer, "palette")
        categories = categories_json(names, cats, things, palette)
        write_panoptic_json(self.dirpath / f"{self.name}.json", pred, categories, images)
        if self.ground_truth:
            write_panoptic_json(self.dirpath / f"{self.name}_gt.json", gt, categories, images)
        log.info("panoptic predictions written to %s", self.dirpath / f"{self.name}.json")
