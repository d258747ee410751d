"""Feed a detector's (and its teacher's) detections on image pairs to Repeatability; log both and the gain."""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L

from pixelwise.callbacks.stages import StageCallback
from pixelwise.metrics.repeatability import RepeatabilityGain, top_k_for_area
from pixelwise.tasks.outputs import AdaptationOutput

__all__ = ["RepeatabilityMetrics"]


class RepeatabilityMetrics(StageCallback):
    """Repeatability (the SuperPoint paper's, ``pixelwise.metrics.Repeatability``) of each model in the step outputs.

    The validation/test step returns an :class:`~pixelwise.tasks.outputs.AdaptationOutput`:
    per model name in ``models`` (e.g. ``"student"``, ``"teacher"``) a
    :class:`~pixelwise.tasks.outputs.PairDetections` in ``outputs.detections[name]``, plus
    ``homography`` [B,3,3] (a -> b), ``shape`` (H, W) and ``ok`` (bool [B], False: skip the pair).
    Logs ``<stage>/repeatability`` and ``<stage>/localization_error`` for the first model,
    ``<stage>/<name>_repeatability`` (and ``_localization_error``) for the others, and
    ``<stage>/repeatability_gain``: first model / second model - 1 (the paper's "+21%"), all
    computed by one :class:`~pixelwise.metrics.repeatability.RepeatabilityGain`.
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
        if top_k_size is not None and (len(top_k_size) != 2 or min(top_k_size) < 1):
            raise ValueError(
                f"RepeatabilityMetrics.top_k_size={top_k_size}: expected null or [H, W] > 0"
            )
        self.kwargs = dict(
            models=tuple(models), distance=distance, top_k=top_k, top_k_size=top_k_size
        )
        RepeatabilityGain(**self.kwargs)  # bad arguments fail at construction
        self.models = tuple(models)
        self.metrics: dict[str, RepeatabilityGain] = {}
        self.results: dict[str, dict[str, float]] = {}

    def _start(self, stage: str, pl_module: L.LightningModule) -> None:
        self.metrics[stage] = RepeatabilityGain(**self.kwargs).to(pl_module.device)

    def top_k_for(self, shape: Sequence[int]) -> int | None:
        """Points kept per image of ``shape`` (H, W): ``top_k`` scaled by area to ``top_k_size``."""
        return top_k_for_area(self.kwargs["top_k"], shape, self.kwargs["top_k_size"])

    def _update(self, stage: str, outputs: AdaptationOutput) -> None:
        keep = [i for i, v in enumerate(outputs.ok.tolist()) if v]
        if not keep:
            return
        missing = [m for m in self.models if m not in outputs.detections]
        if missing:
            raise KeyError(
                f"RepeatabilityMetrics: the step outputs have no {missing[0]!r} detections "
                f"(got {sorted(outputs.detections)}); set callbacks.repeatability.models"
            )
        detections = {}
        for m in self.models:
            d = outputs.detections[m].select(keep)
            detections[m] = (d.keypoints_a, d.scores_a, d.keypoints_b, d.scores_b)
        self.metrics[stage].update(detections, outputs.homography[keep], outputs.shape)

    def _log(self, stage: str, pl_module: L.LightningModule) -> None:
        result = self.metrics[stage].compute()
        self.metrics[stage].reset()
        values: dict[str, float] = {}
        for k, m in enumerate(self.models):
            prefix = f"{stage}/" if k == 0 else f"{stage}/{m}_"
            values[f"{prefix}repeatability"] = float(result[f"{m}/repeatability"])
            values[f"{prefix}localization_error"] = float(result[f"{m}/localization_error"])
        if "gain" in result:
            values[f"{stage}/repeatability_gain"] = float(result["gain"])
        for key, value in values.items():
            pl_module.log(key, value, sync_dist=False)  # already reduced over ranks by compute()
        self.results[stage] = values

    def stage_start(self, stage: str, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start(stage, pl_module)

    def stage_batch_end(self, stage, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._update(stage, outputs)

    def stage_end(self, stage: str, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if stage == "val" and trainer.sanity_checking:
            self.metrics[stage].reset()
            return
        self._log(stage, pl_module)
