"""torchvision's Mask R-CNN behind the detection wrapper: masks in (targets), masks out (detections).

``maskrcnn_resnet50_fpn`` / ``_v2`` are torchvision's builders; ``maskrcnn_mobilenet_v3_large_fpn``
(the CPU-sized default) is torchvision's ``MaskRCNN`` on the MobileNetV3-Large FPN backbone that
``fasterrcnn_mobilenet_v3_large_fpn`` uses (same anchors), built here because torchvision ships no
builder for it. Nothing is downloaded (``weights=None``); ``pretrained=PATH`` loads a local state dict.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn
from torchvision.models import detection
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import mobilenet_backbone

from pixelwise.nets.torchvision_detectors import TorchvisionDetector

__all__ = ["MASK_ARCHITECTURES", "TorchvisionMaskRCNN"]


def maskrcnn_mobilenet_v3_large_fpn(
    *,
    weights: Any = None,
    weights_backbone: Any = None,
    num_classes: int = 91,
    trainable_backbone_layers: int = 6,
    **kwargs: Any,
) -> detection.MaskRCNN:
    """Mask R-CNN with torchvision's MobileNetV3-Large FPN backbone (as fasterrcnn_mobilenet_v3_large_fpn), random init."""
    if weights is not None or weights_backbone is not None:
        raise ValueError(
            "maskrcnn_mobilenet_v3_large_fpn is built without downloaded weights; use model.pretrained=PATH"
        )
    backbone = mobilenet_backbone(
        backbone_name="mobilenet_v3_large",
        weights=None,
        fpn=True,
        norm_layer=nn.BatchNorm2d,
        trainable_layers=trainable_backbone_layers,
    )
    anchor_sizes = ((32, 64, 128, 256, 512),) * 3
    aspect_ratios = ((0.5, 1.0, 2.0),) * len(anchor_sizes)
    return detection.MaskRCNN(
        backbone,
        num_classes=num_classes,
        rpn_anchor_generator=AnchorGenerator(anchor_sizes, aspect_ratios),
        **kwargs,
    )


MASK_ARCHITECTURES: dict[str, Any] = {
    "maskrcnn_resnet50_fpn": detection.maskrcnn_resnet50_fpn,
    "maskrcnn_resnet50_fpn_v2": detection.maskrcnn_resnet50_fpn_v2,
    "maskrcnn_mobilenet_v3_large_fpn": maskrcnn_mobilenet_v3_large_fpn,
}


class TorchvisionMaskRCNN(TorchvisionDetector):
    """Mask R-CNN with 0-based labels: ``losses(images, targets)`` with per image "masks" uint8 [N,H,W];
    ``detect(images)`` -> per image {"boxes" [N,4], "scores" [N], "labels" [N], "masks" float [N,1,H,W]} (probabilities)."""

    produces_masks = True
    architectures: ClassVar[dict[str, Any]] = MASK_ARCHITECTURES

    def losses(
        self, images: torch.Tensor, targets: Sequence[dict[str, torch.Tensor]]
    ) -> dict[str, torch.Tensor]:
        for i, t in enumerate(targets):
            if "masks" not in t:
                raise KeyError(
                    f"image {i}: Mask R-CNN targets need 'masks' [N,H,W] (data.with_masks=true)"
                )
        return super().losses(images, targets)
