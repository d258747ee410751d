"""SuperPoint's dense descriptor hinge loss over all pairs of cells, in O(B * (HcWc)^2) bytes, not * D."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pixelwise.geometry.homography import warp_points

__all__ = ["cell_centers", "descriptor_hinge_loss", "positive_pairs"]

_NORMALIZATIONS = ("pairs", "valid")
_DOT_NORMALIZATIONS = ("none", "relu_l2")
# A homography whose normalised-coordinate condition number exceeds this is "singular".
_MAX_CONDITION = 1e7


def cell_centers(
    hc: int, wc: int, cell_size: int = 8, device=None, dtype=torch.float64
) -> torch.Tensor:
    """Centres [Hc*Wc, 2] (x, y) of the cells, row-major: (cs*w + (cs-1)/2, cs*h + (cs-1)/2)."""
    offset = (cell_size - 1) / 2.0
    ys, xs = torch.meshgrid(
        torch.arange(hc, device=device, dtype=dtype),
        torch.arange(wc, device=device, dtype=dtype),
        indexing="ij",
    )
    return torch.stack([xs * cell_size + offset, ys * cell_size + offset], dim=-1).reshape(-1, 2)


def _well_conditioned(homography: torch.Tensor, height: float, width: float) -> torch.Tensor:
    """[B] bool: finite and not (nearly) singular, judged in coordinates normalised to [-1, 1]."""
    h = homography.double()
    finite = torch.isfinite(h).all(dim=(1, 2))
    h = torch.where(finite[:, None, None], h, torch.eye(3, dtype=h.dtype, device=h.device))
    t = torch.tensor(
        [[2.0 / width, 0.0, -1.0], [0.0, 2.0 / height, -1.0], [0.0, 0.0, 1.0]],
        dtype=h.dtype,
        device=h.device,
    )
    normalised = t @ h @ torch.linalg.inv(t)
    sv = torch.linalg.svdvals(normalised)
    return finite & (sv[:, -1] > sv[:, 0] / _MAX_CONDITION)


def positive_pairs(
    warped: torch.Tensor, hc: int, wc: int, cell_size: int, radius: float
) -> torch.Tensor:
    """bool [B,N,N]: s[b,i,j] = ||warped[b,i] - centre_j|| <= radius, for warped a-centres [B,N,2] (float64).

    Only the cells around each warped centre can be within ``radius`` (index offsets up to
    floor(radius / cell_size + 1/2)), so distances are computed for those, not all N^2 pairs.
    """
    batch, n, _ = warped.shape
    device = warped.device
    offset = (cell_size - 1) / 2.0
    finite = torch.isfinite(warped).all(dim=-1)  # [B, N]
    u = torch.where(finite[..., None], (warped - offset) / cell_size, torch.zeros_like(warped))
    nearest = u.round().clamp(-(2**30), 2**30).long()  # [B, N, 2] (column, row) of the nearest cell
    reach = int(radius / cell_size + 0.5)
    steps = torch.arange(-reach, reach + 1, device=device)
    dx, dy = torch.meshgrid(steps, steps, indexing="xy")
    col = nearest[..., 0:1] + dx.reshape(1, 1, -1)  # [B, N, K]
    row = nearest[..., 1:2] + dy.reshape(1, 1, -1)
    cx = col.double() * cell_size + offset
    cy = row.double() * cell_size + offset
    dist2 = (warped[..., 0:1] - cx) ** 2 + (warped[..., 1:2] - cy) ** 2
    ok = (
        (dist2 <= radius * radius)
        & (col >= 0)
        & (col < wc)
        & (row >= 0)
        & (row < hc)
        & finite[..., None]
    )
    s = torch.zeros(batch, n, n, dtype=torch.bool, device=device)
    b_idx, i_idx, k_idx = ok.nonzero(as_tuple=True)
    s[b_idx, i_idx, row[b_idx, i_idx, k_idx] * wc + col[b_idx, i_idx, k_idx]] = True
    return s


class _PairHinge(torch.autograd.Function):
    """Per-item weighted hinge sums over all cell pairs, never storing more than one [B,N,N] float.

    forward(a [B,N,D], b [B,D,N], s bool [B,N,N], w [B,N], m_p, m_n) ->
      (P [B] = sum_ij s_ij relu(m_p - a_i.b_j) w_j,  Q [B] = sum_ij (1 - s_ij) relu(a_i.b_j - m_n) w_j).
    The backward recomputes the dot products (one bmm) instead of saving them.
    """

    @staticmethod
    def forward(ctx, a, b, s, w, pos_margin, neg_margin):
        dot = torch.bmm(a, b)
        buf = dot.neg().add_(pos_margin).clamp_min_(0.0).masked_fill_(~s, 0.0)
        pos = (buf.sum(dim=1) * w).sum(dim=1)
        torch.sub(dot, neg_margin, out=buf).clamp_min_(0.0).masked_fill_(s, 0.0)
        neg = (buf.sum(dim=1) * w).sum(dim=1)
        ctx.save_for_backward(a, b, s, w)
        ctx.margins = (pos_margin, neg_margin)
        return pos, neg

    @staticmethod
    def backward(ctx, grad_pos, grad_neg):
        a, b, s, w = ctx.saved_tensors
        pos_margin, neg_margin = ctx.margins
        dot = torch.bmm(a, b)
        active_pos = (dot < pos_margin).logical_and_(s)
        active_neg = (dot > neg_margin).masked_fill_(s, False)
        grad = dot.zero_()  # reuse the buffer
        for i in range(grad.shape[0]):
            grad[i].masked_fill_(active_pos[i], -grad_pos[i])
            grad[i].masked_fill_(active_neg[i], grad_neg[i])
        del active_pos, active_neg
        grad.mul_(w[:, None, :])
        grad_a = torch.bmm(grad, b.transpose(1, 2)) if ctx.needs_input_grad[0] else None
        grad_b = torch.bmm(a.transpose(1, 2), grad) if ctx.needs_input_grad[1] else None
        return grad_a, grad_b, None, None, None, None


def _pair_hinge_reference_dot(a, b, s, w, pos_margin, neg_margin):
    """The reference's similarity: ReLU of the dots, L2-normalised over b-cells then over a-cells (plain autograd)."""
    dot = F.relu(torch.bmm(a, b))
    dot = F.normalize(dot, dim=2)
    dot = F.normalize(dot, dim=1)
    zero = dot.new_zeros(())
    pos = torch.where(s, F.relu(pos_margin - dot), zero).sum(dim=1)
    neg = torch.where(s, zero, F.relu(dot - neg_margin)).sum(dim=1)
    return (pos * w).sum(dim=1), (neg * w).sum(dim=1)


