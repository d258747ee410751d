"""Panoptic-DeepLab loss against hand computations."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pixelwise.losses.panoptic import panoptic_loss


def test_values_by_hand() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(1, 3, 2, 2, generator=g)
    mask = torch.tensor([[[0, 1], [2, 255]]])
    hm = torch.tensor([[[[0.5, 0.0], [1.0, 0.0]]]])
    ht = torch.tensor([[[[1.0, 0.0], [1.0, 0.5]]]])
    off = torch.zeros(1, 2, 2, 2)
    off[0, 0, 0, 0] = 1.0
    ot = torch.zeros(1, 2, 2, 2)
    ot[0, 1, 0, 0] = 2.0
    wt = torch.zeros(1, 1, 2, 2, dtype=torch.bool)
    wt[0, 0, 0, 0] = True
    valid = torch.tensor([[[[True, True], [True, False]]]])
    out = panoptic_loss(
        logits,
        hm,
        off,
        mask,
        ht,
        ot,
        wt,
        heatmap_valid=valid,
        center_weight=2.0,
        offset_loss_weight=0.5,
    )
    ce = F.cross_entropy(logits, mask, ignore_index=255)
    assert torch.isclose(out["semantic"], ce)
    assert torch.isclose(out["center"], torch.tensor(0.25 / 3))
    assert torch.isclose(out["offset"], torch.tensor(3.0))  # |1-0| + |0-2| on one pixel
    assert torch.isclose(out["loss"], ce + 2.0 * 0.25 / 3 + 0.5 * 3.0)
    none = panoptic_loss(logits, hm, off, mask, ht, ot, torch.zeros_like(wt))
    assert none["offset"] == 0 and torch.isclose(none["center"], (hm - ht).square().mean())
