"""Homographic adaptation: a detector trained on unlabelled images from a frozen teacher's averaged heatmaps.

The seed: "take an unlabelled image; apply a collection of randomly selected transformations;
compute the heatmap for each resulting image; apply the inverse of each transformation to each
heatmap, and average the results; then use this average as a target distribution".
"""

from __future__ import annotations

import copy
import logging
import os
import warnings
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from pixelwise.geometry.adaptation import aggregate_warped_heatmaps, homographic_adaptation
from pixelwise.geometry.cells import (
    CELL,
    heatmap_to_cell_distribution,
    keypoints_to_cell_labels,
    logits_to_heatmap,
    pad_to_multiple,
)
from pixelwise.geometry.homography import (
    sample_homography,
    warp_images,
    warp_images_with_mask,
    warp_points,
    warp_valid_mask,
)
from pixelwise.geometry.keypoints import extract_keypoints
from pixelwise.losses.cell_cross_entropy import cell_cross_entropy
from pixelwise.nets.superpoint import load_superpoint_weights
from pixelwise.tasks.optim import OptimizerFactory, SchedulerFactory, configure

__all__ = ["HomographicAdaptationTask", "TARGETS"]

log = logging.getLogger("pixelwise")

TARGETS = ("soft", "hard")


def _seed32(*parts: object) -> int:
    """A 32-bit seed from several parts (torch's CPU generator keeps only the low 32 bits of a seed)."""
    return zlib.crc32(":".join(str(p) for p in parts).encode("utf-8"))


