"""SuperPoint evaluation: match pictures (validation, W&B), HPatches-protocol metrics and a baselines table (test)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from pixelwise.callbacks.data_info import data_fact
from pixelwise.callbacks.options import check_at_least
from pixelwise.callbacks.stages import StageCallback
from pixelwise.callbacks.wandb_media import log_images
from pixelwise.drawing import draw_matches
from pixelwise.geometry.matching import match_descriptors, ransac_inliers
from pixelwise.hpatches_report import format_table
from pixelwise.metrics.hpatches_protocol import HPatchesEvaluator
from pixelwise.tasks.outputs import SuperPointPairOutput

__all__ = ["SuperPointEvaluation"]


class SuperPointEvaluation(StageCallback):
    """HPatches-protocol metrics of the task's features on validation and test pairs; pictures; baselines table.

    Reads the task's :class:`~pixelwise.tasks.outputs.SuperPointPairOutput` (``SuperPointTask``):
    features of both images, the homography and each pair's kind ("i"/"v"). Logs
    ``<stage>/<metric>`` (all pairs) and ``<stage>/<split>/<metric>`` (illumination,
    viewpoint; NaN splits are not logged) for the metrics of
    :class:`~pixelwise.metrics.hpatches_protocol.HPatchesEvaluator` (options ``protocol``,
    default the dataset's ``trainer.datamodule.info.protocol``, else the paper's). Each step's
    pairs feed the part of the metrics ``SuperPointPairOutput.part`` names: with a
    ``detector_test`` split (HPatches at 240x320, the paper's protocol) its pairs give
    repeatability and localization error and the test pairs the rest. The classical baselines
    the task ran on the same test pairs
    (``task.baselines``: OpenCV ORB/SIFT, ``SuperPointPairOutput.baselines``) are scored by the
    same metrics and written with the model's row as ``<output_dir>/<filename>.md`` (Table 4
    layout) and ``.json``. Validation: the first ``max_images`` pairs' matches (mutual NN,
    ``max_distance``) with RANSAC inliers go to W&B every ``every_n_epochs`` as ``val/matches``.
    """

    def __init__(
        self,
        protocol: dict[str, Any] | None = None,
        model_name: str = "SuperPoint (ours)",
        output_dir: str | None = None,
        filename: str = "hpatches_table",
        every_n_epochs: int = 1,
        max_images: int = 4,
        max_distance: float | None = 0.7,
        ransac_threshold: float = 3.0,
    ) -> None:
        check_at_least("SuperPointEvaluation", "every_n_epochs", every_n_epochs, 1)
        self.protocol = dict(protocol) if protocol is not None else None
        self.model_name = model_name
        self.output_dir = output_dir
        self.filename = filename
        self.every_n_epochs = every_n_epochs
        self.max_images = max_images
        self.max_distance = max_distance
        self.ransac_threshold = ransac_threshold
        self.evaluators: dict[str, HPatchesEvaluator] = {}
        self.pictures: list[np.ndarray] = []
        self.results: dict[str, dict[str, float]] = {}
        self._protocol_in_use: dict[str, Any] = {}

    @property
    def evaluator(self) -> HPatchesEvaluator:
        """The model's evaluator."""
        return self.evaluators[self.model_name]

    def _protocol(self, trainer: L.Trainer) -> dict[str, Any]:
        if self.protocol is not None:
            return self.protocol
        return dict(data_fact(trainer, "protocol", {}))

    # -- shared ---------------------------------------------------------------------------------

    def _start(self, trainer: L.Trainer) -> None:
        self._protocol_in_use = self._protocol(trainer)
        self.evaluators = {self.model_name: HPatchesEvaluator(**self._protocol_in_use)}
        self.pictures = []

    def _evaluator(self, name: str) -> HPatchesEvaluator:
        if name not in self.evaluators:
            self.evaluators[name] = HPatchesEvaluator(**self._protocol_in_use)
        return self.evaluators[name]

    @staticmethod
    def _feed(evaluator: HPatchesEvaluator, outputs: SuperPointPairOutput) -> None:
        for i, (fa, fb) in enumerate(zip(outputs.features_a, outputs.features_b)):
            evaluator.update(
                fa,
                fb,
                outputs.homography[i],
                outputs.kinds[i],
                outputs.shape_a,
                outputs.shape_b,
                part=outputs.part,
            )

    def _update(self, outputs: SuperPointPairOutput) -> None:
        self._feed(self.evaluator, outputs)
        for method, out in outputs.baselines.items():
            self._feed(self._evaluator(method.upper()), out)

    def _log(self, pl_module: L.LightningModule, stage: str, values: dict[str, float]) -> None:
        for key, value in values.items():
            split, metric = key.split("/", 1)
            if not math.isfinite(value):
                continue
            name = f"{stage}/{metric}" if split == "all" else f"{stage}/{split}/{metric}"
            pl_module.log(name, float(value), sync_dist=False)

    # -- validation and test (StageCallback) ---------------------------------------------------

    def _due(self, trainer: L.Trainer) -> bool:
        return (trainer.current_epoch + 1) % self.every_n_epochs == 0 or trainer.sanity_checking

    def stage_start(self, stage: str, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start(trainer)

    def stage_batch_end(self, stage, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._update(outputs)
        if stage == "test":
            return
        for i in range(len(outputs.features_a)):
            if len(self.pictures) >= self.max_images or not self._due(trainer):
                break
            self.pictures.append(self.picture(batch["image_a"][i], batch["image_b"][i], outputs, i))

    def picture(
        self, image_a: torch.Tensor, image_b: torch.Tensor, outputs: SuperPointPairOutput, i: int
    ) -> np.ndarray:
        """Match picture of pair ``i`` of a step's outputs (mutual NN matches, RANSAC inliers)."""
        fa, fb = outputs.features_a[i], outputs.features_b[i]
        matches = match_descriptors(
            fa["descriptors"], fb["descriptors"], mutual=True, max_distance=self.max_distance
        )
        _, inliers = ransac_inliers(
            fa["keypoints"], fb["keypoints"], matches, self.ransac_threshold
        )
        return draw_matches(image_a, image_b, fa["keypoints"], fb["keypoints"], matches, inliers)

    def stage_end(self, stage: str, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if stage == "test":
            self._finish_test(trainer, pl_module)
            return
        self._log(pl_module, "val", self.evaluator.compute())
        if self.pictures:
            log_images(
                trainer, "val/matches", self.pictures, "green: RANSAC inliers, red: outliers"
            )

    def _finish_test(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.results = {name: ev.compute() for name, ev in self.evaluators.items()}
        self._log(pl_module, "test", self.results[self.model_name])
        if len(self.results) == 1 or not trainer.is_global_zero:
            return
        out = Path(self.output_dir or trainer.default_root_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{self.filename}.md").write_text(format_table(self.results) + "\n")
        (out / f"{self.filename}.json").write_text(json.dumps(self.results, indent=2))
