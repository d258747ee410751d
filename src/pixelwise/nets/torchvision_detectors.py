"""torchvision's detectors (Faster R-CNN, RetinaNet, FCOS) behind the interface of the detection task.

Built without downloading anything (``weights=None, weights_backbone=None``); ``pretrained=PATH``
loads a local state dict (of this wrapper, or of the bare torchvision model). torchvision counts
the background as class 0, the project's labels are 0..K-1: the wrapper shifts labels by one on
the way in and out, so the task, metrics and data are the same for every detector.

Its internal transform resizes so that the shorter side is ``min_size`` (capped by ``max_size``);
the defaults (800/1333) would upsample the CPU recipe's 128x160 scenes 6x, so set them to the
data's size. It also normalises with ``image_mean``/``image_std`` (ImageNet's by default).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn
from torchvision.models import detection

from pixelwise.nets.state_files import load_state_file

__all__ = ["ARCHITECTURES", "TorchvisionDetector"]

ARCHITECTURES: dict[str, Any] = {
    "fasterrcnn_resnet50_fpn": detection.fasterrcnn_resnet50_fpn,
    "fasterrcnn_resnet50_fpn_v2": detection.fasterrcnn_resnet50_fpn_v2,
    "fasterrcnn_mobilenet_v3_large_fpn": detection.fasterrcnn_mobilenet_v3_large_fpn,
    "retinanet_resnet50_fpn": detection.retinanet_resnet50_fpn,
    "retinanet_resnet50_fpn_v2": detection.retinanet_resnet50_fpn_v2,
    "fcos_resnet50_fpn": detection.fcos_resnet50_fpn,
    "maskrcnn_resnet50_fpn": detection.maskrcnn_resnet50_fpn,
}


class TorchvisionDetector(nn.Module):
    """A torchvision detection model with 0-based labels.

    ``losses(images, targets)`` (training mode) -> dict of scalar losses;
    ``detect(images)`` (eval mode) -> per image {"boxes" [N,4] xyxy, "scores" [N], "labels" [N]}.
    Extra keyword arguments go to the torchvision builder (e.g. ``box_score_thresh``,
    ``trainable_backbone_layers``). ``architectures``: the builders ``architecture`` names.
    """

    computes_own_loss = True
    architectures: ClassVar[dict[str, Any]] = ARCHITECTURES

    def __init__(
        self,
        architecture: str,
        num_classes: int,
        min_size: int | Sequence[int] = 800,
        max_size: int = 1333,
        image_mean: Sequence[float] | None = None,
        image_std: Sequence[float] | None = None,
        pretrained: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        if architecture not in self.architectures:
            raise ValueError(
                f"model.architecture={architecture!r}: expected one of {sorted(self.architectures)}"
            )
        if num_classes < 1:
            raise ValueError(f"model.num_classes={num_classes}: expected >= 1")
        self.architecture = architecture
        self.num_classes = num_classes
        options: dict[str, Any] = {"min_size": min_size, "max_size": max_size, **kwargs}
        if image_mean is not None:
            options["image_mean"] = list(image_mean)
        if image_std is not None:
            options["image_std"] = list(image_std)
        self.model = self.architectures[architecture](
            weights=None, weights_backbone=None, num_classes=num_classes + 1, **options
        )
        if pretrained:
            self.load_pretrained(pretrained)

    def load_pretrained(self, path: str) -> None:
        """Load a state dict file (this wrapper's keys, or the bare torchvision model's)."""
        what = f"{self.architecture} with {self.num_classes} classes"
        load_state_file(self, path, what, prefix="model.")

    @staticmethod
    def _shifted(targets: Sequence[dict[str, torch.Tensor]]) -> list[dict[str, torch.Tensor]]:
        return [
            {
                "boxes": t["boxes"],
                "labels": t["labels"] + 1,
                **{k: v for k, v in t.items() if k not in ("boxes", "labels")},
            }
            for t in targets
        ]

    def losses(
        self, images: torch.Tensor, targets: Sequence[dict[str, torch.Tensor]]
    ) -> dict[str, torch.Tensor]:
        """images [B,3,H,W], targets per image {"boxes" [N,4], "labels" [N] 0-based} -> losses."""
        return self.model(list(images), self._shifted(targets))

    def detect(self, images: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """images [B,3,H,W] -> per image {"boxes" [N,4], "scores" [N], "labels" [N] 0-based}."""
        out = self.model(list(images))
        return [
            {
                "boxes": d["boxes"],
                "scores": d["scores"],
                "labels": d["labels"] - 1,
                **({"masks": d["masks"]} if "masks" in d else {}),
            }
            for d in out
        ]

    def forward(self, images: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        return self.detect(images)