class HomographicAdaptationTask(L.LightningModule):
    """A student detector (logits [B,65,Hc,Wc]) learns from a frozen teacher through homographic adaptation.

    **Teacher.** ``teacher`` is a state-dict file for ``net`` (``weights/magicpoint_shapes.pt``,
    or ``round_k/detector.pt`` of an earlier round); it is loaded into ``net`` (the student starts
    from the teacher) and a frozen copy, always in eval mode, is the teacher. With ``teacher=None``
    ``fallback_teacher`` is used if that file exists, else both start from the same random
    weights (a warning says so; tests and ``debug=fdr`` run this way). A ``teacher`` path that
    does not exist is an error.

    **Predict (export).** ``predict_step`` runs the teacher's homographic adaptation
    (``num_homographies`` counting the identity, drawn with ``homography`` parameters of
    ``sample_homography`` from a generator seeded by ``export_seed`` and the item's ``name``,
    so an image gets the same labels whichever rank or run exports it), then extracts points
    (``detection_threshold``, ``nms_radius``, ``border``, ``top_k``). Returns per image
    ``keypoints`` [N,2] (x, y) and ``scores`` [N], and the aggregated ``heatmap`` [B,1,H,W].

    **Fit.** Each training image (``batch["image"]``, the teacher sees ``batch["clean_image"]``
    if the data augments photometrically) is warped by a random ``train_homography`` (null: no
    warp); cells touching the warp's invalid border or an unusable item (``batch["ok"]``) are
    ignored. ``targets="soft"``: the teacher's homographic adaptation (``fit_num_homographies``,
    default ``num_homographies``) of the (warped) image is
    turned into a 65-way distribution per cell (``heatmap_to_cell_distribution``), computed on
    the fly under ``no_grad`` in chunks of ``chunk_size`` images; ``targets="hard"``: the
    exported points (``batch["keypoints"]``, from ``data.labels``) warped along, as 65-class
    cell labels. Loss: ``cell_cross_entropy``.

    **Validate / test.** For every item, a homography drawn with ``eval_homography`` from a
    generator seeded by ``eval_seed`` (``+1`` for test) and the item's ``index`` warps the image;
    student and teacher detect on both images (``eval_threshold``, ``nms_radius``, ``border``;
    detections on the warp's padded border, eroded by ``valid_border_margin``, are dropped).
    The step returns them for ``pixelwise.callbacks.repeatability.RepeatabilityMetrics``.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        teacher: str | os.PathLike | None = None,
        fallback_teacher: str | os.PathLike | None = None,
        targets: str = "soft",
        num_homographies: int = 100,
        fit_num_homographies: int | None = None,
        chunk_size: int | None = 25,
        aggregation: str = "mean",
        valid_border_margin: int = 3,
        homography: Mapping[str, Any] | None = None,
        train_homography: Mapping[str, Any] | None = None,
        eval_homography: Mapping[str, Any] | None = None,
        detection_threshold: float = 0.015,
        nms_radius: int = 4,
        border: int = 4,
        top_k: int | None = None,
        eval_threshold: float = 0.001,
        eval_seed: int = 0,
        export_seed: int = 0,
        channels_last: bool = True,
    ) -> None:
        super().__init__()
        if targets not in TARGETS:
            raise ValueError(f"task.targets={targets!r}: expected one of {list(TARGETS)}")
        if not isinstance(num_homographies, int) or num_homographies < 1:
            raise ValueError(
                f"task.num_homographies={num_homographies!r}: expected an int >= 1 (counts the identity)"
            )
        if fit_num_homographies is not None and (
            not isinstance(fit_num_homographies, int) or fit_num_homographies < 1
        ):
            raise ValueError(
                f"task.fit_num_homographies={fit_num_homographies!r}: expected null (= num_homographies) or an int >= 1"
            )
        if chunk_size is not None and chunk_size < 1:
            raise ValueError(f"task.chunk_size={chunk_size}: expected null or >= 1")
        for key, value in (
            ("detection_threshold", detection_threshold),
            ("eval_threshold", eval_threshold),
        ):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"task.{key}={value}: expected a probability in [0, 1]")
        if nms_radius < 0 or border < 0 or valid_border_margin < 0:
            raise ValueError(
                f"task.nms_radius={nms_radius}, task.border={border}, "
                f"task.valid_border_margin={valid_border_margin}: expected >= 0"
            )
        if top_k is not None and top_k < 1:
            raise ValueError(f"task.top_k={top_k}: expected null (keep all) or >= 1")
        self.homography = dict(homography or {})
        self.train_homography = None if train_homography is None else dict(train_homography)
        self.eval_homography = dict(eval_homography or {})
        for key, params in (
            ("homography", self.homography),
            ("train_homography", self.train_homography or {}),
            ("eval_homography", self.eval_homography),
        ):
            try:  # bad keys fail now, not after the first epoch
                sample_homography(1, (16, 16), generator=torch.Generator().manual_seed(0), **params)
            except TypeError as err:
                raise ValueError(f"task.{key}: {err}") from None
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"])

        self.teacher_path = self._resolve_teacher(teacher, fallback_teacher)
        if self.teacher_path is not None:
            try:
                load_superpoint_weights(net, self.teacher_path)
            except ValueError as err:
                if teacher is not None:
                    raise
                # The fallback is the shipped MagicPoint-small: say so, not only which keys differ.
                raise ValueError(
                    f"teacher=null uses the shipped {self.teacher_path}, whose widths are "
                    "model=magicpoint_small's; the configured model differs: pass "
                    "teacher=PATH with weights of this model (or task.fallback_teacher=null for a "
                    f"random teacher).\n{err}"
                ) from None
        self.net = net
        self.teacher = copy.deepcopy(net).eval()
        self.teacher.requires_grad_(False)
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.skipped_items = 0

    @staticmethod
    def _resolve_teacher(
        teacher: str | os.PathLike | None, fallback: str | os.PathLike | None
    ) -> str | None:
        if teacher is not None:
            path = os.fspath(teacher)
            if not os.path.isfile(path):
                raise FileNotFoundError(
                    f"teacher={path}: no such weights file (a state dict of the detector, "
                    "e.g. weights/magicpoint_shapes.pt)"
                )
            return path
        if fallback is not None and os.path.isfile(os.fspath(fallback)):
            log.info("teacher: %s", os.fspath(fallback))
            return os.fspath(fallback)
        warnings.warn(
            f"no teacher weights (teacher=null and {fallback} does not exist): teacher and student "
            "start from the same RANDOM weights; pass teacher=PATH for a real run",
            UserWarning,
            stacklevel=3,
        )
        return None

    # -- nets -----------------------------------------------------------------------------------

    def setup(self, stage: str) -> None:
        """Nets in the chosen memory format; hard targets need pseudo-labels in the training data."""
        self.net.to(memory_format=self.memory_format)
        self.teacher.to(memory_format=self.memory_format)
        if stage == "fit" and self.hparams.targets == "hard":
            datamodule = getattr(self.trainer, "datamodule", None)
            dataset = datamodule.dataset("train") if datamodule is not None else None
            if dataset is not None and getattr(dataset, "labels", "n/a") is None:
                raise ValueError(
                    "targets=hard trains on exported pseudo-labels, but the training data has "
                    "none: set data.labels=DIR (the output of mode=export), or use targets=soft"
                )

    def train(self, mode: bool = True) -> HomographicAdaptationTask:
        """Switch the student's mode; the teacher stays in eval mode (frozen batch-norm statistics)."""
        super().train(mode)
        self.teacher.eval()
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images [B,1,H,W] -> student logits [B,65,ceil(H/8),ceil(W/8)]."""
        return self.net(images.contiguous(memory_format=self.memory_format))["logits"]

    def student_heatmap(self, images: torch.Tensor) -> torch.Tensor:
        """images [B,1,H,W] -> the student's point probability [B,1,H,W]."""
        return logits_to_heatmap(self(images), image_size=images.shape[-2:])

    def teacher_heatmap(self, images: torch.Tensor) -> torch.Tensor:
        """images [B,1,H,W] -> the frozen teacher's point probability [B,1,H,W] (no grad)."""
        with torch.no_grad():
            logits = self.teacher(images.contiguous(memory_format=self.memory_format))["logits"]
        return logits_to_heatmap(logits, image_size=images.shape[-2:])

    def adapted_heatmap(
        self,
        images: torch.Tensor,
        generator: torch.Generator | None = None,
        num_homographies: int | None = None,
    ) -> torch.Tensor:
        """images [B,1,H,W] -> the teacher's homographic adaptation [B,1,H,W] (random homographies).

        ``num_homographies`` defaults to the task's (the export's) number.
        """
        return homographic_adaptation(
            self.teacher_heatmap,
            images,
            num_homographies=num_homographies or self.hparams.num_homographies,
            chunk_size=self.hparams.chunk_size,
            valid_border_margin=self.hparams.valid_border_margin,
            aggregation=self.hparams.aggregation,
            generator=generator,
            **self.homography,
        )

    def _extract(
        self, heat: torch.Tensor, threshold: float, top_k: int | None = None
    ) -> list[dict[str, torch.Tensor]]:
        return extract_keypoints(
            heat.float(),
            threshold=threshold,
            nms_radius=self.hparams.nms_radius,
            border=self.hparams.border,
            top_k=top_k,
        )

    # -- export -----------------------------------------------------------------------------------

    def export_seed(self, name: str) -> int:
        """Seed of the homographies of the image called ``name`` (the same on every rank and run)."""
        return _seed32("export", self.hparams.export_seed, name)

    def export_homographies(self, names: Sequence[str], shape: Sequence[int]) -> torch.Tensor:
        """Per image name, its ``num_homographies - 1`` homographies -> [B, N-1, 3, 3]."""
        n = self.hparams.num_homographies - 1
        if n == 0:
            return torch.empty(len(names), 0, 3, 3, device=self.device)
        homs = [
            sample_homography(
                n,
                (int(shape[0]), int(shape[1])),
                generator=torch.Generator().manual_seed(self.export_seed(name)),
                **self.homography,
            )
            for name in names
        ]
        return torch.stack(homs).to(self.device)

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        images = batch["image"]
        names = batch.get("name")
        if names is None:
            names = [str(int(i)) for i in batch.get("index", range(images.shape[0]))]
        homographies = self.export_homographies(list(names), images.shape[-2:])
        heat = aggregate_warped_heatmaps(
            self.teacher_heatmap,
            images,
            homographies,
            chunk_size=self.hparams.chunk_size,
            valid_border_margin=self.hparams.valid_border_margin,
            aggregation=self.hparams.aggregation,
        )
        detections = self._extract(heat, self.hparams.detection_threshold, self.hparams.top_k)
        return {
            "keypoints": [d["keypoints"] for d in detections],
            "scores": [d["scores"] for d in detections],
            "heatmap": heat,
        }

    # -- fit ----------------------------------------------------------------------------------------

    def _ok(self, batch: dict[str, Any], b: int) -> torch.Tensor:
        ok = batch.get("ok")
        if ok is None:
            return torch.ones(b, dtype=torch.bool, device=self.device)
        return torch.as_tensor(ok, device=self.device).bool().reshape(b)

    def targets(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Batch -> (student input [B,1,H,W], target: soft [B,65,Hc,Wc] or hard long [B,Hc,Wc], cell mask bool [B,Hc,Wc])."""
        images = batch["image"]
        clean = batch.get("clean_image", images)
        b, _, h, w = images.shape
        valid = None
        homs = None
        if self.train_homography is not None:
            homs = sample_homography(b, (h, w), device=images.device, **self.train_homography)
            images, valid = warp_images_with_mask(
                images, homs, border_margin=self.hparams.valid_border_margin
            )
            clean = images if clean is batch["image"] else warp_images(clean, homs)
        if self.hparams.targets == "soft":
            n = self.hparams.fit_num_homographies or self.hparams.num_homographies
            target = heatmap_to_cell_distribution(self.adapted_heatmap(clean, num_homographies=n))
        else:
            keypoints = batch.get("keypoints")
            if keypoints is None:
                raise ValueError(
                    "targets=hard needs batch['keypoints'] (pseudo-labels): set data.labels=DIR "
                    "and add 'keypoints' to data.list_keys"
                )
            keypoints = [k.to(images.device, torch.float32).reshape(-1, 2) for k in keypoints]
            if homs is not None:
                keypoints = [
                    warp_points(k, homs[i]) if len(k) else k for i, k in enumerate(keypoints)
                ]
            target = keypoints_to_cell_labels(keypoints, (h, w))
        hc, wc = -(-h // CELL), -(-w // CELL)
        cell_mask = self._ok(batch, b)[:, None, None].expand(b, hc, wc).clone()
        if valid is not None:
            invalid = pad_to_multiple((~valid).float()[:, None], CELL, mode="constant", value=0.0)
            cell_mask &= F.max_pool2d(invalid, CELL, CELL)[:, 0] == 0
        return images, target, cell_mask

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        images, target, cell_mask = self.targets(batch)
        logits = self(images)
        loss = cell_cross_entropy(logits, target, cell_mask=cell_mask)
        self.skipped_items += int((~self._ok(batch, images.shape[0])).sum())
        self.log("train/loss", loss, prog_bar=True, batch_size=images.shape[0])
        return loss

    def on_train_end(self) -> None:
        if self.skipped_items:
            log.warning(
                "training skipped %d unusable items (see the warnings naming them)",
                self.skipped_items,
            )

    # -- validate / test -------------------------------------------------------------------------

    def eval_homographies(
        self, indices: Sequence[int], shape: Sequence[int], seed: int
    ) -> torch.Tensor:
        """One homography per item index -> [B,3,3], the same whatever the batching or rank."""
        homs = [
            sample_homography(
                1,
                (int(shape[0]), int(shape[1])),
                generator=torch.Generator().manual_seed(_seed32("eval", seed, int(i))),
                **self.eval_homography,
            )[0]
            for i in indices
        ]
        return torch.stack(homs).to(self.device)

    def _eval_step(self, batch: dict[str, Any], seed: int) -> dict[str, Any]:
        images = batch["image"]
        b, _, h, w = images.shape
        indices = batch.get("index")
        indices = list(range(b)) if indices is None else [int(i) for i in indices]
        homs = self.eval_homographies(indices, (h, w), seed)
        warped = warp_images(images, homs)
        # Points on the padded border of the warped image respond to the artificial edge.
        valid = warp_valid_mask((h, w), homs, border_margin=self.hparams.valid_border_margin)
        ok = self._ok(batch, b)
        pair = torch.cat([images, warped])
        out: dict[str, Any] = {"homography": homs, "shape": (h, w), "ok": ok}
        with torch.no_grad():
            for who, heat in (
                ("student", self.student_heatmap(pair)),
                ("teacher", self.teacher_heatmap(pair)),
            ):
                heat_a, heat_b = heat[:b], heat[b:] * valid[:, None].to(heat.dtype)
                det_a = self._extract(heat_a, self.hparams.eval_threshold)
                det_b = self._extract(heat_b, self.hparams.eval_threshold)
                out[who] = {
                    "keypoints_a": [d["keypoints"] for d in det_a],
                    "scores_a": [d["scores"] for d in det_a],
                    "keypoints_b": [d["keypoints"] for d in det_b],
                    "scores_b": [d["scores"] for d in det_b],
                }
                out[f"{who}_heatmap"] = heat_a
        return out

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        return self._eval_step(batch, self.hparams.eval_seed)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        return self._eval_step(batch, self.hparams.eval_seed + 1)

    def configure_optimizers(self) -> dict[str, Any]:
        return configure(
            self.net.parameters(),
            self.optimizer_factory,
            self.scheduler_factory,
            self.trainer.estimated_stepping_batches,
        )
