"""Test-time comparison table: the model vs Harris, Shi-Tomasi and FAST, scored by the same code on the same images."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L

from pixelwise.geometry.keypoints import extract_keypoints
from pixelwise.metrics.keypoint_ap import KeypointAP
from pixelwise.nets.classical_detectors import ClassicalDetector

__all__ = ["DetectorComparison", "comparison_table"]

_EXTRACTION = ("detection_threshold", "nms_radius", "border", "top_k")


def comparison_table(
    rows: dict[str, dict[str, float]], columns: Sequence[str]
) -> tuple[str, list[list[str]]]:
    """{method: {column: value}} -> (markdown table, CSV rows with a header); NaN/missing shown as '-'."""
    header = ["method", *columns]
    body = []
    for method, values in rows.items():
        cells = [method]
        for col in columns:
            v = values.get(col, float("nan"))
            cells.append("-" if not math.isfinite(v) else f"{v:.4f}")
        body.append(cells)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines) + "\n", [header, *body]


class DetectorComparison(L.Callback):
    """At test, score classical detectors through the model's own extraction and KeypointAP.

    Every test batch's images go through ``ClassicalDetector(method)`` for each of ``methods``;
    the heatmaps are turned into keypoints by ``extract_keypoints`` with the task's
    ``detection_threshold``, ``nms_radius``, ``border`` and ``top_k`` (read from the task's
    hparams; the arguments of the same names here are the fallback for tasks without them), and
    fed to a ``KeypointAP`` with the given ``distance`` / ``loc_score_threshold`` / ``groups``,
    next to one fed with the model's outputs {"keypoints", "scores"}. Logs
    ``test/<prefix><method>/map`` and ``test/<prefix><method>/localization_error`` and writes
    ``<output_dir>/<filename>.md`` and ``.csv`` (rows: the model under ``model_name``, then the
    methods; columns: map, localization_error, map/<group>...). ``output_dir`` defaults to the
    trainer's ``default_root_dir`` (the run directory). ``table`` keeps the last rows.
    """

    def __init__(
        self,
        methods: Sequence[str] = ("harris", "shi", "fast"),
        model_name: str = "model",
        distance: float = 4.0,
        loc_score_threshold: float = 0.5,
        min_score: float = 1e-4,
        groups: Sequence[str] | None = None,
        group_key: str = "primitive",
        prefix: str = "",
        filename: str = "detector_comparison",
        output_dir: str | None = None,
        detection_threshold: float = 0.001,
        nms_radius: int = 4,
        border: int = 0,
        top_k: int | None = None,
    ) -> None:
        self.detectors = {m: ClassicalDetector(m) for m in methods}  # unknown names fail here
        if model_name in self.detectors:
            raise ValueError(
                f"DetectorComparison: model_name={model_name!r} clashes with a method name {list(methods)}"
            )
        self.model_name = model_name
        self.metric_kwargs = dict(
            distance=distance,
            loc_score_threshold=loc_score_threshold,
            min_score=min_score,
            groups=list(groups) if groups else None,
        )
        KeypointAP(**self.metric_kwargs)
        self.group_key = group_key
        self.prefix = prefix
        self.filename = filename
        self.output_dir = output_dir
        self.extraction = dict(
            detection_threshold=detection_threshold,
            nms_radius=nms_radius,
            border=border,
            top_k=top_k,
        )
        self.metrics: dict[str, KeypointAP] = {}
        self.table: dict[str, dict[str, float]] = {}

    def _settings(self, pl_module: L.LightningModule) -> dict[str, Any]:
        hp = getattr(pl_module, "hparams", {}) or {}
        return {k: hp.get(k, self.extraction[k]) for k in _EXTRACTION}

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        names = [self.model_name, *self.detectors]
        # on the module's device, so that a DDP all-gather (e.g. NCCL) sees device tensors
        self.metrics = {n: KeypointAP(**self.metric_kwargs).to(pl_module.device) for n in names}

    def on_test_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        gt = list(batch["keypoints"])
        groups = None
        if self.metric_kwargs["groups"] and self.group_key in batch:
            groups = list(batch[self.group_key])
        self.metrics[self.model_name].update(
            [k.cpu() for k in outputs["keypoints"]],
            [s.cpu() for s in outputs["scores"]],
            gt,
            groups,
        )
        s = self._settings(pl_module)
        images = batch["image"].detach().cpu().float()
        for method, detector in self.detectors.items():
            heat = detector(images)
            dets = extract_keypoints(
                heat,
                threshold=s["detection_threshold"],
                nms_radius=s["nms_radius"],
                border=s["border"],
                top_k=s["top_k"],
            )
            self.metrics[method].update(
                [d["keypoints"] for d in dets], [d["scores"] for d in dets], gt, groups
            )

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.table = {}
        for name, metric in self.metrics.items():
            values = metric.compute()
            self.table[name] = {k: float(v) for k, v in values.items() if v.numel() == 1}
        for method in self.detectors:
            for key in ("map", "localization_error"):
                v = self.table[method][key]
                if math.isfinite(v):
                    pl_module.log(f"test/{self.prefix}{method}/{key}", v, sync_dist=False)
        columns = ["map", "localization_error"] + [
            f"map/{g}" for g in (self.metric_kwargs["groups"] or [])
        ]
        markdown, rows = comparison_table(self.table, columns)
        if trainer.is_global_zero:
            out = Path(self.output_dir or trainer.default_root_dir)
            out.mkdir(parents=True, exist_ok=True)
            (out / f"{self.filename}.md").write_text(markdown)
            with (out / f"{self.filename}.csv").open("w", newline="") as f:
                csv.writer(f).writerows(rows)
        self.metrics = {}
