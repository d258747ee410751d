"""SuperPoint: joint interest-point detection (65-way cell classification) and description."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from pixelwise.geometry.cells import CELL, keypoints_to_cell_labels, logits_to_heatmap
from pixelwise.geometry.keypoints import extract_keypoints
from pixelwise.losses.cell_cross_entropy import cell_cross_entropy
from pixelwise.losses.descriptor_hinge import descriptor_hinge_loss
from pixelwise.nets.superpoint import SuperPointNet, load_superpoint_weights
from pixelwise.tasks.optim import OptimizerFactory, SchedulerFactory, configure

__all__ = ["SuperPointTask", "load_detector_weights", "sample_descriptors", "superpoint_net_config"]


def superpoint_net_config(net: SuperPointNet) -> dict[str, Any]:
    """The constructor kwargs that rebuild ``net`` (a :class:`SuperPointNet` with a descriptor head)."""
    return {
        "descriptor": bool(net.descriptor),
        "batch_norm": bool(net.batch_norm),
        "channels": [int(getattr(net, f"conv{i}a").out_channels) for i in range(1, 5)],
        "head_channels": int(net.convPa.out_channels),
        "descriptor_dim": int(net.descriptor_dim),
    }


def load_detector_weights(net: SuperPointNet, path: str) -> SuperPointNet:
    """Load a MagicPoint state dict (encoder + detector head) into a SuperPointNet; the descriptor head is untouched."""
    config = {**superpoint_net_config(net), "descriptor": False}
    detector = load_superpoint_weights(SuperPointNet(**config), path, ignore_descriptor=True)
    missing, unexpected = net.load_state_dict(detector.state_dict(), strict=False)
    assert not unexpected and all(k.startswith(("convD", "bnD")) for k in missing)
    return net


def sample_descriptors(
    descriptors: torch.Tensor, keypoints: torch.Tensor, cell_size: int = CELL
) -> torch.Tensor:
    """Bilinear sample of a coarse map [D,Hc,Wc] at keypoints [N,2] (x, y) pixels -> L2-normalised [N,D].

    Coarse cell (h, w) describes the pixel at its centre (cs*w + (cs-1)/2, cs*h + (cs-1)/2),
    the convention of the descriptor loss; points beyond the outer centres take the border
    value. The map is L2-normalised first, the samples again.
    """
    if descriptors.dim() != 3:
        raise ValueError(f"descriptors must be [D, Hc, Wc], got {list(descriptors.shape)}")
    if keypoints.dim() != 2 or keypoints.shape[1] != 2:
        raise ValueError(f"keypoints must be [N, 2] (x, y), got {list(keypoints.shape)}")
    dim, hc, wc = descriptors.shape
    if keypoints.shape[0] == 0:
        return descriptors.new_zeros(0, dim)
    dense = F.normalize(descriptors.float(), dim=0)
    offset = (cell_size - 1) / 2.0
    u = (keypoints.float().to(dense.device) - offset) / cell_size  # coarse (x, y)
    size = torch.tensor([max(wc - 1, 1), max(hc - 1, 1)], device=dense.device, dtype=u.dtype)
    grid = (u / size * 2.0 - 1.0).view(1, 1, -1, 2)
    sampled = F.grid_sample(
        dense[None], grid, mode="bilinear", padding_mode="border", align_corners=True
    )
    return F.normalize(sampled[0, :, 0].T, dim=1)


class SuperPointTask(L.LightningModule):
    """SuperPointNet + L = L_p(X, Y) + L_p(X', Y') + lambda * L_d on warped pairs.

    Training/validation batches (``pixelwise.data.SuperPointPairs``): ``image_a``/``image_b``
    [B,1,H,W], ``keypoints_a``/``keypoints_b`` lists of [N_i,2] (x, y), ``valid_mask_a``/
    ``valid_mask_b`` bool [B,H,W], ``homography`` [B,3,3] (a -> b). Test batches may be HPatches
    pairs (no keypoints: no loss, only features). Validation and test steps return per image
    features ``features_a``/``features_b`` (lists of :meth:`extract` dicts) for the callbacks.
    ``net`` may be None when ``net_config`` (stored in the checkpoint's hparams) rebuilds it, so
    ``SuperPointTask.load_from_checkpoint(path)`` needs no net. The official
    ``superpoint_v1.pth`` loads into the net (``model.pretrained``); ``detector_weights`` a MagicPoint
    state dict (same widths, no descriptor head) into the encoder and detector head, the
    descriptor head staying random (training SuperPoint from a MagicPoint).
    """

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
        max_keypoints: int = 1000,
        nms_radius: int = 4,
        detection_threshold: float = 0.015,
        border: int = 4,
        detector_weights: str | None = None,
        channels_last: bool = True,
    ) -> None:
        super().__init__()
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
        for key, value in (("nms_radius", nms_radius), ("border", border)):
            if value < 0:
                raise ValueError(f"task.{key}={value}: expected >= 0")
        if max_keypoints is not None and max_keypoints < 1:
            raise ValueError(f"task.max_keypoints={max_keypoints}: expected null or >= 1")
        if detector_weights and getattr(net, "pretrained", None):
            raise ValueError(
                f"model.pretrained={net.pretrained} (a whole SuperPoint) and "
                f"task.detector_weights={detector_weights} (a MagicPoint for its encoder and "
                "detector head) exclude each other: set task.detector_weights=null"
            )
        if detector_weights:
            load_detector_weights(net, detector_weights)
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler", "net_config"])
        # Rebuilding the net from the checkpoint alone needs its constructor kwargs.
        self.hparams["net_config"] = superpoint_net_config(net)
        self.net = net
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    # -- network ------------------------------------------------------------------------------

    def setup(self, stage: str) -> None:
        """Put the net in the chosen memory format."""
        self.net.to(memory_format=self.memory_format)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """images [B,1,H,W] -> {"logits": [B,65,Hc,Wc], "descriptors": [B,D,Hc,Wc] raw}."""
        return self.net(images.contiguous(memory_format=self.memory_format))

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

    def _features(
        self,
        out: dict[str, torch.Tensor],
        size: tuple[int, int],
        max_keypoints: int | None,
        nms_radius: int,
        threshold: float,
        border: int,
    ) -> list[dict[str, torch.Tensor]]:
        heat = logits_to_heatmap(out["logits"].float(), image_size=size)
        detections = extract_keypoints(
            heat, threshold=threshold, nms_radius=nms_radius, border=border, top_k=max_keypoints
        )
        for d, desc in zip(detections, out["descriptors"]):
            d["descriptors"] = sample_descriptors(desc, d["keypoints"])
        return detections

    @torch.no_grad()
    def extract(
        self,
        images: torch.Tensor,
        max_keypoints: int | None = 1000,
        nms_radius: int = 4,
        threshold: float = 0.015,
        border: int = 4,
    ) -> list[dict[str, torch.Tensor]]:
        """images [B,1,H,W] (or [1,H,W]), any size -> per image {"keypoints" [N,2] (x,y), "scores" [N], "descriptors" [N,D]}."""
        if images.dim() == 3:
            images = images[None]
        was_training = self.training
        self.eval()
        try:
            out = self(images.to(self.device, torch.float32))
        finally:
            self.train(was_training)
        return self._features(
            out, tuple(images.shape[-2:]), max_keypoints, nms_radius, threshold, border
        )

    def _extract_defaults(self, out: dict[str, torch.Tensor], size) -> list[dict]:
        hp = self.hparams
        return self._features(
            out, size, hp.max_keypoints, hp.nms_radius, hp.detection_threshold, hp.border
        )

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

    def _log_losses(self, losses: dict[str, torch.Tensor], stage: str, batch_size: int) -> None:
        sync = stage != "train"
        self.log(
            f"{stage}/loss", losses["loss"], prog_bar=True, batch_size=batch_size, sync_dist=sync
        )
        for key in ("detector", "descriptor", "positive", "negative"):
            self.log(f"{stage}/loss_{key}", losses[key], batch_size=batch_size, sync_dist=sync)
        self.log(
            f"{stage}/skipped_pairs",
            losses["skipped"],
            batch_size=batch_size,
            reduce_fx="sum",
            sync_dist=sync,
        )

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        out_a, out_b = self._pair_forward(batch)
        losses = self.losses(batch, out_a, out_b)
        self._log_losses(losses, "train", batch["image_a"].shape[0])
        return losses["loss"]

    def _eval_step(self, batch: dict[str, Any], stage: str) -> dict[str, Any]:
        out_a, out_b = self._pair_forward(batch)
        result: dict[str, Any] = {}
        if "keypoints_a" in batch:
            losses = self.losses(batch, out_a, out_b)
            self._log_losses(losses, stage, batch["image_a"].shape[0])
            result["loss"] = losses["loss"]
        result["features_a"] = self._extract_defaults(out_a, tuple(batch["image_a"].shape[-2:]))
        result["features_b"] = self._extract_defaults(out_b, tuple(batch["image_b"].shape[-2:]))
        return result

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        return self._eval_step(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        return self._eval_step(batch, "test")

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> list[dict[str, torch.Tensor]]:
        out = self(batch["image"])
        return self._extract_defaults(out, tuple(batch["image"].shape[-2:]))

    def configure_optimizers(self) -> dict[str, Any]:
        if self.optimizer_factory is None:
            raise ValueError("SuperPointTask: task.optimizer is needed to train")
        return configure(
            self.parameters(),
            self.optimizer_factory,
            self.scheduler_factory,
            self.trainer.estimated_stepping_batches,
        )
