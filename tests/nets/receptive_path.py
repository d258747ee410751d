"""Which tensors computed by a net's encoder does its decoder read? (skip connections, observed)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


def encoder_outputs_read_by_decoder(
    net: nn.Module,
    encoder: Iterable[nn.Module],
    decoder: Iterable[nn.Module],
    x: torch.Tensor,
) -> int:
    """Run net(x); count the distinct encoder-module outputs (by storage) that decoder modules take as input."""
    written, read, keep = set(), set(), []

    def on_output(_module, _inputs, output):
        keep.append(output)
        written.add(output.untyped_storage().data_ptr())

    def on_input(_module, inputs):
        for t in inputs:
            if isinstance(t, torch.Tensor):
                keep.append(t)
                read.add(t.untyped_storage().data_ptr())

    hooks = [m.register_forward_hook(on_output) for m in encoder]
    hooks += [m.register_forward_pre_hook(on_input) for m in decoder]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in hooks:
            h.remove()
    return len(written & read)
