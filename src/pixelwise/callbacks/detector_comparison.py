"""Test-time comparison table: the model vs classical detectors (Harris, Shi-Tomasi, FAST), scored by the same metric."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

import lightning as L

from pixelwise.callbacks.keypoints import KeypointAPSettings
from pixelwise.metrics.keypoint_ap import KeypointAP
from pixelwise.tasks.outputs import KeypointOutput

__all__ = ["DetectorComparison", "comparison_table"]


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
    """At test, a ``KeypointAP`` per model: the task's points and each classical baseline's.

    The task runs the baselines (``task.baselines``, e.g. ``[harris, shi, fast]``: MagicPointTask
    scores ``pixelwise.nets.ClassicalDetector`` heatmaps through its own extraction) and hands
    their points over in ``KeypointOutput.baselines``; this callback feeds them and the model's
    points to ``KeypointAP`` metrics with the given ``distance`` / ``loc_score_threshold`` /
    ``groups``. ``methods``: the baselines to report (null: every one the task gives; a name the
    task does not give is an error). Logs ``test/<prefix><method>/map`` and
    ``test/<prefix><method>/localization_error`` and writes ``<output_dir>/<filename>.md`` and
    ``.csv`` (rows: the model under ``model_name``, then the methods; columns: map,
    localization_error, map/<group>...). ``output_dir`` defaults to the trainer's
    ``default_root_dir`` (the run directory). ``table`` keeps the last rows.
    """

    def __init__(
        self,
        methods: Sequence[str] | None = None,
        model_name: str = "model",
        distance: float = 4.0,
        loc_score_threshold: float = 0.5,
        min_score: float = 1e-4,
        groups: Sequence[str] | None = None,
        group_key: str = "primitive",
        prefix: str = "",
        filename: str = "detector_comparison",
        output_dir: str | None = None,
    ) -> None:
        self.methods = None if methods is None else [str(m) for m in methods]
        if self.methods is not None and model_name in self.methods:
            raise ValueError(
                f"DetectorComparison: model_name={model_name!r} clashes with a method name {self.methods}"
            )
        self.model_name = model_name
        self.settings = KeypointAPSettings(
            "DetectorComparison",
            group_key,
            distance=distance,
            loc_score_threshold=loc_score_threshold,
            min_score=min_score,
            groups=list(groups) if groups else None,
        )
        self.prefix = prefix
        self.filename = filename
        self.output_dir = output_dir
        self.metrics: dict[str, KeypointAP] = {}
        self.table: dict[str, dict[str, float]] = {}
        self._device = None

    def _metric(self, name: str) -> KeypointAP:
        if name not in self.metrics:
            self.metrics[name] = self.settings.new_metric(self._device)
        return self.metrics[name]

    def _baselines(self, outputs: KeypointOutput) -> dict[str, KeypointOutput]:
        if self.methods is None:
            return dict(outputs.baselines)
        missing = [m for m in self.methods if m not in outputs.baselines]
        if missing:
            raise ValueError(
                f"DetectorComparison: the task ran no {missing} baseline (it gave "
                f"{sorted(outputs.baselines)}): add them to task.baselines"
            )
        return {m: outputs.baselines[m] for m in self.methods}

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._device = pl_module.device
        self.metrics = {}
        self._metric(self.model_name)
        for method in self.methods or ():
            self._metric(method)

    def on_test_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        gt = list(batch["keypoints"])
        groups = self.settings.batch_groups(batch, len(gt))
        for name, out in {self.model_name: outputs, **self._baselines(outputs)}.items():
            self._metric(name).update(
                [k.cpu() for k in out.keypoints], [s.cpu() for s in out.scores], gt, groups
            )

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.table = {}
        for name, metric in self.metrics.items():
            values = metric.compute()
            self.table[name] = {k: float(v) for k, v in values.items() if v.numel() == 1}
        for method in self.table:
            if method == self.model_name:
                continue
            for key in ("map", "localization_error"):
                v = self.table[method][key]
                if math.isfinite(v):
                    pl_module.log(f"test/{self.prefix}{method}/{key}", v, sync_dist=False)
        columns = ["map", "map_one_to_one", "localization_error"] + [
            f"map/{g}" for g in (self.settings.groups or [])
        ]
        markdown, rows = comparison_table(self.table, columns)
        if trainer.is_global_zero:
            out = Path(self.output_dir or trainer.default_root_dir)
            out.mkdir(parents=True, exist_ok=True)
            (out / f"{self.filename}.md").write_text(markdown)
            with (out / f"{self.filename}.csv").open("w", newline="") as f:
                csv.writer(f).writerows(rows)
        self.metrics = {}
