"""U-Net (Ronneberger et al. 2015) with configurable depth, width, normalization and upsampling."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

NORMS = ("batch", "group", "instance", "none")
UPSAMPLING = ("bilinear", "transposed", "nearest")


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(min(8, channels), channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    return nn.Identity()


class ConvBlock(nn.Sequential):
    """Two 3x3 conv + norm + ReLU layers: [B,Cin,H,W] -> [B,Cout,H,W]."""

    def __init__(self, in_channels: int, out_channels: int, norm: str) -> None:
        bias = norm == "none"
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=bias),
            _norm(norm, out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=bias),
            _norm(norm, out_channels),
            nn.ReLU(inplace=True),
        )


class Up(nn.Module):
    """Upsample by 2, concatenate the skip connection, ConvBlock: -> [B,Cout,2H,2W]."""

    def __init__(
        self, in_channels: int, skip_channels: int, out_channels: int, mode: str, norm: str
    ):
        super().__init__()
        self.mode = mode
        if mode == "transposed":
            self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, 2, stride=2)
            in_channels = in_channels // 2
        self.block = ConvBlock(in_channels + skip_channels, out_channels, norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        if self.mode == "transposed":
            x = self.up(x)
        elif self.mode == "bilinear":
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        else:
            x = F.interpolate(x, size=skip.shape[-2:], mode="nearest")
        return self.block(torch.cat([x, skip], dim=1))


class UNet(nn.Module):
    """U-Net: images [B,in_channels,H,W] -> logits [B,num_classes,H,W], any H and W.

    `depth` is the number of 2x downsamplings; widths double at each one, starting from
    `base_channels`. Inputs whose size is not divisible by 2**depth are padded (reflect)
    and the logits cropped back, so every size works.
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 9,
        base_channels: int = 32,
        depth: int = 4,
        norm: str = "batch",
        upsampling: str = "bilinear",
    ) -> None:
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"UNet: norm={norm!r} is not one of {NORMS}")
        if upsampling not in UPSAMPLING:
            raise ValueError(f"UNet: upsampling={upsampling!r} is not one of {UPSAMPLING}")
        if depth < 1:
            raise ValueError(f"UNet: depth={depth} must be >= 1")
        for name, value in (("in_channels", in_channels), ("num_classes", num_classes)):
            if value < 1:
                raise ValueError(f"UNet: {name}={value} must be >= 1")
        if base_channels < 1:
            raise ValueError(f"UNet: base_channels={base_channels} must be >= 1")
        widths = [base_channels * 2**i for i in range(depth + 1)]
        self.depth = depth
        self.widths = widths
        self.stem = ConvBlock(in_channels, widths[0], norm)
        self.down = nn.ModuleList(ConvBlock(widths[i], widths[i + 1], norm) for i in range(depth))
        self.up = nn.ModuleList(
            Up(widths[i + 1], widths[i], widths[i], upsampling, norm)
            for i in reversed(range(depth))
        )
        self.head = nn.Conv2d(widths[0], num_classes, 1)

    def pad(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """Reflect-pad [B,C,H,W] to a multiple of 2**depth; returns the padded tensor and (H, W)."""
        h, w = x.shape[-2:]
        m = 2**self.depth
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            mode = "reflect" if h > ph and w > pw else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        return x, (h, w)

    def decode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Encoder + decoder features, coarsest first: list of depth+1 maps [B,C_i,H_i,W_i]."""
        skips = [self.stem(x)]
        for block in self.down:
            skips.append(block(F.max_pool2d(skips[-1], 2)))
        feats = [skips.pop()]
        for up in self.up:
            feats.append(up(feats[-1], skips.pop()))
        return feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """images [B,C,H,W] -> logits [B,num_classes,H,W]."""
        x, (h, w) = self.pad(x)
        return self.head(self.decode(x)[-1])[..., :h, :w]
