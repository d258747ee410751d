"""Feed a detector's (and its teacher's) detections on image pairs to Repeatability; log both and the gain."""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L

from pixelwise.metrics.repeatability import Repeatability, relative_gain, top_k_for_area
from pixelwise.tasks.outputs import AdaptationOutput

__all__ = ["RepeatabilityMetrics"]


class RepeatabilityMetrics(L.Callback):
    """Repeatability (the SuperPoint paper's, ``pixelwise.metrics.Repeatability``) of each model in the step outputs.

    The validation/test step returns an :class:`~pixelwise.tasks.outputs.AdaptationOutput`:
    per model name in ``models`` (e.g. ``"student"``, ``"teacher"``) a
    :class:`~pixelwise.tasks.outputs.PairDetections` in ``outputs.detections[name]``, plus
    ``homography`` [B,3,3] (a -> b), ``shape`` (H, W) and ``ok`` (bool [B], False: skip the pair).
    Logs ``<stage>/repeatability`` and ``<stage>/localization_error`` for the first model,
    ``<stage>/<name>_repeatability`` (and ``_localization_error``) for the others, and
    ``<stage>/repeatability_gain``: first model / second model - 1 (the paper's "+21%").
    ``results[stage]`` keeps the last values. DDP-correct (metric states are summed).

    ``top_k`` points are kept per image of size ``top_k_size`` (the paper: 300 at 240x320); for
    another image size the number is scaled by the area (75 at 120x160), so the density of
    points, which repeatability depends on, stays the paper's. ``top_k_size=None``: ``top_k`` as is.
    """

    def __init__(
        self,
        distance: float = 3.0,
        top_k: int | None = 300,
        models: Sequence[str] = ("student", "teacher"),
        top_k_size: Sequence[int] | None = None,
    ) -> None:
        if not models:
            raise ValueError("RepeatabilityMetrics.models: expected at least one model name")
        self.distance = distance
        self.top_k = top_k
        self.models = tuple(models)
        if top_k_size is not None and (len(top_k_size) != 2 or min(top_k_size) < 1):
            raise ValueError(
                f"RepeatabilityMetrics.top_k_size={top_k_size}: expected null or [H, W] > 0"
            )
        self.top_k_size = None if top_k_size is None else (int(top_k_size[0]), int(top_k_size[1]))
        # bad arguments fail at construction
        Repeatability(distance=distance, top_k=top_k, top_k_size=self.top_k_size)
        self.metrics: dict[str, dict[str, Repeatability]] = {}
        self.results: dict[str, dict[str, float]] = {}

    def _start(self, stage: str, pl_module: L.LightningModule) -> None:
        self.metrics[stage] = {
            m: Repeatability(
                self.distance, self.top_k, localization_error=True, top_k_size=self.top_k_size
            ).to(pl_module.device)
            for m in self.models
        }

    def top_k_for(self, shape: Sequence[int]) -> int | None:
        """Points kept per image of ``shape`` (H, W): ``top_k`` scaled by area to ``top_k_size``."""
        return top_k_for_area(self.top_k, shape, self.top_k_size)

    def _update(self, stage: str, outputs: AdaptationOutput) -> None:
        keep = [i for i, v in enumerate(outputs.ok.tolist()) if v]
        if not keep:
            return
        for m in self.models:
            if m not in outputs.detections:
                raise KeyError(
                    f"RepeatabilityMetrics: the step outputs have no {m!r} detections "
                    f"(got {sorted(outputs.detections)}); set callbacks.repeatability.models"
                )
            d = outputs.detections[m].select(keep)
            self.metrics[stage][m].update(
                d.keypoints_a,
                d.scores_a,
                d.keypoints_b,
                d.scores_b,
                outputs.homography[keep],
                outputs.shape,
            )

    def _log(self, stage: str, pl_module: L.LightningModule) -> None:
        values: dict[str, float] = {}
        for k, m in enumerate(self.models):
            result = self.metrics[stage][m].compute()
            prefix = f"{stage}/" if k == 0 else f"{stage}/{m}_"
            values[f"{prefix}repeatability"] = float(result["repeatability"])
            values[f"{prefix}localization_error"] = float(result["localization_error"])
            self.metrics[stage][m].reset()
        if len(self.models) > 1:
            values[f"{stage}/repeatability_gain"] = relative_gain(
                values[f"{stage}/repeatability"], values[f"{stage}/{self.models[1]}_repeatability"]
            )
        for key, value in values.items():
            pl_module.log(key, value, sync_dist=False)  # already reduced over ranks by compute()
        self.results[stage] = values

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start("val", pl_module)

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        self._update("val", outputs)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            for metric in self.metrics["val"].values():
                metric.reset()
            return
        self._log("val", pl_module)

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start("test", pl_module)

    def on_test_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        self._update("test", outputs)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._log("test", pl_module)
