"""Nearest-neighbour matching of descriptors."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["match_descriptors"]


def match_descriptors(
    desc_a: torch.Tensor,
    desc_b: torch.Tensor,
    mutual: bool = True,
    max_distance: float | None = 0.7,
) -> torch.Tensor:
    """Nearest-neighbour matches of desc_a [N,D] in desc_b [M,D] -> long [K,2] (index_a, index_b), sorted by index_a.

    Distances are Euclidean between L2-normalised descriptors (in [0, 2]). Each a is matched
    to its nearest b (lowest index on ties); with ``mutual`` only pairs that are each other's
    nearest neighbour are kept; with ``max_distance`` only pairs at most that far apart.
    """
    for name, desc in (("desc_a", desc_a), ("desc_b", desc_b)):
        if not isinstance(desc, torch.Tensor) or desc.dim() != 2:
            got = list(desc.shape) if isinstance(desc, torch.Tensor) else type(desc)
            raise ValueError(f"{name} must have shape [N, D], got {got}")
    if desc_a.shape[1] != desc_b.shape[1]:
        raise ValueError(
            f"desc_a and desc_b must have the same descriptor dimension D, got {desc_a.shape[1]} and {desc_b.shape[1]}"
        )
    if max_distance is not None and max_distance < 0:
        raise ValueError(f"max_distance must be >= 0 or None, got {max_distance!r}")
    device = desc_a.device
    if desc_a.shape[0] == 0 or desc_b.shape[0] == 0:
        return torch.zeros(0, 2, dtype=torch.long, device=device)

    a = F.normalize(desc_a.float(), dim=1)
    b = F.normalize(desc_b.float(), dim=1)
    sim = a @ b.T  # [N, M]; ||a - b||^2 = 2 - 2 a.b for unit vectors
    best_sim, nn_ab = sim.max(dim=1)
    index_a = torch.arange(a.shape[0], device=device)
    keep = torch.ones_like(index_a, dtype=torch.bool)
    if mutual:
        nn_ba = sim.argmax(dim=0)
        keep &= nn_ba[nn_ab] == index_a
    if max_distance is not None:
        dist = torch.sqrt((2.0 - 2.0 * best_sim).clamp_min(0.0))
        keep &= dist <= max_distance
    return torch.stack([index_a[keep], nn_ab[keep]], dim=1)