def _cell_validity(
    valid_mask_b: torch.Tensor, hc: int, wc: int, cell_size: int, normalization: str
) -> torch.Tensor:
    """valid_mask_b [B,H,W] -> [B, Hc*Wc] float: the cell's centre (its 2x2 central pixels), or for the
    reference ("valid") all its pixels, lie in the valid region."""
    batch, height, width = valid_mask_b.shape
    full_h, full_w = hc * cell_size, wc * cell_size
    mask = valid_mask_b.bool()
    # A mask of the unpadded image: the net's padding (at most cell_size - 1) is invalid.
    mask = F.pad(mask, (0, full_w - width, 0, full_h - height), value=False)
    cells = mask.reshape(batch, hc, cell_size, wc, cell_size).permute(0, 1, 3, 2, 4)
    if normalization == "valid":
        valid = cells.all(dim=-1).all(dim=-1)
    else:
        lo, hi = (cell_size - 1) // 2, cell_size // 2 + 1  # the pixels around (cs - 1) / 2
        valid = cells[..., lo:hi, lo:hi].all(dim=-1).all(dim=-1)
    return valid.reshape(batch, hc * wc)


def descriptor_hinge_loss(
    desc_a: torch.Tensor,
    desc_b: torch.Tensor,
    homography: torch.Tensor,
    valid_mask_b: torch.Tensor | None = None,
    lambda_d: float = 250.0,
    pos_margin: float = 1.0,
    neg_margin: float = 0.2,
    cell_size: int = 8,
    normalization: str = "pairs",
    dot_normalization: str = "none",
    positive_radius: float | None = None,
    return_components: bool = False,
) -> torch.Tensor | dict[str, torch.Tensor]:
    """Descriptor hinge loss of desc_a, desc_b [B,D,Hc,Wc] under H [B,3,3] (a -> b pixels) -> scalar.

    Descriptors are L2-normalised along D. Cell (h, w) has centre p = (cs*w + (cs-1)/2,
    cs*h + (cs-1)/2) (3.5 for cs = 8, the pixel-centre convention); a pair of a-cell i and
    b-cell j is positive (s = 1) iff ||H p_i - p_j|| <= ``positive_radius`` (default
    ``cell_size``). The pair cost is lambda_d * s * max(0, m_p - d_i.d_j) + (1 - s) *
    max(0, d_i.d_j - m_n).

    ``normalization``:
      - ``"pairs"`` (the paper): per image, the mean over the Hc*Wc x (valid b-cells) pairs,
        then the mean over the batch. With ``valid_mask_b`` [B,H,W] (H, W = the image size,
        at most ``cell_size - 1`` less than cs*Hc, cs*Wc) a b-cell is valid when its 2x2
        central pixels are.
      - ``"valid"`` (rpautrat/SuperPoint ``descriptor_loss``): the sum over the batch divided
        by Hc*Wc times the number of valid b-cells in the batch, a b-cell being valid when all
        its pixels are.
    ``dot_normalization="relu_l2"`` is the reference's similarity (ReLU of the dot products,
    L2-normalised over b-cells then over a-cells; plain autograd, so it keeps several
    [B,N,N] tensors, N = Hc*Wc); the reference's other settings are ``positive_radius =
    cell_size - 0.5`` and, in its COCO config, lambda_d = 0.05 with the loss weighted
    1e4. The default path holds one [B,N,N] float plus bools (no D-sized pair tensor): a
    batched matmul for the dot products, recomputed in the backward.

    Images whose homography is non-finite or singular, or that have no positive pair
    among valid b-cells (H maps the image out of view, or nothing is valid), are skipped
    and counted; if all are, the loss is 0 (still connected to the graph), never NaN.
    ``return_components=True`` returns {"loss", "positive", "negative", "skipped"} with
    loss = positive (lambda_d-weighted) + negative.
    """
    for name, desc in (("desc_a", desc_a), ("desc_b", desc_b)):
        if not isinstance(desc, torch.Tensor) or desc.dim() != 4:
            got = list(desc.shape) if isinstance(desc, torch.Tensor) else type(desc)
            raise ValueError(f"{name} must have shape [B, D, Hc, Wc], got {got}")
    if desc_a.shape != desc_b.shape:
        raise ValueError(
            f"desc_a and desc_b must have the same shape, got {list(desc_a.shape)} and {list(desc_b.shape)}"
        )
    batch, dim, hc, wc = desc_a.shape
    if not isinstance(homography, torch.Tensor) or tuple(homography.shape) != (batch, 3, 3):
        got = list(homography.shape) if isinstance(homography, torch.Tensor) else type(homography)
        raise ValueError(f"homography must have shape [B={batch}, 3, 3], got {got}")
    if normalization not in _NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {_NORMALIZATIONS}, got {normalization!r}")
    if dot_normalization not in _DOT_NORMALIZATIONS:
        raise ValueError(
            f"dot_normalization must be one of {_DOT_NORMALIZATIONS}, got {dot_normalization!r}"
        )
    if valid_mask_b is not None:
        ok = (
            isinstance(valid_mask_b, torch.Tensor)
            and valid_mask_b.dim() == 3
            and valid_mask_b.shape[0] == batch
            and hc * cell_size - cell_size < valid_mask_b.shape[1] <= hc * cell_size
            and wc * cell_size - cell_size < valid_mask_b.shape[2] <= wc * cell_size
        )
        if not ok:
            got = (
                list(valid_mask_b.shape)
                if isinstance(valid_mask_b, torch.Tensor)
                else type(valid_mask_b)
            )
            raise ValueError(
                f"valid_mask_b must have shape [B={batch}, H, W] with H, W the image size "
                f"(<= {hc * cell_size}, {wc * cell_size} for Hc, Wc = {hc}, {wc}), got {got}"
            )
    radius = float(cell_size if positive_radius is None else positive_radius)
    n = hc * wc
    device = desc_a.device

    centers = cell_centers(hc, wc, cell_size, device=device)
    well = _well_conditioned(homography, hc * cell_size, wc * cell_size)
    safe_h = torch.where(
        well[:, None, None], homography.double(), torch.eye(3, dtype=torch.float64, device=device)
    )
    s = positive_pairs(warp_points(centers, safe_h), hc, wc, cell_size, radius)
    s &= well[:, None, None]

    if valid_mask_b is None:
        cell_valid = torch.ones(batch, n, dtype=torch.bool, device=device)
    else:
        cell_valid = _cell_validity(valid_mask_b, hc, wc, cell_size, normalization)
    kept = (s & cell_valid[:, None, :]).any(dim=2).any(dim=1)  # has a positive among valid b-cells
    weight = (cell_valid & kept[:, None]).to(desc_a.dtype)

    a = F.normalize(desc_a.reshape(batch, dim, n), dim=1).transpose(1, 2)  # [B, N, D]
    b = F.normalize(desc_b.reshape(batch, dim, n), dim=1)  # [B, D, N]
    if dot_normalization == "none":
        pos_sum, neg_sum = _PairHinge.apply(a, b, s, weight, float(pos_margin), float(neg_margin))
    else:
        pos_sum, neg_sum = _pair_hinge_reference_dot(
            a, b, s, weight, float(pos_margin), float(neg_margin)
        )

    valid_cells = weight.sum(dim=1)  # [B], 0 for skipped images
    if normalization == "pairs":
        per_image = torch.where(
            kept, 1.0 / (n * valid_cells.clamp_min(1.0)), torch.zeros_like(valid_cells)
        )
        scale = per_image / kept.sum().clamp_min(1)
    else:
        scale = torch.full_like(valid_cells, 1.0) / (n * valid_cells.sum()).clamp_min(1.0)
    positive = lambda_d * (pos_sum * scale).sum()
    negative = (neg_sum * scale).sum()
    loss = positive + negative
    if not return_components:
        return loss
    return {"loss": loss, "positive": positive, "negative": negative, "skipped": (~kept).sum()}
