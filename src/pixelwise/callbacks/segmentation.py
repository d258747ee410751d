"""Feed segmentation predictions to torchmetrics; log IoU, iIoU and category scalars and a W&B class table."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import MulticlassConfusionMatrix, MulticlassJaccardIndex

from pixelwise.callbacks.data_info import data_fact
from pixelwise.callbacks.options import check_at_least
from pixelwise.callbacks.stages import StageCallback
from pixelwise.callbacks.wandb_media import wandb_loggers
from pixelwise.metrics import CategoryInstanceIoU, CategoryIoU, InstanceIoU

log = logging.getLogger("pixelwise")

# Dataset facts the callback takes from the data when its own argument is None.
FACTS: tuple[str, ...] = (
    "instance_classes",
    "class_to_category",
    "category_names",
    "mean_instance_size",
)
# `mean_instance_size="observed"`: measure N̄_c on the evaluated data even if the dataset ships a table.
OBSERVED = "observed"
TABLE_COLUMNS: tuple[str, ...] = ("class", "category", "iou", "iiou", "pixel_frequency")


def metric_key(name: str) -> str:
    """A class or category name as part of a logged key: lowercase, spaces -> underscores."""
    return "_".join(str(name).lower().split())


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


class SegmentationMetrics(StageCallback):
    """IoU, iIoU and category IoU of validation and test predictions (all torchmetrics).

    Logs `<stage>/miou` and `<stage>/iou/<class>` always; when the data defines instance
    classes also `<stage>/iiou` and `<stage>/iiou/<class>`; when it defines categories
    `<stage>/category_miou`, `<stage>/category_iou/<category>`, and with instances
    `<stage>/category_iiou`, `<stage>/category_iiou/<category>`. Class names in keys are
    lowercase with `_` for spaces. A value that is NaN (a class absent from prediction and
    ground truth; iIoU when no ground-truth instance was seen) is not logged.

    Dataset facts (`instance_classes`, `class_to_category`, `category_names`,
    `mean_instance_size`) left None here come from `trainer.datamodule.info` (the data
    config, else the dataset's attributes); pass an empty list to switch one off, and
    `mean_instance_size="observed"` to measure N̄_c on the evaluated data.

    All states are sums (confusion matrix, iIoU sums), and the values are computed from the
    synced states, so under DDP (with the DataModule's unrepeated sampler) every rank logs the
    single-process value without `sync_dist`. A table with one row per class (IoU, iIoU, pixel
    frequency) goes to W&B loggers at test end and every `table_every_n_epochs` validations.
    """

    def __init__(
        self,
        num_classes: int,
        class_names: Sequence[str] | None = None,
        ignore_index: int = 255,
        instance_classes: Sequence[int] | None = None,
        class_to_category: Sequence[int] | None = None,
        category_names: Sequence[str] | None = None,
        mean_instance_size: Mapping[int, float] | str | None = None,
        table_every_n_epochs: int = 5,
    ) -> None:
        self.num_classes = num_classes
        self.class_names = (
            list(class_names) if class_names else [str(i) for i in range(num_classes)]
        )
        if len(self.class_names) != num_classes:
            raise ValueError(
                f"SegmentationMetrics: {len(self.class_names)} class names for {num_classes} classes"
            )
        check_at_least("SegmentationMetrics", "table_every_n_epochs", table_every_n_epochs, 1)
        if isinstance(mean_instance_size, str) and mean_instance_size != OBSERVED:
            raise ValueError(
                f"SegmentationMetrics.mean_instance_size={mean_instance_size!r}: expected a "
                f"{{class id: mean pixels}} table, {OBSERVED!r} or null (from the data)"
            )
        self.ignore_index = ignore_index
        self.table_every_n_epochs = table_every_n_epochs
        self.given: dict[str, Any] = {
            "instance_classes": instance_classes,
            "class_to_category": class_to_category,
            "category_names": category_names,
            "mean_instance_size": mean_instance_size,
        }
        self.facts: dict[str, Any] = {}
        self.metrics: dict[str, dict[str, Metric]] = {}
        self.results: dict[str, dict[str, float]] = {}
        self.tables: dict[str, list[list[Any]]] = {}
        self.validations = 0
        self._warned: set[str] = set()

    # ---- configuration -------------------------------------------------------------------

    def resolve_facts(self, trainer: Any) -> dict[str, Any]:
        """The dataset facts in use: this callback's arguments, else `trainer.datamodule.info`; validated."""
        raw = {
            name: value if value is not None else data_fact(trainer, name)
            for name, value in self.given.items()
        }
        where = "(SegmentationMetrics argument, else data.{0} or the dataset's attribute)"
        k = self.num_classes
        instance_classes = [int(c) for c in raw["instance_classes"] or ()]
        bad = [c for c in instance_classes if not 0 <= c < k]
        if bad:
            raise ValueError(
                f"instance_classes {where.format('instance_classes')}: {bad} are not classes in "
                f"[0, {k})"
            )
        table = raw["class_to_category"]
        names = raw["category_names"]
        if table is not None and len(table) == 0:
            table = None
        if table is not None:
            table = [int(c) for c in table]
            if len(table) != k:
                raise ValueError(
                    f"class_to_category {where.format('class_to_category')} has {len(table)} "
                    f"entries; expected one per class (num_classes={k})"
                )
            if min(table) < 0:
                raise ValueError(
                    f"class_to_category {where.format('class_to_category')}: category "
                    f"{min(table)} is negative"
                )
            names = [str(n) for n in names] if names else [str(i) for i in range(max(table) + 1)]
            if max(table) >= len(names):
                raise ValueError(
                    f"class_to_category {where.format('class_to_category')} uses category "
                    f"{max(table)} but category_names has {len(names)} names: {names}"
                )
        sizes = raw["mean_instance_size"]
        if isinstance(sizes, str) or not instance_classes:
            sizes = None
        elif sizes is not None:
            sizes = {int(c): float(v) for c, v in dict(sizes).items()}
        self.facts = {
            "instance_classes": instance_classes,
            "class_to_category": table,
            "category_names": names if table is not None else None,
            "mean_instance_size": sizes,
        }
        return self.facts

    def make_metrics(self) -> dict[str, Metric]:
        """Fresh metrics for one stage from the resolved facts (call `resolve_facts` first)."""
        kw = dict(num_classes=self.num_classes, ignore_index=self.ignore_index, validate_args=False)
        # compute_groups: the three share one confusion-matrix state, updated once per batch.
        metrics: dict[str, Metric] = {
            "jaccard": MetricCollection(
                {
                    "iou": MulticlassJaccardIndex(average="none", **kw),
                    "miou": MulticlassJaccardIndex(average="macro", **kw),
                    "confmat": MulticlassConfusionMatrix(**kw),
                },
                compute_groups=True,
            )
        }
        facts = self.facts
        inst, table = facts["instance_classes"], facts["class_to_category"]
        sizes = facts["mean_instance_size"]
        if inst:
            metrics["iiou"] = InstanceIoU(
                self.num_classes, inst, ignore_index=self.ignore_index, mean_instance_size=sizes
            )
        if table is not None:
            num_categories = len(facts["category_names"])
            metrics["category"] = CategoryIoU(table, num_categories, ignore_index=self.ignore_index)
            if inst:
                metrics["category_iiou"] = CategoryInstanceIoU(
                    table,
                    num_categories,
                    inst,
                    ignore_index=self.ignore_index,
                    mean_instance_size=sizes,
                )
        return metrics

    # ---- per stage -----------------------------------------------------------------------

    def _start(self, stage: str, trainer: Any, pl_module: L.LightningModule) -> None:
        self.resolve_facts(trainer)
        self.metrics[stage] = {k: m.to(pl_module.device) for k, m in self.make_metrics().items()}

    def _update(self, stage: str, outputs: dict[str, Any], batch: dict[str, Any]) -> None:
        metrics = self.metrics[stage]
        preds, target = outputs.preds, batch["mask"]
        metrics["jaccard"].update(preds, target)
        if "category" in metrics:
            metrics["category"].update(preds, target)
        if "iiou" in metrics:
            instances = batch.get("instances")
            if instances is None:
                raise ValueError(
                    "SegmentationMetrics: instance_classes are set "
                    f"({self.facts['instance_classes']}) but the batch has no 'instances'; the "
                    "dataset must return an instance map, or set instance_classes: [] "
                    "(callbacks.segmentation_metrics.instance_classes or data.instance_classes)"
                )
            metrics["iiou"].update(preds, target, instances)
            if "category_iiou" in metrics:
                metrics["category_iiou"].update(preds, target, instances)

    @staticmethod
    def _instances_seen(metric: Metric) -> int:
        """Ground-truth instances counted over all processes (a collective under DDP)."""
        with metric.sync_context():
            return int(metric.instance_count.sum())

    def compute(self, stage: str) -> tuple[dict[str, float], list[list[Any]]]:
        """Scalars by logged key (NaN left out) and the per-class table rows of a stage; resets its metrics."""
        metrics = self.metrics[stage]
        values = metrics["jaccard"].compute()
        conf = values["confmat"].double()
        present = ((conf.sum(0) + conf.sum(1)) > 0).tolist()
        pixels = conf.sum(1)
        freq = (pixels / pixels.sum().clamp(min=1)).tolist()
        iou = values["iou"].tolist()
        scalars: dict[str, float] = {f"{stage}/miou": float(values["miou"])}
        for name, value, seen in zip(self.class_names, iou, present):
            if seen:
                scalars[f"{stage}/iou/{metric_key(name)}"] = value
        iiou = [None] * self.num_classes
        if "iiou" in metrics:
            if self._instances_seen(metrics["iiou"]) > 0:
                out = metrics["iiou"].compute()
                scalars[f"{stage}/iiou"] = float(out["iiou"])
                iiou = [_finite(v) for v in out["iiou_per_class"].tolist()]
                for c in self.facts["instance_classes"]:
                    if iiou[c] is not None:
                        scalars[f"{stage}/iiou/{metric_key(self.class_names[c])}"] = iiou[c]
            else:
                self._warn(f"{stage}/iiou", "no ground-truth instance was seen; not logged")
        categories = self.facts["category_names"]
        if "category" in metrics:
            out = metrics["category"].compute()
            scalars[f"{stage}/category_miou"] = float(out["category_miou"])
            for name, value in zip(categories, out["category_iou_per_category"].tolist()):
                scalars[f"{stage}/category_iou/{metric_key(name)}"] = value
        if "category_iiou" in metrics:
            if self._instances_seen(metrics["category_iiou"]) > 0:
                out = metrics["category_iiou"].compute()
                scalars[f"{stage}/category_iiou"] = float(out["category_iiou"])
                for name, value in zip(categories, out["category_iiou_per_category"].tolist()):
                    scalars[f"{stage}/category_iiou/{metric_key(name)}"] = value
            else:
                self._warn(
                    f"{stage}/category_iiou", "no ground-truth instance was seen; not logged"
                )
        for key in [k for k, v in scalars.items() if not math.isfinite(v)]:
            if "/" not in key[len(stage) + 1 :]:  # a mean, not one class: worth a warning
                self._warn(key, "is NaN (nothing to evaluate); not logged")
            del scalars[key]
        table = self.facts["class_to_category"]
        rows = [
            [
                name,
                categories[table[c]] if table is not None else None,
                iou[c] if present[c] else None,
                iiou[c],
                freq[c],
            ]
            for c, name in enumerate(self.class_names)
        ]
        for metric in metrics.values():
            metric.reset()
        return scalars, rows

    def _warn(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning("%s: %s", key, message)

    def _log(self, stage: str, trainer: Any, pl_module: L.LightningModule) -> None:
        scalars, rows = self.compute(stage)
        # Values come from synced states, identical on every rank: no sync_dist needed.
        for key, value in scalars.items():
            pl_module.log(key, value, sync_dist=False)
        self.results[stage] = scalars
        self.tables[stage] = rows
        if stage == "val":
            self.validations += 1
            due = (self.validations - 1) % self.table_every_n_epochs == 0
        else:
            due = True
        if due and getattr(trainer, "is_global_zero", True):
            self._log_table(stage, trainer, rows)

    def _log_table(self, stage: str, trainer: Any, rows: list[list[Any]]) -> None:
        loggers = wandb_loggers(trainer)
        columns = list(TABLE_COLUMNS)
        if self.facts["class_to_category"] is None:
            columns.remove("category")
            rows = [row[:1] + row[2:] for row in rows]
        for logger in loggers:
            logger.log_table(
                key=f"{stage}/per_class", columns=columns, data=rows, step=trainer.global_step
            )

    # ---- Lightning hooks -----------------------------------------------------------------

    def stage_start(self, stage: str, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start(stage, trainer, pl_module)

    def stage_batch_end(self, stage, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if stage == "val" and trainer.sanity_checking:
            return  # the sanity check's few batches are not logged: skip their cost
        self._update(stage, outputs, batch)

    def stage_end(self, stage: str, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if stage == "val" and trainer.sanity_checking:
            return
        self._log(stage, trainer, pl_module)


__all__ = ["SegmentationMetrics", "metric_key", "FACTS", "TABLE_COLUMNS"]
