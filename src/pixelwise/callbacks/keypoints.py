"""Feed detected keypoints to KeypointAP; log mAP, localization error, P-R curve and detections to W&B."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import lightning as L
import numpy as np
import torch

from pixelwise.callbacks.options import check_at_least
from pixelwise.callbacks.stages import StageCallback
from pixelwise.callbacks.wandb_media import log_images, log_pr_curve, wandb_loggers
from pixelwise.metrics.keypoint_ap import KeypointAP
from pixelwise.tasks.outputs import KeypointOutput

__all__ = ["KeypointAPSettings", "KeypointMetrics", "draw_detections"]

_GT_COLOUR = (0, 200, 0)
_PRED_COLOUR = (255, 40, 40)


def draw_detections(
    image: torch.Tensor,
    keypoints: torch.Tensor,
    scores: torch.Tensor,
    gt_keypoints: torch.Tensor | None = None,
    threshold: float = 0.015,
    scale: int = 2,
) -> np.ndarray:
    """image [1|3,H,W] in [0,1], detections [N,2] (x,y) with scores [N], ground truth [M,2] -> uint8 RGB [sH,sW,3].

    Ground truth as green circles, detections with ``score >= threshold`` as red dots; the image
    is enlarged ``scale`` times (nearest) so that 120x160 panels stay readable.
    """
    if image.dim() != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"draw_detections: expected image [1|3, H, W], got {list(image.shape)}")
    array = (image.detach().float().clamp(0, 1) * 255).round().byte().cpu().numpy()
    array = np.transpose(array, (1, 2, 0))
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    h, w = array.shape[:2]
    canvas = np.ascontiguousarray(
        cv2.resize(array, (w * scale, h * scale), interpolation=cv2.INTER_NEAREST)
    )

    def centre(p: np.ndarray) -> tuple[int, int]:
        # pixel centres at integer coordinates: pixel x covers [x*s, (x+1)*s) after scaling
        return int(round((p[0] + 0.5) * scale - 0.5)), int(round((p[1] + 0.5) * scale - 0.5))

    if gt_keypoints is not None:
        for p in gt_keypoints.detach().cpu().double().numpy().reshape(-1, 2):
            cv2.circle(canvas, centre(p), 2 * scale, _GT_COLOUR, 1, lineType=cv2.LINE_AA)
    keep = scores.detach().cpu() >= threshold
    for p in keypoints.detach().cpu().double().numpy().reshape(-1, 2)[keep.numpy()]:
        cv2.circle(canvas, centre(p), max(1, scale), _PRED_COLOUR, -1, lineType=cv2.LINE_AA)
    return canvas


class KeypointAPSettings:
    """The options of a callback's ``KeypointAP`` metrics and the batch entry that groups the images.

    ``options`` are KeypointAP's keyword arguments (``groups`` among them: the group names scored
    separately); ``group_key`` names the batch entry with each image's group (the primitive of a
    Synthetic Shapes image). ``owner`` names the callback in error messages.
    """

    def __init__(self, owner: str, group_key: str, **options: Any) -> None:
        KeypointAP(**options)  # bad arguments fail at construction, not after an epoch
        self.owner = owner
        self.group_key = group_key
        self.options = options

    @property
    def groups(self) -> list[str] | None:
        """The groups scored separately (None: none)."""
        return self.options.get("groups")

    def new_metric(self, device: torch.device | str | None) -> KeypointAP:
        """A fresh KeypointAP on ``device`` (the module's, so a DDP all-gather sees device tensors)."""
        return KeypointAP(**self.options).to(device)

    def batch_groups(self, batch: dict[str, Any], n: int) -> list[str] | None:
        """The group of each of the batch's ``n`` images, or None without groups or the batch entry."""
        if not self.groups or self.group_key not in batch:
            return None
        groups = list(batch[self.group_key])
        if len(groups) != n:
            raise ValueError(
                f"{self.owner}: batch[{self.group_key!r}] has {len(groups)} entries for {n} images"
            )
        return groups


class KeypointMetrics(StageCallback):
    """KeypointAP on validation and test from the task's ``KeypointOutput`` and the batch's ground truth.

    Logs ``<stage>/map``, ``<stage>/localization_error`` and, when ``groups`` are given and the
    batch has a ``group_key`` entry (the primitive of each Synthetic Shapes image),
    ``<stage>/map/<group>`` and ``<stage>/localization_error/<group>`` (groups that received no
    image, or whose value is NaN, are not logged). ``prefix`` is inserted after the stage
    (``test/<prefix>map``), e.g. ``noise/`` for a second evaluation with noise. On W&B loggers
    it also logs the P-R curve (a line plot over score thresholds) and ``max_images`` validation
    images with ground truth (green) and detections with ``score >= draw_threshold`` (red),
    every ``every_n_epochs`` validation epochs and at test. ``results[stage]`` keeps the last
    scalars and ``curves[stage]`` the last (thresholds, precision, recall).
    """

    def __init__(
        self,
        distance: float = 4.0,
        loc_score_threshold: float = 0.5,
        min_score: float = 1e-4,
        num_thresholds: int = 101,
        groups: Sequence[str] | None = None,
        group_key: str = "primitive",
        prefix: str = "",
        every_n_epochs: int = 1,
        max_images: int = 4,
        draw_threshold: float = 0.015,
    ) -> None:
        check_at_least("KeypointMetrics", "every_n_epochs", every_n_epochs, 1)
        check_at_least("KeypointMetrics", "max_images", max_images, 0)
        self.settings = KeypointAPSettings(
            "KeypointMetrics",
            group_key,
            distance=distance,
            loc_score_threshold=loc_score_threshold,
            min_score=min_score,
            num_thresholds=num_thresholds,
            groups=list(groups) if groups else None,
        )
        self.prefix = prefix
        self.every_n_epochs = every_n_epochs
        self.max_images = max_images
        self.draw_threshold = draw_threshold
        self.metrics: dict[str, KeypointAP] = {}
        self.results: dict[str, dict[str, float]] = {}
        self.curves: dict[str, dict[str, torch.Tensor]] = {}
        self._panels: list[np.ndarray] = []

    # -- shared -------------------------------------------------------------------------------

    def _start(self, stage: str, pl_module: L.LightningModule) -> None:
        self.metrics[stage] = self.settings.new_metric(pl_module.device)
        self._panels = []

    def _update(self, stage: str, outputs: KeypointOutput, batch: dict[str, Any]) -> None:
        n = len(outputs.keypoints)
        self.metrics[stage].update(
            outputs.keypoints,
            outputs.scores,
            list(batch["keypoints"]),
            self.settings.batch_groups(batch, n),
        )

    def _collect_panels(self, outputs: KeypointOutput, batch: dict[str, Any]) -> None:
        for i in range(min(self.max_images - len(self._panels), len(outputs.keypoints))):
            self._panels.append(
                draw_detections(
                    batch["image"][i],
                    outputs.keypoints[i],
                    outputs.scores[i],
                    batch["keypoints"][i],
                    threshold=self.draw_threshold,
                )
            )

    def _media_due(self, trainer: L.Trainer, stage: str) -> bool:
        if not wandb_loggers(trainer) or not trainer.is_global_zero or self.max_images == 0:
            return False
        if stage == "test":
            return True
        return not trainer.sanity_checking and trainer.current_epoch % self.every_n_epochs == 0

    def _log(self, stage: str, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        values = self.metrics[stage].compute()
        base = f"{stage}/{self.prefix}"
        scalars = {}
        for key, value in values.items():
            if value.numel() != 1:
                continue
            v = float(value)
            if np.isfinite(v):
                scalars[f"{base}{key}"] = v
        for key, value in scalars.items():
            pl_module.log(key, value, sync_dist=False)
        self.results[stage] = scalars
        self.curves[stage] = {k: values[k].cpu() for k in ("thresholds", "precision", "recall")}
        if self._media_due(trainer, stage):
            self._log_media(stage, trainer)
        self.metrics[stage].reset()
        self._panels = []

    def _log_media(self, stage: str, trainer: L.Trainer) -> None:
        curve = self.curves[stage]
        base = f"{stage}/{self.prefix}"
        log_pr_curve(
            trainer,
            f"{base}pr_curve",
            f"{base}precision-recall",
            curve["thresholds"],
            curve["recall"],
            curve["precision"],
        )
        if self._panels:
            log_images(
                trainer, f"{base}detections", self._panels, "green: ground truth, red: detections"
            )

    # -- hooks --------------------------------------------------------------------------------

    def stage_start(self, stage: str, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start(stage, pl_module)

    def stage_batch_end(self, stage, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._update(stage, outputs, batch)
        if self._media_due(trainer, stage) and len(self._panels) < self.max_images:
            self._collect_panels(outputs, batch)

    def stage_end(self, stage: str, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if stage == "val" and trainer.sanity_checking:
            self.metrics[stage].reset()
            self._panels = []
            return
        self._log(stage, trainer, pl_module)
