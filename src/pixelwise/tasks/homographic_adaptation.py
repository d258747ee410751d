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

import torch
import torch.nn.functional as F
from torch import nn

from pixelwise.geometry.adaptation import (
    aggregate_warped_heatmaps,
    check_shift_step,
    homographic_adaptation,
    shift_averaged_heatmap,
)
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
from pixelwise.geometry.keypoints import SUPERPOINT_EXTRACTION, Extraction
from pixelwise.losses.cell_cross_entropy import cell_cross_entropy
from pixelwise.nets.classical_detectors import ClassicalDetector
from pixelwise.nets.superpoint import load_superpoint_weights
from pixelwise.tasks.base import PixelwiseTask
from pixelwise.tasks.optim import OptimizerFactory, SchedulerFactory
from pixelwise.tasks.outputs import AdaptationOutput, KeypointOutput, PairDetections

__all__ = ["ADAPTED_TEACHER", "EXPORTED_TARGETS", "HomographicAdaptationTask", "TARGETS"]

log = logging.getLogger("pixelwise")

# soft: adapted heatmaps on the fly; hard: exported points; exported: exported adapted heatmaps
# (task.run.export.save_heatmap=true) as soft targets, without the on-the-fly teacher forwards.
TARGETS = ("soft", "hard", "exported")
# The targets that train on an export (data.labels).
EXPORTED_TARGETS = ("hard", "exported")
# The baseline name that scores the teacher's adapted heatmap (see HomographicAdaptationTask).
ADAPTED_TEACHER = "adapted_teacher"


def _seed32(*parts: object) -> int:
    """A 32-bit seed from several parts (torch's CPU generator keeps only the low 32 bits of a seed)."""
    return zlib.crc32(":".join(str(p) for p in parts).encode("utf-8"))


