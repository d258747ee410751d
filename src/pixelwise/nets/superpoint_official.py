"""SuperPoint weights in the official layout: BatchNorm folded into the convolutions.

The official pretrained release (magicleap SuperPointPretrainedNetwork, ``superpoint_v1.pth``)
is a net without BatchNorm: ``conv1a.weight``, ``conv1a.bias`` ... ``conv4b.*``, ``convPa.*``,
``convPb.*``, ``convDa.*``, ``convDb.*``, each 3x3 conv followed by a ReLU. Our nets trained with
``batch_norm=True`` carry ``bn*`` layers after those convs; in eval mode a BatchNorm is an affine
map per channel, so it folds exactly into the conv before it and the result loads into code
written for the official file (SuperGlue, LightGlue's SuperPoint, the demo).

    python -m pixelwise.nets.superpoint_official weights/superpoint_photos.pt superpoint_photos_v1.pth
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from pixelwise.nets.superpoint import SuperPointNet, superpoint_from_file

__all__ = [
    "OFFICIAL_WIDTHS",
    "fold_batch_norm",
    "official_state_dict",
    "save_official_weights",
]

# The official network's widths: conv1..conv4, head (convPa / convDa), descriptor dimension.
OFFICIAL_WIDTHS = {"channels": (64, 64, 128, 128), "head_channels": 256, "descriptor_dim": 256}
_CONV3 = ("1a", "1b", "2a", "2b", "3a", "3b", "4a", "4b", "Pa", "Da", "Ra")


def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight, bias) of the conv equal to ``bn(conv(x))`` with bn's running statistics (eval mode)."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # [C_out]
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    weight = conv.weight * scale.view(-1, 1, 1, 1)
    return weight, (bias - bn.running_mean) * scale + bn.bias


@torch.no_grad()
def fold_batch_norm(net: SuperPointNet) -> SuperPointNet:
    """A new ``SuperPointNet(batch_norm=False)`` in eval mode computing what ``net.eval()`` computes.

    Each ``bnX`` (running mean/var, affine weight/bias, eps) is folded into ``convX``:
    ``w' = w * s``, ``b' = (b - mean) * s + beta`` with ``s = gamma / sqrt(var + eps)``. A net
    without BatchNorm is copied as it is. Widths, the descriptor head and the refinement are kept.
    """
    if not isinstance(net, SuperPointNet):
        raise TypeError(f"fold_batch_norm: expected a SuperPointNet, got {type(net).__name__}")
    folded = SuperPointNet(
        descriptor=net.descriptor,
        batch_norm=False,
        channels=[getattr(net, f"conv{i}a").out_channels for i in range(1, 5)],
        head_channels=net.convPa.out_channels,
        descriptor_dim=net.descriptor_dim,
        refine_channels=net.refine_channels,
    )
    folded.to(device=net.conv1a.weight.device, dtype=net.conv1a.weight.dtype)
    for name, module in folded.named_children():
        source = getattr(net, name)
        suffix = name.removeprefix("conv")
        if net.batch_norm and suffix in _CONV3 and hasattr(net, f"bn{suffix}"):
            weight, bias = _fold(source, getattr(net, f"bn{suffix}"))
        else:
            weight, bias = source.weight, source.bias
        module.weight.copy_(weight)
        module.bias.copy_(bias)
    return folded.eval()


def official_state_dict(
    net: SuperPointNet, require_official_widths: bool = False
) -> dict[str, torch.Tensor]:
    """``net``'s weights (BatchNorm folded) as the official file holds them: ``conv1a.weight`` ... ``convDb.bias``.

    Keys and their order are the official ones; shapes follow ``net``'s widths. Code that builds
    the official network (64, 64, 128, 128 / 256 / D = 256) loads the result only if ``net`` has
    those widths and a descriptor head: ``require_official_widths=True`` checks that and says
    which width differs. Tensors are float32 on the CPU, contiguous. A net with a refinement
    (``refine_channels > 0``) has no official layout: a ``ValueError``.
    """
    if net.refine_channels:
        raise ValueError(
            f"official_state_dict: the net has a full-resolution refinement (refine_channels="
            f"{net.refine_channels}), which the official network does not have"
        )
    if require_official_widths:
        got = {
            "channels": tuple(getattr(net, f"conv{i}a").out_channels for i in range(1, 5)),
            "head_channels": net.convPa.out_channels,
            "descriptor_dim": net.descriptor_dim if net.descriptor else None,
        }
        wrong = [f"{k}={got[k]} (official {v})" for k, v in OFFICIAL_WIDTHS.items() if got[k] != v]
        if wrong:
            raise ValueError(
                "official_state_dict: the official network cannot load this net: "
                + ", ".join(wrong)
                + ("; it has no descriptor head (MagicPoint)" if not net.descriptor else "")
            )
    folded = fold_batch_norm(net)
    return {k: v.detach().float().cpu().contiguous() for k, v in folded.state_dict().items()}


def save_official_weights(
    net: SuperPointNet | str | os.PathLike,
    path: str | os.PathLike,
    require_official_widths: bool = False,
) -> Path:
    """Write :func:`official_state_dict` of ``net`` (a net, or a state-dict file it is built from) to ``path``."""
    if not isinstance(net, SuperPointNet):
        net = superpoint_from_file(net)
    state = official_state_dict(net, require_official_widths=require_official_widths)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def main(argv: list[str] | None = None) -> Path:
    """``python -m pixelwise.nets.superpoint_official IN OUT``: fold BatchNorm, write the official layout."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__.split(": ", 1)[1])
    parser.add_argument(
        "weights", help="a SuperPoint/MagicPoint state dict (e.g. weights/superpoint_photos.pt)"
    )
    parser.add_argument("out", help="the .pth file to write")
    parser.add_argument(
        "--require-official-widths",
        action="store_true",
        help="refuse a net the official code (64,64,128,128 / 256 / D=256) cannot load",
    )
    args = parser.parse_args(argv)
    out = save_official_weights(args.weights, args.out, args.require_official_widths)
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    main()
