"""SuperPoint evaluation: match pictures (validation, W&B), HPatches-protocol metrics and an ORB/SIFT table (test)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import WandbLogger

from pixelwise.callbacks.overlays import to_uint8_image
from pixelwise.geometry.matching import match_descriptors
from pixelwise.metrics.hpatches_protocol import (
    HPatchesEvaluator,
    evaluate_features,
    format_table,
)
from pixelwise.nets.classical_features import ClassicalFeatures

__all__ = ["SuperPointEvaluation", "draw_matches", "ransac_inliers"]

_SPLITS = ("all", "illumination", "viewpoint")


def ransac_inliers(
    keypoints_a: torch.Tensor,
    keypoints_b: torch.Tensor,
    matches: torch.Tensor,
    threshold: float = 3.0,
) -> tuple[np.ndarray | None, np.ndarray]:
    """Matched points [N,2], [M,2] and matches [K,2] -> (H [3,3] a -> b or None, inlier bool [K]) by OpenCV RANSAC."""
    k = int(matches.shape[0])
    if k < 4:
        return None, np.zeros(k, bool)
    src = keypoints_a[matches[:, 0]].detach().cpu().double().numpy()
    dst = keypoints_b[matches[:, 1]].detach().cpu().double().numpy()
    h, mask = cv2.findHomography(src, dst, cv2.RANSAC, threshold)
    if h is None or mask is None:
        return None, np.zeros(k, bool)
    return h, mask.ravel().astype(bool)


def draw_matches(
    image_a: torch.Tensor,
    image_b: torch.Tensor,
    keypoints_a: torch.Tensor,
    keypoints_b: torch.Tensor,
    matches: torch.Tensor,
    inliers: np.ndarray | None = None,
) -> np.ndarray:
    """Images [C,H,W] in [0,1], points [N,2]/[M,2] (x, y), matches [K,2] -> uint8 RGB [max H, Wa+Wb, 3].

    Side by side; all keypoints as small blue dots, matches as lines: green for RANSAC inliers,
    red for outliers (all yellow when ``inliers`` is None).
    """
    a, b = to_uint8_image(image_a), to_uint8_image(image_b)
    height = max(a.shape[0], b.shape[0])
    canvas = np.zeros((height, a.shape[1] + b.shape[1], 3), np.uint8)
    canvas[: a.shape[0], : a.shape[1]] = a
    canvas[: b.shape[0], a.shape[1] :] = b
    shift = np.array([a.shape[1], 0.0])
    pa = keypoints_a.detach().cpu().double().numpy()
    pb = keypoints_b.detach().cpu().double().numpy() + shift
    for p in np.concatenate([pa, pb]):
        cv2.circle(canvas, (round(p[0]), round(p[1])), 1, (60, 120, 255), -1, cv2.LINE_AA)
    for k, (i, j) in enumerate(matches.detach().cpu().tolist()):
        if inliers is None:
            colour = (255, 220, 0)
        else:
            colour = (0, 220, 0) if inliers[k] else (230, 30, 30)
        p, q = pa[i], pb[j]
        cv2.line(
            canvas, (round(p[0]), round(p[1])), (round(q[0]), round(q[1])), colour, 1, cv2.LINE_AA
        )
    return canvas


class SuperPointEvaluation(L.Callback):
    """HPatches-protocol metrics of the task's features on validation and test pairs; pictures; ORB/SIFT table.

    Needs steps returning ``features_a``/``features_b`` (``SuperPointTask``) and batches with
    ``image_a``, ``image_b``, ``homography`` [B,3,3] and ``kind`` (SuperPointPairs or HPatches).
    Logs ``<stage>/<metric>`` (all pairs) and ``<stage>/<split>/<metric>`` (illumination,
    viewpoint; NaN splits are not logged) for the metrics of
    :class:`~pixelwise.metrics.hpatches_protocol.HPatchesEvaluator` (options ``protocol``,
    default the datamodule's ``data.protocol``, else the paper's). At test, when the datamodule
    has ``data.detector_test`` (HPatches at 240x320), repeatability and localization error are
    computed there (the paper's protocol) and the test set gives the rest. ``compare`` methods
    (OpenCV ORB/SIFT) are scored by the same code on the same test data and written with the
    model's row as ``<output_dir>/<filename>.md`` (Table 4 layout) and ``.json``.
    Validation: the first ``max_images`` pairs' matches (mutual NN, ``max_distance``) with RANSAC
    inliers go to W&B every ``every_n_epochs`` as ``val/matches``.
    """

    def __init__(
        self,
        protocol: dict[str, Any] | None = None,
        compare: Sequence[str] = ("orb", "sift"),
        model_name: str = "SuperPoint (ours)",
        output_dir: str | None = None,
        filename: str = "hpatches_table",
        max_pairs: int | None = None,
        every_n_epochs: int = 1,
        max_images: int = 4,
        max_distance: float | None = 0.7,
        ransac_threshold: float = 3.0,
    ) -> None:
        if every_n_epochs < 1:
            raise ValueError(f"SuperPointEvaluation.every_n_epochs={every_n_epochs}: expected >= 1")
        self.protocol = dict(protocol) if protocol is not None else None
        self.compare = [str(m) for m in compare]
        self.model_name = model_name
        self.output_dir = output_dir
        self.filename = filename
        self.max_pairs = max_pairs
        self.every_n_epochs = every_n_epochs
        self.max_images = max_images
        self.max_distance = max_distance
        self.ransac_threshold = ransac_threshold
        self.evaluator: HPatchesEvaluator | None = None
        self.pictures: list[np.ndarray] = []
        self.results: dict[str, dict[str, float]] = {}
        self._detector_dataset: Any = None

    def _protocol(self, trainer: L.Trainer) -> dict[str, Any]:
        if self.protocol is not None:
            return self.protocol
        dm = getattr(trainer, "datamodule", None)
        meta = dm.meta("protocol") if dm is not None and hasattr(dm, "meta") else None
        return dict(meta) if meta else {}

    # -- shared ---------------------------------------------------------------------------------

    def _start(self, trainer: L.Trainer) -> None:
        self.evaluator = HPatchesEvaluator(**self._protocol(trainer))
        self.pictures = []

    def _update(self, outputs: dict[str, Any], batch: dict[str, Any], detector: bool) -> None:
        kinds = batch["kind"]
        for i, (fa, fb) in enumerate(zip(outputs["features_a"], outputs["features_b"])):
            args = (
                fa,
                fb,
                batch["homography"][i],
                kinds[i],
                tuple(batch["image_a"].shape[-2:]),
                tuple(batch["image_b"].shape[-2:]),
            )
            if detector:
                self.evaluator.update(*args)
            else:
                self.evaluator.update_descriptors(*args)

    def _log(self, pl_module: L.LightningModule, stage: str, values: dict[str, float]) -> None:
        for key, value in values.items():
            split, metric = key.split("/", 1)
            if not math.isfinite(value):
                continue
            name = f"{stage}/{metric}" if split == "all" else f"{stage}/{split}/{metric}"
            pl_module.log(name, float(value), sync_dist=False)

    # -- validation -----------------------------------------------------------------------------

    def _due(self, trainer: L.Trainer) -> bool:
        return (trainer.current_epoch + 1) % self.every_n_epochs == 0 or trainer.sanity_checking

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start(trainer)

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        self._update(outputs, batch, detector=True)
        for i in range(len(outputs["features_a"])):
            if len(self.pictures) >= self.max_images or not self._due(trainer):
                break
            self.pictures.append(self.picture(batch["image_a"][i], batch["image_b"][i], outputs, i))

    def picture(
        self, image_a: torch.Tensor, image_b: torch.Tensor, outputs: dict[str, Any], i: int
    ) -> np.ndarray:
        """Match picture of pair ``i`` of a step's outputs (mutual NN matches, RANSAC inliers)."""
        fa, fb = outputs["features_a"][i], outputs["features_b"][i]
        matches = match_descriptors(
            fa["descriptors"], fb["descriptors"], mutual=True, max_distance=self.max_distance
        )
        _, inliers = ransac_inliers(
            fa["keypoints"], fb["keypoints"], matches, self.ransac_threshold
        )
        return draw_matches(image_a, image_b, fa["keypoints"], fb["keypoints"], matches, inliers)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._log(pl_module, "val", self.evaluator.compute())
        if self.pictures:
            for logger in trainer.loggers:
                if isinstance(logger, WandbLogger):
                    logger.log_image(
                        key="val/matches",
                        images=self.pictures,
                        caption=["green: RANSAC inliers, red: outliers"] * len(self.pictures),
                        step=trainer.global_step,
                    )

    # -- test -----------------------------------------------------------------------------------

    def _detector_test(self, trainer: L.Trainer) -> Any:
        dm = getattr(trainer, "datamodule", None)
        factory = dm.meta("detector_test") if dm is not None and hasattr(dm, "meta") else None
        return factory() if callable(factory) else factory

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start(trainer)
        self._detector_dataset = self._detector_test(trainer)

    def on_test_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        self._update(outputs, batch, detector=self._detector_dataset is None)

    def _model_features(self, pl_module: L.LightningModule):
        hp = pl_module.hparams

        def extract(image: torch.Tensor) -> dict[str, torch.Tensor]:
            return pl_module.extract(
                image,
                max_keypoints=hp.max_keypoints,
                nms_radius=hp.nms_radius,
                threshold=hp.detection_threshold,
                border=hp.border,
            )[0]

        return extract

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        detector_dataset = self._detector_dataset
        if detector_dataset is not None:
            # The paper's repeatability is at another resolution (240x320, 300 points).
            n = len(detector_dataset)
            n = n if self.max_pairs is None else min(n, self.max_pairs)
            extract = self._model_features(pl_module)
            rank, world = trainer.global_rank, trainer.world_size
            for idx in range(rank, n, world):  # each pair on one rank; the metrics sum over ranks
                item = detector_dataset[idx]
                self.evaluator.update_detector(
                    extract(item["image_a"]),
                    extract(item["image_b"]),
                    item["homography"],
                    item["kind"],
                    tuple(item["image_a"].shape[-2:]),
                    tuple(item["image_b"].shape[-2:]),
                )
        values = self.evaluator.compute()
        self._log(pl_module, "test", values)
        self.results = {self.model_name: values}
        if not self.compare or not trainer.is_global_zero:
            return
        dataset = trainer.datamodule.dataset("test")
        for method in self.compare:
            features = ClassicalFeatures(
                method, max_keypoints=int(pl_module.hparams.max_keypoints or 1000)
            )
            self.results[method.upper()] = evaluate_features(
                features,
                dataset,
                detector_dataset=detector_dataset,
                max_pairs=self.max_pairs,
                **self._protocol(trainer),
            )
        out = Path(self.output_dir or trainer.default_root_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{self.filename}.md").write_text(format_table(self.results) + "\n")
        (out / f"{self.filename}.json").write_text(json.dumps(self.results, indent=2))