class HomographicAdaptationTask(PixelwiseTask):
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
    cell labels; ``targets="exported"``: the exported adapted heatmap (``batch["heatmap"]``, from
    ``data.labels`` with ``data.label_heatmaps=true``, written by an export with
    ``task.run.export.save_heatmap=true``) warped along (bilinear), as the 65-way distribution of
    ``"soft"``: the soft target's ranking of weak points without the teacher forwards per step.
    Loss: ``cell_cross_entropy``.

    **Validate / test.** For every item, a homography drawn with ``eval_homography`` from a
    generator seeded by ``eval_seed`` (``+1`` for test) and the item's ``index`` warps the image;
    student and teacher detect on both images (``eval_threshold``, ``nms_radius``, ``border``;
    detections on the warp's padded border, eroded by ``valid_border_margin``, are dropped).
    ``eval_shift_step`` < 8 averages the student's and teacher's heatmaps over sub-cell input
    shifts (:func:`~pixelwise.geometry.adaptation.shift_averaged_heatmap`): their stride-8 head
    is not shift-equivariant, the mean over shifts is (for multiples of the step).
    The step returns an :class:`~pixelwise.tasks.outputs.AdaptationOutput` for
    ``pixelwise.callbacks.repeatability.RepeatabilityMetrics``; with ``media_images`` > 0 it
    also carries, for the first ``media_images`` usable images of each evaluation epoch, the
    teacher's homographic adaptation over ``media_num_homographies`` homographies drawn from a
    generator seeded by ``media_seed`` (for ``pixelwise.callbacks.adaptation_media``).
    ``baselines`` (e.g. ``[harris, fast]``): classical detectors
    (:class:`~pixelwise.nets.ClassicalDetector`) detect on the same pairs with the same
    extraction, under their own names in ``AdaptationOutput.detections`` (list them in
    ``callbacks.repeatability.models`` to score them). The name ``adapted_teacher`` scores the
    teacher's homographic adaptation itself (``num_homographies`` homographies, drawn from a
    generator seeded by the stage's seed and the batch's first index): the target the student
    learns, so an upper reference for what a round can reach.
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
        detection_threshold: float = SUPERPOINT_EXTRACTION.threshold,
        nms_radius: int = SUPERPOINT_EXTRACTION.nms_radius,
        border: int = SUPERPOINT_EXTRACTION.border,
        top_k: int | None = None,
        eval_threshold: float = 0.001,
        eval_shift_step: int = CELL,
        eval_seed: int = 0,
        export_seed: int = 0,
        channels_last: bool = True,
        media_images: int = 0,
        media_num_homographies: int | None = 25,
        media_seed: int = 0,
        baselines: Sequence[str] = (),
    ) -> None:
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
        check_shift_step(eval_shift_step, "task.eval_shift_step")
        if valid_border_margin < 0:
            raise ValueError(f"task.valid_border_margin={valid_border_margin}: expected >= 0")
        if media_images < 0 or (media_num_homographies is not None and media_num_homographies < 1):
            raise ValueError(
                f"task.media_images={media_images}, task.media_num_homographies="
                f"{media_num_homographies}: expected >= 0 and null or >= 1"
            )
        export_extraction = Extraction.checked(detection_threshold, nms_radius, border, top_k)
        eval_extraction = Extraction.checked(
            eval_threshold, nms_radius, border, None, keys={"threshold": "eval_threshold"}
        )
        homography = dict(homography or {})
        train_homography = None if train_homography is None else dict(train_homography)
        eval_homography = dict(eval_homography or {})
        for key, params in (
            ("homography", homography),
            ("train_homography", train_homography or {}),
            ("eval_homography", eval_homography),
        ):
            try:  # bad keys fail now, not after the first epoch
                sample_homography(1, (16, 16), generator=torch.Generator().manual_seed(0), **params)
            except TypeError as err:
                raise ValueError(f"task.{key}: {err}") from None

        teacher_path = self._resolve_teacher(teacher, fallback_teacher)
        if teacher_path is not None:
            try:
                # A SuperPoint file teaches with its detector when the net has no descriptor head.
                load_superpoint_weights(
                    net, teacher_path, ignore_descriptor=not getattr(net, "descriptor", True)
                )
            except ValueError as err:
                if teacher is not None:
                    raise
                # The fallback is the shipped MagicPoint-small: say so, not only which keys differ.
                raise ValueError(
                    f"task.teacher=null uses the shipped {teacher_path}, whose widths are "
                    "model=magicpoint_small's; the configured model differs: pass "
                    "task.teacher=PATH with weights of this model (or task.fallback_teacher=null for a "
                    f"random teacher).\n{err}"
                ) from None
        super().__init__(net, optimizer, scheduler, channels_last)
        self.teacher_path = teacher_path
        self.homography = homography
        self.train_homography = train_homography
        self.eval_homography = eval_homography
        self.export_extraction = export_extraction
        self.eval_extraction = eval_extraction
        # Unknown names fail here (ClassicalDetector names them).
        self.baselines = {m: ClassicalDetector(m) for m in baselines if m != ADAPTED_TEACHER}
        self.score_adapted_teacher = ADAPTED_TEACHER in baselines
        # Left in train mode here: teacher_heatmap switches it to eval at each use. Lightning
        # restores the mode it found before the sanity check, and warns about eval-mode modules
        # when training starts.
        self.teacher = copy.deepcopy(net)
        self.teacher.requires_grad_(False)
        self.skipped_items = 0
        self._media_left = 0

    @staticmethod
    def _resolve_teacher(
        teacher: str | os.PathLike | None, fallback: str | os.PathLike | None
    ) -> str | None:
        if teacher is not None:
            path = os.fspath(teacher)
            if not os.path.isfile(path):
                raise FileNotFoundError(
                    f"task.teacher={path}: no such weights file (a state dict of the detector, "
                    "e.g. weights/magicpoint_shapes.pt)"
                )
            return path
        if fallback is not None and os.path.isfile(os.fspath(fallback)):
            log.info("teacher: %s", os.fspath(fallback))
            return os.fspath(fallback)
        warnings.warn(
            f"no teacher weights (task.teacher=null and {fallback} does not exist): teacher and student "
            "start from the same RANDOM weights; pass task.teacher=PATH for a real run",
            UserWarning,
            stacklevel=3,
        )
        return None

    # -- nets -----------------------------------------------------------------------------------

    def nets(self) -> list[nn.Module]:
        return [self.net, self.teacher]

    def trainable_parameters(self) -> Any:
        return self.net.parameters()

    def setup(self, stage: str) -> None:
        """Nets in the chosen memory format; hard and exported targets need pseudo-labels in the training data."""
        super().setup(stage)
        targets = self.hparams.targets
        if stage == "fit" and targets in EXPORTED_TARGETS:
            datamodule = getattr(self.trainer, "datamodule", None)
            info = getattr(datamodule, "info", None)
            if info is not None and info.labels_path is None:
                raise ValueError(
                    f"task.targets={targets} trains on exported pseudo-labels, but the training data "
                    "has none: set data.labels=DIR (the output of task.run.mode=export), or use "
                    "task.targets=soft"
                )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images [B,1,H,W] -> student logits [B,65,ceil(H/8),ceil(W/8)]."""
        return self.net(self.as_input(images))["logits"]

    def student_heatmap(self, images: torch.Tensor) -> torch.Tensor:
        """images [B,1,H,W] -> the student's point probability [B,1,H,W]."""
        return logits_to_heatmap(self(images), image_size=images.shape[-2:])

    def teacher_heatmap(self, images: torch.Tensor) -> torch.Tensor:
        """images [B,1,H,W] -> the frozen teacher's point probability [B,1,H,W] (no grad).

        The teacher always runs in eval mode (frozen batch-norm statistics). It is switched there
        here, at each use, not kept there: Lightning warns at the start of training about any
        module left in eval mode, and its ``train()`` calls flip the teacher back anyway.
        """
        self.teacher.eval()
        with torch.no_grad():
            logits = self.teacher(self.as_input(images))["logits"]
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

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> KeypointOutput:
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
        return KeypointOutput.from_detections(self.export_extraction(heat), heatmap=heat)

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
        elif self.hparams.targets == "exported":
            heat = batch.get("heatmap")
            if heat is None:
                raise ValueError(
                    "task.targets=exported needs batch['heatmap'] (exported adapted heatmaps): set "
                    "data.labels=DIR of an export run with task.run.export.save_heatmap=true, and "
                    "data.label_heatmaps=true"
                )
            heat = heat.to(images.device, torch.float32)
            if tuple(heat.shape) != (b, 1, h, w):
                raise ValueError(
                    f"task.targets=exported: batch['heatmap'] has shape {tuple(heat.shape)}, "
                    f"expected {(b, 1, h, w)} (the images' [B,1,H,W])"
                )
            if homs is not None:
                heat = warp_images(heat, homs).clamp_min(0.0)
            target = heatmap_to_cell_distribution(heat)
        else:
            keypoints = batch.get("keypoints")
            if keypoints is None:
                raise ValueError(
                    "task.targets=hard needs batch['keypoints'] (pseudo-labels): set data.labels=DIR "
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

    def training_loss(self, batch: dict[str, Any]) -> torch.Tensor:
        images, target, cell_mask = self.targets(batch)
        self.skipped_items += int((~self._ok(batch, images.shape[0])).sum())
        return cell_cross_entropy(self(images), target, cell_mask=cell_mask)

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

    def on_validation_epoch_start(self) -> None:
        self._media_left = self.hparams.media_images

    def on_test_epoch_start(self) -> None:
        self._media_left = self.hparams.media_images

    def _media(self, images: torch.Tensor, ok: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The first usable images still wanted this epoch [M,1,H,W] and their adapted heatmaps [M,1,H,W]."""
        chosen = images[ok][: self._media_left]
        self._media_left -= chosen.shape[0]
        adapted = self.adapted_heatmap(
            chosen,
            generator=torch.Generator().manual_seed(self.hparams.media_seed),
            num_homographies=self.hparams.media_num_homographies,
        )
        return chosen, adapted

    def evaluation_step(self, batch: dict[str, Any], stage: str) -> AdaptationOutput:
        images = batch["image"]
        b, _, h, w = images.shape
        seed = self.hparams.eval_seed + (1 if stage == "test" else 0)
        indices = batch.get("index")
        indices = list(range(b)) if indices is None else [int(i) for i in indices]
        homs = self.eval_homographies(indices, (h, w), seed)
        warped = warp_images(images, homs)
        # Points on the padded border of the warped image respond to the artificial edge.
        valid = warp_valid_mask((h, w), homs, border_margin=self.hparams.valid_border_margin)
        ok = self._ok(batch, b)
        pair = torch.cat([images, warped])
        detections, heatmaps = {}, {}
        with torch.no_grad():
            step = self.hparams.eval_shift_step
            heats = [
                ("student", shift_averaged_heatmap(self.student_heatmap, pair, step)),
                ("teacher", shift_averaged_heatmap(self.teacher_heatmap, pair, step)),
            ]
            heats += [(m, d(pair.float()).to(pair.dtype)) for m, d in self.baselines.items()]
            if self.score_adapted_teacher:
                generator = torch.Generator().manual_seed(_seed32("adapted", seed, indices[0]))
                heats.append((ADAPTED_TEACHER, self.adapted_heatmap(pair, generator=generator)))
            for who, heat in heats:
                heat_a, heat_b = heat[:b], heat[b:] * valid[:, None].to(heat.dtype)
                detections[who] = PairDetections.from_detections(
                    self.eval_extraction(heat_a), self.eval_extraction(heat_b)
                )
                heatmaps[who] = heat_a
            media = self._media(images, ok) if self._media_left > 0 else (None, None)
        return AdaptationOutput(
            homography=homs,
            shape=(h, w),
            ok=ok,
            detections=detections,
            student_heatmap=heatmaps["student"],
            teacher_heatmap=heatmaps["teacher"],
            adapted_heatmap=media[1],
            media_images=media[0],
        )
