"""U-Net (Ronneberger et al. 2015) with configurable depth, width, normalization and upsampling.

The upsampling choices are the lecture's (Lecture 14, "In-network upsampling"): bilinear and
nearest interpolation, "bed of nails" unpooling (each value at the top-left of its 2x2 block,
zeros elsewhere), max unpooling (each value back at the position its encoder's max-pool took the
maximum from) and the learned transposed convolution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

NORMS = ("batch", "group", "instance", "none")
UPSAMPLING = ("bilinear", "transposed", "nearest", "max_unpool", "bed_of_nails")


def norm_layer(kind: str, channels: int) -> nn.Module:
    """The normalization layer ``kind`` (one of NORMS) for ``channels`` channels."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(min(8, channels), channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    return nn.Identity()


def check_arguments(owner: str, norm: str, **counts: int) -> None:
    """Raise a ValueError naming ``owner``, the argument and its value unless ``norm`` is one of
    NORMS and every count (depth, widths, channels) is at least 1."""
    if norm not in NORMS:
        raise ValueError(f"{owner}: norm={norm!r} is not one of {NORMS}")
    for name, value in counts.items():
        if value < 1:
            raise ValueError(f"{owner}: {name}={value} must be >= 1")


class ConvBlock(nn.Sequential):
    """Two 3x3 conv + norm + ReLU layers: [B,Cin,H,W] -> [B,Cout,H,W]."""

    def __init__(self, in_channels: int, out_channels: int, norm: str) -> None:
        bias = norm == "none"
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=bias),
            norm_layer(norm, out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=bias),
            norm_layer(norm, out_channels),
            nn.ReLU(inplace=True),
        )


def bed_of_nails(x: torch.Tensor) -> torch.Tensor:
    """Unpool [B,C,H,W] -> [B,C,2H,2W]: each value at the top-left of its 2x2 block, zeros elsewhere."""
    out = x.new_zeros(*x.shape[:-2], 2 * x.shape[-2], 2 * x.shape[-1])
    out[..., ::2, ::2] = x
    return out


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad [B,C,H,W] at the bottom and right to multiples of ``multiple`` (reflect, or replicate
    when the image is too small to reflect); returns the padded tensor and the original (H, W)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if h > ph and w > pw else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)


class Up(nn.Module):
    """Upsample by 2, concatenate the skip connection, ConvBlock: -> [B,Cout,2H,2W].

    ``max_unpool`` needs the indices of the encoder's max-pool that made this level; the pool
    ran on the skip's ``skip_channels``, so a 1x1 conv first maps the ``in_channels`` to those.
    """

    def __init__(
        self, in_channels: int, skip_channels: int, out_channels: int, mode: str, norm: str
    ):
        super().__init__()
        self.mode = mode
        if mode == "transposed":
            self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, 2, stride=2)
            in_channels = in_channels // 2
        elif mode == "max_unpool":
            self.up = nn.Conv2d(in_channels, skip_channels, 1)
            in_channels = skip_channels
        self.block = ConvBlock(in_channels + skip_channels, out_channels, norm)

    def forward(
        self, x: torch.Tensor, skip: torch.Tensor, indices: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x [B,Cin,H,W], skip [B,Cskip,2H,2W] (indices [B,Cskip,H,W] for max_unpool) -> [B,Cout,2H,2W]."""
        if self.mode == "transposed":
            x = self.up(x)
        elif self.mode == "max_unpool":
            if indices is None:
                raise ValueError("Up(mode='max_unpool'): the encoder's max-pool indices are needed")
            x = F.max_unpool2d(self.up(x), indices, 2, output_size=skip.shape[-2:])
        elif self.mode == "bed_of_nails":
            x = bed_of_nails(x)
        elif self.mode == "bilinear":
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        else:
            x = F.interpolate(x, size=skip.shape[-2:], mode="nearest")
        return self.block(torch.cat([x, skip], dim=1))


class UNet(nn.Module):
    """U-Net: images [B,in_channels,H,W] -> logits [B,num_classes,H,W], any H and W.

    `depth` is the number of 2x downsamplings; widths double at each one, starting from
    `base_channels`. `upsampling` (one of UPSAMPLING) is how each decoder level doubles the
    resolution before concatenating the skip connection. Inputs whose size is not divisible by 2**depth are padded (reflect)
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
        if upsampling not in UPSAMPLING:
            raise ValueError(f"UNet: upsampling={upsampling!r} is not one of {UPSAMPLING}")
        check_arguments(
            "UNet",
            norm,
            depth=depth,
            in_channels=in_channels,
            num_classes=num_classes,
            base_channels=base_channels,
        )
        widths = [base_channels * 2**i for i in range(depth + 1)]
        self.depth = depth
        self.widths = widths
        self.upsampling = upsampling
        self.stem = ConvBlock(in_channels, widths[0], norm)
        self.down = nn.ModuleList(ConvBlock(widths[i], widths[i + 1], norm) for i in range(depth))
        self.up = nn.ModuleList(
            Up(widths[i + 1], widths[i], widths[i], upsampling, norm)
            for i in reversed(range(depth))
        )
        self.head = nn.Conv2d(widths[0], num_classes, 1)

    def pad(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """Reflect-pad [B,C,H,W] to a multiple of 2**depth; returns the padded tensor and (H, W)."""
        return pad_to_multiple(x, 2**self.depth)

    def decode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Encoder + decoder features, coarsest first: list of depth+1 maps [B,C_i,H_i,W_i]."""
        unpool = self.upsampling == "max_unpool"
        skips, indices = [self.stem(x)], []
        for block in self.down:
            if unpool:
                pooled, where = F.max_pool2d(skips[-1], 2, return_indices=True)
                indices.append(where)
            else:
                pooled = F.max_pool2d(skips[-1], 2)
            skips.append(block(pooled))
        feats = [skips.pop()]
        for up in self.up:
            feats.append(up(feats[-1], skips.pop(), indices.pop() if unpool else None))
        return feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """images [B,C,H,W] -> logits [B,num_classes,H,W]."""
        x, (h, w) = self.pad(x)
        return self.head(self.decode(x)[-1])[..., :h, :w]
