"""Widen a trained SuperPoint/MagicPoint net without changing what it computes (Net2WiderNet).

Why: a wider student for homographic adaptation should start from the narrow teacher's function,
not from random weights, so that it begins at the teacher's quality and spends its CPU budget on
what the narrow net could not fit. Chen, Goodfellow & Shlens, "Net2Net" (ICLR 2016), sec. 2.1.

Each widened layer keeps its ``c`` old output channels and fills the new ones with copies of old
channels (``k -> k mod c``: every old channel gets the same number of copies, give or take one).
A copy has the same conv weights, bias and batch-norm parameters and running statistics as its
original, so after ReLU (and max-pool, which is per channel) it carries the same activation; the
next layer's input weights of a channel and all its copies are divided by their count, so their sum
is the old input. With ``noise=0`` the widened net's outputs equal the narrow net's (up to float
rounding, tested); ``noise > 0`` perturbs the copies' incoming conv weights (relative to each
layer's weight std) so that gradient descent can tell copies apart: exact copies get identical
gradients and would stay copies forever.

    python -m pixelwise.nets.superpoint_widen weights/magicpoint_shapes.pt wide.pt \\
        --channels 64 64 128 128 --head-channels 256
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

import torch

from pixelwise.nets.superpoint import SuperPointNet, superpoint_from_file, superpoint_net_config

# (layer, the layer feeding its input or None for the image, the width its output has: a key of
# _widths, or None for the output convs, which keep 65 cells / descriptor_dim) in forward order;
# Pa and Da both read 4b.
_LAYERS = (
    ("1a", None, "conv1"),
    ("1b", "1a", "conv1"),
    ("2a", "1b", "conv2"),
    ("2b", "2a", "conv2"),
    ("3a", "2b", "conv3"),
    ("3b", "3a", "conv3"),
    ("4a", "3b", "conv4"),
    ("4b", "4a", "conv4"),
    ("Pa", "4b", "head"),
    ("Pb", "Pa", None),
    ("Da", "4b", "head"),
    ("Db", "Da", None),
)


def _widths(channels: Sequence[int], head_channels: int) -> dict[str, int]:
    return {**{f"conv{i}": int(c) for i, c in enumerate(channels, 1)}, "head": int(head_channels)}


def _replica_map(old: int, new: int) -> torch.Tensor:
    """Index of the old channel each of ``new`` channels copies: 0..old-1, then k mod old."""
    return torch.arange(new) % old


@torch.no_grad()
def widen_superpoint(
    net: SuperPointNet,
    channels: Sequence[int],
    head_channels: int,
    noise: float = 0.01,
    seed: int = 0,
) -> SuperPointNet:
    """A new :class:`SuperPointNet` with ``channels``/``head_channels`` computing ``net``'s function.

    ``channels`` (conv1..conv4) and ``head_channels`` must each be at least ``net``'s; the
    descriptor dimension, batch norm and descriptor head are kept. ``noise``: std of the Gaussian
    added to the copied channels' incoming conv weights, relative to that layer's weight std
    (0: an exact copy of the function). The result is in eval mode like a loaded net.
    """
    config = superpoint_net_config(net)
    if len(channels) != 4:
        raise ValueError(
            f"widen_superpoint: channels must be 4 widths (conv1..conv4), got {channels}"
        )
    old_widths = _widths(config["channels"], config["head_channels"])
    new_widths = _widths(channels, head_channels)
    narrower = [k for k in old_widths if new_widths[k] < old_widths[k]]
    if narrower:
        raise ValueError(
            "widen_superpoint: cannot narrow a net; "
            + ", ".join(f"{k}: {old_widths[k]} -> {new_widths[k]}" for k in narrower)
            + f" (the net has channels={config['channels']}, head_channels={config['head_channels']})"
        )
    if noise < 0:
        raise ValueError(f"widen_superpoint: noise must be >= 0, got {noise}")
    if config["refine_channels"]:
        raise ValueError(
            f"widen_superpoint: the net has a full-resolution refinement (refine_channels="
            f"{config['refine_channels']}); widen the net it started from, then add the refinement"
        )
    wide = SuperPointNet(
        **{**config, "channels": [int(c) for c in channels], "head_channels": int(head_channels)}
    )
    generator = torch.Generator().manual_seed(seed)
    # Which old channel each new output channel of a layer copies (output convs: none).
    replicas = {
        layer: _replica_map(old_widths[width], new_widths[width])
        for layer, _, width in _LAYERS
        if width is not None
    }
    for layer, source, _ in _LAYERS:
        conv_old = getattr(net, f"conv{layer}", None)
        if conv_old is None:
            continue  # no descriptor head
        conv_new = getattr(wide, f"conv{layer}")
        weight, bias = conv_old.weight, conv_old.bias
        in_map = replicas.get(source)
        if in_map is not None:
            # Split each input channel's weights evenly between it and its copies.
            counts = torch.bincount(in_map, minlength=weight.shape[1]).to(weight.dtype)
            weight = weight[:, in_map] / counts[in_map].view(1, -1, 1, 1)
        out_map = replicas.get(layer)
        if out_map is not None:
            old_out = weight.shape[0]
            weight, bias = weight[out_map], bias[out_map]  # indexing copies
            if noise > 0 and len(out_map) > old_out:
                scale = noise * float(conv_old.weight.std())
                copies = weight[old_out:]
                copies += scale * torch.randn(copies.shape, generator=generator, dtype=copies.dtype)
            bn_old = getattr(net, f"bn{layer}", None)
            if bn_old is not None:
                bn_new = getattr(wide, f"bn{layer}")
                for name in ("weight", "bias", "running_mean", "running_var"):
                    getattr(bn_new, name).copy_(getattr(bn_old, name)[out_map])
                bn_new.num_batches_tracked.copy_(bn_old.num_batches_tracked)
        conv_new.weight.copy_(weight)
        conv_new.bias.copy_(bias)
    return wide.eval()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m pixelwise.nets.superpoint_widen",
        description="Widen a SuperPoint/MagicPoint state dict without changing its function (Net2WiderNet).",
    )
    parser.add_argument(
        "source", help="state dict file of the narrow net (e.g. weights/magicpoint_shapes.pt)"
    )
    parser.add_argument("target", help="where to write the widened state dict")
    parser.add_argument("--channels", type=int, nargs=4, required=True, metavar="C")
    parser.add_argument("--head-channels", type=int, required=True)
    parser.add_argument("--noise", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    wide = widen_superpoint(
        superpoint_from_file(args.source), args.channels, args.head_channels, args.noise, args.seed
    )
    os.makedirs(os.path.dirname(os.path.abspath(args.target)), exist_ok=True)
    torch.save(wide.state_dict(), args.target)
    print(
        f"{args.source} -> {args.target}: channels {list(args.channels)}, head {args.head_channels}, "
        f"{sum(p.numel() for p in wide.parameters())} parameters"
    )


if __name__ == "__main__":
    main()
