"""An FCN-style segmenter: strided convolutions down, transposed convolutions up, no skip connections.

Lecture 14's "Fully Convolutional Network" with downsampling and upsampling inside the network
(Long et al. 2015; the symmetric form of Noh et al. 2015): each of ``depth`` stages halves the
resolution with a stride-2 3x3 convolution (learned downsampling) and doubles the width; the
decoder mirrors it with stride-2 3x3 transposed convolutions (learned upsampling). Unlike the
U-Net, the decoder sees only the coarsest code: the full-resolution logits are computed from the
``H/2**depth x W/2**depth`` map alone, with no encoder feature copied across.
"""

from __future__ import annotations

import torch
from torch import nn

from pixelwise.nets.unet import check_arguments, norm_layer, pad_to_multiple

__all__ = ["FCN"]


def _stage(conv: nn.Module, out_channels: int, norm: str) -> list[nn.Module]:
    """conv (resampling) + norm + ReLU, then 3x3 conv + norm + ReLU at the new resolution."""
    bias = norm == "none"
    return [
        conv,
        norm_layer(norm, out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=bias),
        norm_layer(norm, out_channels),
        nn.ReLU(inplace=True),
    ]


class FCN(nn.Module):
    """FCN without skips: images [B,in_channels,H,W] -> logits [B,num_classes,H,W], any H and W.

    Encoder stage i (i = 0 .. depth-1) maps to ``base_channels * 2**i`` channels at
    ``H/2**(i+1)``; decoder stage i maps back to ``base_channels * 2**(i-1)`` channels at
    ``H/2**i`` (``base_channels`` at full resolution); a 1x1 conv gives the class scores.
    Inputs not divisible by ``2**depth`` are padded (reflect) and the logits cropped back.
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 9,
        base_channels: int = 16,
        depth: int = 3,
        norm: str = "batch",
    ) -> None:
        super().__init__()
        check_arguments(
            "FCN",
            norm,
            in_channels=in_channels,
            num_classes=num_classes,
            base_channels=base_channels,
            depth=depth,
        )
        self.depth = depth
        self.widths = [base_channels * 2**i for i in range(depth)]
        bias = norm == "none"
        widths_in = [in_channels, *self.widths[:-1]]
        self.down = nn.Sequential(
            *(
                layer
                for cin, cout in zip(widths_in, self.widths)
                for layer in _stage(
                    nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=bias), cout, norm
                )
            )
        )
        widths_out = [base_channels, *self.widths[:-1]]
        self.up = nn.Sequential(
            *(
                layer
                for cin, cout in reversed(list(zip(self.widths, widths_out)))
                for layer in _stage(
                    nn.ConvTranspose2d(
                        cin, cout, 3, stride=2, padding=1, output_padding=1, bias=bias
                    ),
                    cout,
                    norm,
                )
            )
        )
        self.head = nn.Conv2d(base_channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """images [B,C,H,W] -> logits [B,num_classes,H,W]."""
        x, (h, w) = pad_to_multiple(x, 2**self.depth)
        return self.head(self.up(self.down(x)))[..., :h, :w]
