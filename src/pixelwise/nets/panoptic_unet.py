"""The U-Net with Panoptic-DeepLab's three dense heads: semantic logits, centre heatmap, offsets."""

from __future__ import annotations

import torch
from torch import nn

from pixelwise.nets.unet import UNet

__all__ = ["PanopticUNet"]


def _head(in_channels: int, hidden: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, hidden, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(hidden, out_channels, 1),
    )


class PanopticUNet(nn.Module):
    """images [B,C,H,W] -> {"semantic": [B,K,H,W], "center": [B,1,H,W], "offset": [B,2,H,W] (dx, dy) in pixels}.

    One U-Net decoder feeds three heads on its last (full-resolution) features: the U-Net's own
    1x1 classifier (semantic), and two 3x3 conv + ReLU + 1x1 heads of ``head_channels`` for the
    centre heatmap and the offsets. ``offset_scale`` multiplies the raw offset output (offsets
    are tens of pixels; a unit-scale output learns them faster).
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 9,
        base_channels: int = 16,
        depth: int = 3,
        norm: str = "batch",
        upsampling: str = "bilinear",
        head_channels: int = 32,
        offset_scale: float = 8.0,
    ) -> None:
        super().__init__()
        self.unet = UNet(in_channels, num_classes, base_channels, depth, norm, upsampling)
        self.num_classes = num_classes
        width = self.unet.widths[0]
        self.center = _head(width, head_channels, 1)
        self.offset = _head(width, head_channels, 2)
        self.offset_scale = offset_scale

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x, (h, w) = self.unet.pad(x)
        feats = self.unet.decode(x)[-1]
        return {
            "semantic": self.unet.head(feats)[..., :h, :w],
            "center": self.center(feats)[..., :h, :w],
            "offset": self.offset(feats)[..., :h, :w] * self.offset_scale,
        }
