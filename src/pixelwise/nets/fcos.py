"""FCOS-style dense detector: every location of every pyramid level classifies itself into K
classes and regresses its distances to the four sides of its box (Tian et al. 2019).

The encoder is the U-Net's (``ConvBlock`` + max-pool, widths doubling), a small FPN merges its
deepest ``num_levels`` maps top-down, and one head shared by every level predicts, per location:

- ``cls_logits`` [B,K,H_l,W_l]: K sigmoid class scores (focal loss; bias initialised to the
  prior ``prior_probability``, as in RetinaNet/FCOS, so training starts with few positives);
- ``box_distances`` [B,4,H_l,W_l]: (l, t, r, b) in input pixels, ``exp(s_l * x) * stride_l`` with
  a learned scale ``s_l`` per level (positive by construction);
- ``centerness`` [B,1,H_l,W_l]: a logit of FCOS's centerness (on the regression tower, as in
  the FCOS "improvements").

Location ``(i, j)`` of a level with stride ``s`` sits at ``(j * s + s / 2, i * s + s / 2)`` in box
coordinates (COCO/torchvision: pixel ``c`` spans ``[c, c + 1]``), the centre of the pixels it
covers. Any input size works: inputs are padded bottom/right to a multiple of the coarsest
stride, which shifts no coordinate; decoding clips boxes to the unpadded size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from pixelwise.nets.state_files import load_state_file
from pixelwise.nets.unet import NORMS, ConvBlock

__all__ = ["FCOSNet"]


def _head_tower(channels: int, num_convs: int) -> nn.Sequential:
    """num_convs x (3x3 conv + GroupNorm + ReLU): GroupNorm because the head is shared by all
    levels and small CPU batches make BatchNorm statistics noisy (FCOS uses GN too)."""
    layers: list[nn.Module] = []
    for _ in range(num_convs):
        layers += [
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.GroupNorm(min(32, channels // 4) or 1, channels),
            nn.ReLU(inplace=True),
        ]
    return nn.Sequential(*layers)


class FCOSNet(nn.Module):
    """images [B,C,H,W] -> per-level dense predictions (see the module docstring).

    ``depth`` 2x downsamplings in the encoder (strides 1, 2, ..., 2**depth); the FPN uses the
    deepest ``num_levels`` of them, so ``strides = [2**(depth-num_levels+1), ..., 2**depth]``.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        base_channels: int = 16,
        depth: int = 4,
        num_levels: int = 3,
        fpn_channels: int = 64,
        head_convs: int = 2,
        norm: str = "batch",
        prior_probability: float = 0.01,
        pretrained: str | None = None,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"FCOSNet: num_classes={num_classes}: expected >= 1")
        if norm not in NORMS:
            raise ValueError(f"FCOSNet: norm={norm!r} is not one of {NORMS}")
        if not 1 <= num_levels <= depth:
            raise ValueError(
                f"FCOSNet: num_levels={num_levels} must be in [1, depth={depth}] "
                "(each level is one of the encoder's downsampled maps)"
            )
        if not 0.0 < prior_probability < 1.0:
            raise ValueError(f"FCOSNet: prior_probability={prior_probability}: expected in (0, 1)")
        widths = [base_channels * 2**i for i in range(depth + 1)]
        self.num_classes = num_classes
        self.depth = depth
        self.strides = [2**i for i in range(depth - num_levels + 1, depth + 1)]
        self.stem = ConvBlock(in_channels, widths[0], norm)
        self.down = nn.ModuleList(ConvBlock(widths[i], widths[i + 1], norm) for i in range(depth))
        level_widths = widths[depth - num_levels + 1 :]
        self.lateral = nn.ModuleList(nn.Conv2d(w, fpn_channels, 1) for w in level_widths)
        self.smooth = nn.ModuleList(
            nn.Conv2d(fpn_channels, fpn_channels, 3, padding=1) for _ in level_widths
        )
        self.cls_tower = _head_tower(fpn_channels, head_convs)
        self.box_tower = _head_tower(fpn_channels, head_convs)
        self.cls_logits = nn.Conv2d(fpn_channels, num_classes, 3, padding=1)
        self.box_distances = nn.Conv2d(fpn_channels, 4, 3, padding=1)
        self.centerness = nn.Conv2d(fpn_channels, 1, 3, padding=1)
        self.scales = nn.Parameter(torch.ones(num_levels))
        for conv in (self.cls_logits, self.box_distances, self.centerness):
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)
        nn.init.constant_(
            self.cls_logits.bias, -math.log((1 - prior_probability) / prior_probability)
        )
        if pretrained:
            self.load_pretrained(pretrained)

    def load_pretrained(self, path: str) -> None:
        """Load a state dict file of this net (e.g. the shipped weights/fcos_synthetic.pt)."""
        what = f"this FCOSNet (num_classes={self.num_classes}, strides {self.strides})"
        load_state_file(self, path, what)

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """Zero-pad [B,C,H,W] bottom/right to a multiple of the coarsest stride."""
        m = self.strides[-1]
        h, w = x.shape[-2:]
        return F.pad(x, (0, (-w) % m, 0, (-h) % m))

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """FPN maps, finest first: list of [B,fpn_channels,H/s,W/s] for s in ``strides``."""
        maps = [self.stem(x)]
        for block in self.down:
            maps.append(block(F.max_pool2d(maps[-1], 2)))
        maps = maps[len(maps) - len(self.strides) :]
        merged = [lateral(m) for lateral, m in zip(self.lateral, maps)]
        for i in range(len(merged) - 2, -1, -1):
            merged[i] = merged[i] + F.interpolate(merged[i + 1], size=merged[i].shape[-2:])
        return [smooth(m) for smooth, m in zip(self.smooth, merged)]

    def forward(self, images: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        """images [B,C,H,W] -> {"cls_logits", "box_distances", "centerness"}: lists over levels."""
        out: dict[str, list[torch.Tensor]] = {
            "cls_logits": [],
            "box_distances": [],
            "centerness": [],
        }
        for level, feat in enumerate(self.features(self.pad(images))):
            box_feat = self.box_tower(feat)
            out["cls_logits"].append(self.cls_logits(self.cls_tower(feat)))
            # Clamp before exp: a diverging logit gives a huge box (a finite GIoU), not inf.
            scaled = (self.scales[level] * self.box_distances(box_feat)).clamp(max=20.0)
            out["box_distances"].append(torch.exp(scaled) * self.strides[level])
            out["centerness"].append(self.centerness(box_feat))
        return out


def level_sizes(image_size: Sequence[int], strides: Sequence[int]) -> list[tuple[int, int]]:
    """(H_l, W_l) of each level for an unpadded input of ``image_size`` (H, W)."""
    h, w = image_size
    m = strides[-1]
    hp, wp = h + (-h) % m, w + (-w) % m
    return [(hp // s, wp // s) for s in strides]
