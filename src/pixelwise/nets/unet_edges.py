"""The seed's U-Net with side outputs: every decoder scale decoded by a 1x1 conv into an edge map."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pixelwise.nets.unet import UNet


class UNetEdges(nn.Module):
    """U-Net edges: images [B,C,H,W] -> list of depth+2 logit maps [B,1,H,W] (sides coarsest first, fused).

    A `UNet` supplies the decoder features (`decode`, coarsest first: the bottleneck, then
    each decoder block). Each is mapped by its own 1x1 conv to edge logits and upsampled
    (bilinear) to the input size; the fused map is a 1x1 conv over the side maps, initialised
    to their mean. The U-Net's own classification head is not used.
    """

    def __init__(
        self,
        in_channels: int = 3,
        base_channels: int = 16,
        depth: int = 3,
        norm: str = "batch",
        upsampling: str = "bilinear",
    ) -> None:
        super().__init__()
        self.unet = UNet(in_channels, 1, base_channels, depth, norm, upsampling)
        # Unused parameters would break DDP (they never get a gradient): drop the head.
        self.unet.head = nn.Identity()
        widths = list(reversed(self.unet.widths))  # coarsest first, as decode() returns
        self.side = nn.ModuleList(nn.Conv2d(w, 1, 1) for w in widths)
        self.fuse = nn.Conv2d(len(widths), 1, 1)
        nn.init.constant_(self.fuse.weight, 1.0 / len(widths))
        nn.init.zeros_(self.fuse.bias)

    @property
    def num_outputs(self) -> int:
        """Number of returned maps: one per scale plus the fused one."""
        return len(self.side) + 1

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """images [B,C,H,W] -> [side_coarsest, ..., side_finest, fused], each logits [B,1,H,W]."""
        padded, (h, w) = self.unet.pad(x)
        size = padded.shape[-2:]
        sides = []
        for feat, conv in zip(self.unet.decode(padded), self.side):
            side = conv(feat)
            if side.shape[-2:] != size:
                side = F.interpolate(side, size=size, mode="bilinear", align_corners=False)
            sides.append(side)
        fused = self.fuse(torch.cat(sides, dim=1))
        return [s[..., :h, :w] for s in (*sides, fused)]
