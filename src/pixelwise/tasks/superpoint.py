"""SuperPoint: joint interest-point detection (65-way cell classification) and description."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from pixelwise.geometry.adaptation import check_shift_step, shift_averaged_heatmap
from pixelwise.geometry.cells import CELL, keypoints_to_cell_labels, logits_to_heatmap
from pixelwise.geometry.keypoints import SUPERPOINT_EXTRACTION, Extraction
from pixelwise.losses.cell_cross_entropy import cell_cross_entropy
from pixelwise.losses.descriptor_hinge import descriptor_hinge_loss
from pixelwise.nets.classical_features import ClassicalFeatures
from pixelwise.nets.superpoint import (  # noqa: F401  (sample_descriptors: its old home)
    SuperPointNet,
    load_detector_weights,
    sample_descriptors,
    superpoint_features,
    superpoint_net_config,
)
from pixelwise.tasks.base import PixelwiseTask
from pixelwise.tasks.optim import OptimizerFactory, SchedulerFactory
from pixelwise.tasks.outputs import FeatureOutput, Features, SuperPointPairOutput

__all__ = ["SuperPointTask"]

_DEFAULT = SUPERPOINT_EXTRACTION
# The HPatches-protocol metrics each split of a datamodule with a detector_test split is for.
_PARTS = {"test": "descriptors", "detector_test": "detector"}
# What task.part_extraction may override per part.
_PART_KEYS = ("detection_threshold", "nms_radius")


def _batch_part(batch: dict[str, Any]) -> str:
    """The HPatches-protocol part a batch is for: from its ``"split"`` tags, "both" when untagged."""
    splits = set(batch.get("split") or ())
    if len(splits) > 1:
        raise ValueError(f"a test batch mixes the splits {sorted(splits)}")
    return _PARTS[splits.pop()] if splits else "both"


class SuperPointTask(PixelwiseTask):
    """SuperPointNet + L = L_p(X, Y) + L_p(X', Y') + lambda * L_d on warped pairs.

    Training/validation batches (``pixelwise.data.SuperPointPairs``): ``image_a``/``image_b``
    [B,1,H,W], ``keypoints_a``/``keypoints_b`` lists of [N_i,2] (x, y), ``valid_mask_a``/
    ``valid_mask_b`` bool [B,H,W], ``homography`` [B,3,3] (a -> b). Test batches may be HPatches
    pairs (no keypoints: no loss, only features). Evaluation steps return a
    :class:`~pixelwise.tasks.outputs.SuperPointPairOutput` (per image :meth:`extract` features,
    extracted with ``max_keypoints``, ``nms_radius``, ``detection_threshold``, ``border``: by
    default :data:`~pixelwise.geometry.keypoints.SUPERPOINT_EXTRACTION`); at test it also carries
    the ``baselines`` (OpenCV ORB/SIFT, :class:`~pixelwise.nets.ClassicalFeatures`) on the same pairs.
    Test batches tagged ``"split"`` (a datamodule with a ``detector_test`` split: HPatches at
    480x640 for the descriptors, at 240x320 for the detector) say so in ``SuperPointPairOutput.part``,
    and ``part_extraction`` (e.g. ``{"descriptors": {"nms_radius": 8}}``) overrides ``nms_radius``
    and ``detection_threshold`` for a part's extraction; a part it does not name, and every other
    batch, uses the task's own. ``eval_shift_step`` < 8 detects at evaluation on the heatmap
    averaged over sub-cell input shifts (:func:`~pixelwise.geometry.adaptation.shift_averaged_heatmap`;
    descriptors from the unshifted pass): the stride-8 detector head is not shift-equivariant.
    ``net`` may be None when ``net_config`` (stored in the checkpoint's hparams) rebuilds it, so
    ``SuperPointTask.load_from_checkpoint(path)`` needs no net. The official
    ``superpoint_v1.pth`` loads into the net (``model.pretrained``); ``detector_weights`` a MagicPoint
    state dict (same widths, no descriptor head) into the encoder and detector head, the
    descriptor head staying random (training SuperPoint from a MagicPoint).
    """

    # Stored by hand (from the net actually built), not as the argument given.
    hparams_ignore = ("net_config",)

    def __init__(
        self,
        net: nn.Module | None = None,
        optimizer: OptimizerFactory | None = None,
        scheduler: SchedulerFactory | None = None,
        net_config: dict[str, Any] | None = None,
        lambda_loss: float = 1e-4,
        lambda_d: float = 250.0,
        pos_margin: float = 1.0,
        neg_margin: float = 0.2,
        descriptor_normalization: str = "pairs",
        dot_normalization: str = "none",
        positive_radius: float | None = None,
        max_keypoints: int | None = _DEFAULT.top_k,
        nms_radius: int = _DEFAULT.nms_radius,
        detection_threshold: float = _DEFAULT.threshold,
        border: int = _DEFAULT.border,
        part_extraction: dict[str, dict[str, Any]] | None = None,
        eval_shift_step: int = CELL,
        detector_weights: str | None = None,
        channels_last: bool = True,
        baselines: Sequence[str] = (),
    ) -> None:
        if net is None:
            if net_config is None:
                raise ValueError(
                    "SuperPointTask: give a net, or net_config (the SuperPointNet kwargs) to build one"
                )
            net = SuperPointNet(**net_config)
        if not isinstance(net, SuperPointNet) or not net.descriptor:
            raise ValueError(
                "SuperPointTask: the net must be a SuperPointNet with descriptor=True "
                f"(model=superpoint), got {type(net).__name__}"
                + ("" if not isinstance(net, SuperPointNet) else " without a descriptor head")
            )
        if lambda_loss < 0 or lambda_d < 0:
            raise ValueError(
                f"task.lambda_loss={lambda_loss}, task.lambda_d={lambda_d}: expected >= 0"
            )
        extraction = Extraction.checked(
            detection_threshold, nms_radius, border, max_keypoints, keys={"top_k": "max_keypoints"}
        )
        check_shift_step(eval_shift_step, "task.eval_shift_step")
        parts = {}
        for part, overrides in (part_extraction or {}).items():
            where = f"task.part_extraction.{part}"
            if part not in _PARTS.values():
                raise ValueError(
                    f"{where}: unknown part, expected one of {sorted(_PARTS.values())}"
                )
            unknown = set(overrides or {}) - set(_PART_KEYS)
            if unknown:
                raise ValueError(
                    f"{where}: unknown keys {sorted(unknown)}, expected {list(_PART_KEYS)}"
                )
            settings = {"detection_threshold": detection_threshold, "nms_radius": nms_radius}
            settings.update(overrides or {})
            parts[part] = Extraction.checked(
                settings["detection_threshold"],
                settings["nms_radius"],
                border,
                max_keypoints,
                where=where,
                keys={"top_k": "max_keypoints"},
            )
        if detector_weights and getattr(net, "pretrained", None):
            raise ValueError(
                f"model.pretrained={net.pretrained} (a whole SuperPoint) and "
                f"task.detector_weights={detector_weights} (a MagicPoint for its encoder and "
                "detector head) exclude each other: set task.detector_weights=null"
            )
        if detector_weights:
            load_detector_weights(net, detector_weights)
        super().__init__(net, optimizer, scheduler, channels_last)
        # Rebuilding the net from the checkpoint alone needs its constructor kwargs.
        self.hparams["net_config"] = superpoint_net_config(net)
        self.extraction = extraction
        self.part_extraction = parts
        top_k = int(max_keypoints or _DEFAULT.top_k)
        self.baselines = {m: ClassicalFeatures(m, max_keypoints=top_k) for m in baselines}

    # -- network ------------------------------------------------------------------------------

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """images [B,1,H,W] -> {"logits": [B,65,Hc,Wc], "descriptors": [B,D,Hc,Wc] raw}."""
        return self.net(self.as_input(images))

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse a checkpoint whose descriptor dimension differs from the configured net's."""
        weight = checkpoint.get("state_dict", {}).get("net.convDb.weight")
        if weight is not None and weight.shape[0] != self.net.descriptor_dim:
            raise ValueError(
                f"checkpoint descriptors have D={weight.shape[0]} but the configured net has "
                f"model.descriptor_dim={self.net.descriptor_dim}: set model.descriptor_dim="
                f"{weight.shape[0]} (or load without a net: SuperPointTask.load_from_checkpoint(path))"
            )

    # -- extraction -----------------------------------------------------------------------------

    @torch.no_grad()
    def extract(
        self,
        images: torch.Tensor,
        max_keypoints: int | None = _DEFAULT.top_k,
        nms_radius: int | None = None,
        threshold: float | None = None,
        border: int | None = None,
    ) -> list[Features]:
        """images [B,1,H,W] (or [1,H,W]), any size -> per image {"keypoints" [N,2] (x,y), "scores" [N], "descriptors" [N,D]}.

        ``nms_radius``, ``threshold`` and ``border`` default to the task's own extraction
        (``task.nms_radius``, ``task.detection_threshold``, ``task.border``).
        """
        if images.dim() == 3:
            images = images[None]
        was_training = self.training
        self.eval()
        try:
            out = self(images.to(self.device, torch.float32))
        finally:
            self.train(was_training)
        own = self.extraction
        extraction = Extraction(
            own.threshold if threshold is None else threshold,
            own.nms_radius if nms_radius is None else nms_radius,
            own.border if border is None else border,
            max_keypoints,
        )
        return superpoint_features(out, images.shape[-2:], extraction)

    # -- loss -----------------------------------------------------------------------------------

    def _labels(self, batch: dict[str, Any], side: str, size) -> torch.Tensor:
        if f"keypoints_{side}" not in batch:
            raise ValueError(
                f"the training batch has no keypoints_{side}: its images carry no (pseudo-)labels; "
                "train on a labelled source (data.train.labels=DIR of exported .npz, or "
                "Synthetic Shapes)"
            )
        keypoints = batch[f"keypoints_{side}"]
        if isinstance(keypoints, torch.Tensor) and keypoints.dim() == 2:
            raise ValueError(
                f"batch['keypoints_{side}'] must hold one [N, 2] tensor per image; got a single "
                f"[N, 2] tensor: add 'keypoints_{side}' to data.list_keys"
            )
        return keypoints_to_cell_labels(keypoints, size, valid_mask=batch.get(f"valid_mask_{side}"))

    def losses(
        self, batch: dict[str, Any], out_a: dict[str, torch.Tensor], out_b: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """Pair batch + net outputs -> {"loss", "detector", "descriptor", "positive", "negative", "skipped"}."""
        hp = self.hparams
        size = tuple(batch["image_a"].shape[-2:])
        det = cell_cross_entropy(out_a["logits"].float(), self._labels(batch, "a", size))
        det = det + cell_cross_entropy(out_b["logits"].float(), self._labels(batch, "b", size))
        desc = descriptor_hinge_loss(
            out_a["descriptors"].float(),
            out_b["descriptors"].float(),
            batch["homography"],
            valid_mask_b=batch.get("valid_mask_b"),
            lambda_d=hp.lambda_d,
            pos_margin=hp.pos_margin,
            neg_margin=hp.neg_margin,
            normalization=hp.descriptor_normalization,
            dot_normalization=hp.dot_normalization,
            positive_radius=hp.positive_radius,
            return_components=True,
        )
        return {
            "loss": det + hp.lambda_loss * desc["loss"],
            "detector": det,
            "descriptor": desc["loss"],
            "positive": desc["positive"],
            "negative": desc["negative"],
            "skipped": torch.as_tensor(desc["skipped"], dtype=torch.float32),
        }

    def _pair_forward(self, batch: dict[str, Any]):
        both = torch.cat([batch["image_a"], batch["image_b"]])
        out = self(both)
        n = batch["image_a"].shape[0]
        out_a = {k: v[:n] for k, v in out.items()}
        out_b = {k: v[n:] for k, v in out.items()}
        return out_a, out_b

    def training_loss(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        return self._logged(self.losses(batch, *self._pair_forward(batch)))

    @staticmethod
    def _logged(losses: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The losses under their logged names (loss, loss_detector, ..., skipped_pairs)."""
        names = {"skipped": "skipped_pairs", "loss": "loss"}
        return {names.get(k, f"loss_{k}"): v for k, v in losses.items()}

    def log_losses(
        self, losses: torch.Tensor | dict[str, torch.Tensor], stage: str, batch_size: int
    ) -> torch.Tensor:
        """As the base, but ``<stage>/skipped_pairs`` is a sum over the epoch, not a mean."""
        parts = dict(losses) if isinstance(losses, dict) else {"loss": losses}
        skipped = parts.pop("skipped_pairs", None)
        if skipped is not None:
            self.log(
                f"{stage}/skipped_pairs",
                skipped,
                batch_size=batch_size,
                reduce_fx="sum",
                sync_dist=stage != "train",
            )
        return super().log_losses(parts, stage, batch_size)

    def evaluation_step(self, batch: dict[str, Any], stage: str) -> SuperPointPairOutput:
        out_a, out_b = self._pair_forward(batch)
        loss = None
        if "keypoints_a" in batch:
            losses = self._logged(self.losses(batch, out_a, out_b))
            loss = self.log_losses(losses, stage, batch["image_a"].shape[0])
        extraction = self.part_extraction.get(_batch_part(batch), self.extraction)
        result = self._pair_output(
            batch,
            self._eval_features(out_a, batch["image_a"], extraction),
            self._eval_features(out_b, batch["image_b"], extraction),
            loss,
        )
        if stage == "test":
            result.baselines = {
                method: self._pair_output(
                    batch,
                    [features(image) for image in batch["image_a"]],
                    [features(image) for image in batch["image_b"]],
                )
                for method, features in self.baselines.items()
            }
        return result

    def _eval_features(
        self, out: dict[str, torch.Tensor], images: torch.Tensor, extraction: Extraction
    ) -> list[Features]:
        """Features of an evaluation image; with ``eval_shift_step`` < 8 detected on the shift-averaged heatmap."""
        step = self.hparams.eval_shift_step
        heat = None
        if step != CELL:
            plain = logits_to_heatmap(out["logits"].float(), image_size=images.shape[-2:])
            heat = shift_averaged_heatmap(self._heatmap, images, step, unshifted=plain)
        return superpoint_features(out, images.shape[-2:], extraction, heatmap=heat)

    def _heatmap(self, images: torch.Tensor) -> torch.Tensor:
        return logits_to_heatmap(self(images)["logits"].float(), image_size=images.shape[-2:])

    @staticmethod
    def _pair_output(
        batch: dict[str, Any],
        features_a: list[Features],
        features_b: list[Features],
        loss: torch.Tensor | None = None,
    ) -> SuperPointPairOutput:
        n = batch["image_a"].shape[0]
        return SuperPointPairOutput(
            features_a=features_a,
            features_b=features_b,
            homography=batch["homography"],
            kinds=list(batch["kind"]) if "kind" in batch else [None] * n,
            shape_a=tuple(batch["image_a"].shape[-2:]),
            shape_b=tuple(batch["image_b"].shape[-2:]),
            loss=loss,
            part=_batch_part(batch),
        )

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> FeatureOutput:
        out = self(batch["image"])
        return FeatureOutput(superpoint_features(out, batch["image"].shape[-2:], self.extraction))
