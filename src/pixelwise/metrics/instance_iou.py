"""Instance-weighted IoU (iIoU) as the Cityscapes pixel-level benchmark computes it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import torch
from torchmetrics import Metric

# Largest joint histogram (instance x target x pred bins) built by one bincount per image;
# beyond it the distinct tuples are found with torch.unique (slower, same result).
_MAX_BINS = 1 << 22
# Instance ids up to this are compacted per image through a lookup table, not torch.unique.
_MAX_LUT_ID = 1 << 20


def check_segmentation_inputs(
    preds: torch.Tensor,
    target: torch.Tensor,
    instances: torch.Tensor | None,
    who: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Check shapes of preds (long [B,H,W] or logits [B,C,H,W]), target, instances (long [B,H,W]); return them as long [B, H*W]."""
    if preds.is_floating_point():
        if preds.ndim != target.ndim + 1:
            raise ValueError(
                f"{who}: float preds must be logits [B, C, H, W] for target {list(target.shape)}, "
                f"got {list(preds.shape)}"
            )
        preds = preds.argmax(dim=1)
    if target.is_floating_point() or (instances is not None and instances.is_floating_point()):
        raise ValueError(f"{who}: target and instances must be integer tensors")
    if target.ndim == 2:
        preds, target = preds.unsqueeze(0), target.unsqueeze(0)
        instances = instances.unsqueeze(0) if instances is not None else None
    if target.ndim != 3 or preds.shape != target.shape:
        raise ValueError(
            f"{who}: expected preds and target of shape [B, H, W], got preds "
            f"{list(preds.shape)} and target {list(target.shape)}"
        )
    if instances is not None and instances.shape != target.shape:
        raise ValueError(
            f"{who}: instances {list(instances.shape)} must have the shape of target "
            f"{list(target.shape)}"
        )
    b = target.shape[0]
    flat = [x.reshape(b, -1).long() if x is not None else None for x in (preds, target, instances)]
    return flat[0], flat[1], flat[2]


class JointCounts(NamedTuple):
    """Distinct (image, instance id, target, pred) tuples of a batch and their pixel counts, each [N]."""

    image: torch.Tensor
    instance: torch.Tensor
    target: torch.Tensor
    pred: torch.Tensor
    count: torch.Tensor


def joint_counts(
    preds: torch.Tensor,
    target: torch.Tensor,
    instances: torch.Tensor | None,
    num_classes: int,
    ignore_index: int,
    who: str,
) -> JointCounts:
    """Count pixels per distinct (image, instance, target, pred) in long [B, P] maps.

    One bincount over a packed key per image replaces per-instance masks; target values that
    are neither a class nor ignore_index raise a ValueError naming the value.
    """
    b = target.shape[0]
    t_min, t_max = (int(v) for v in torch.aminmax(target))
    p_min, p_max = (int(v) for v in torch.aminmax(preds))
    if t_min < 0:
        raise ValueError(
            f"{who}: target value {t_min} is negative (expected [0, {num_classes}) or {ignore_index})"
        )
    if p_min < 0:
        raise ValueError(f"{who}: preds value {p_min} is negative (expected class ids)")
    radix_t, radix_p = t_max + 1, p_max + 1
    i_min, i_max = (int(v) for v in torch.aminmax(instances)) if instances is not None else (0, 0)
    if i_min < 0:
        raise ValueError(f"{who}: instance ids must be >= 0 (0 = no instance), got {i_min}")
    if (i_max + 1) * radix_t * radix_p >= 1 << 62:
        raise ValueError(f"{who}: instance id {i_max} is too large (expected < 2**40)")
    parts = []
    # One key buffer for all images: fresh multi-MB allocations cost page faults per image.
    key = torch.empty_like(target[0])
    for k in range(b):
        inst = instances[k] if instances is not None else None
        radix_i = i_max + 1
        if inst is not None and radix_i * radix_t * radix_p > _MAX_BINS and i_max < _MAX_LUT_ID:
            # Compact this image's ids to 1..K (0 stays 0) through a lookup table.
            present = torch.bincount(inst, minlength=i_max + 1) > 0
            present[0] = False
            lut = torch.cumsum(present, 0) * present
            inst = lut[inst]
            radix_i = int(lut.max()) + 1
        torch.add(preds[k], target[k], alpha=radix_p, out=key)
        if inst is not None:
            key.add_(inst, alpha=radix_t * radix_p)
        bins = radix_i * radix_t * radix_p
        if bins <= _MAX_BINS:
            hist = torch.bincount(key, minlength=bins)
            keys = hist.nonzero().squeeze(1)
            counts = hist[keys]
        else:
            keys, counts = torch.unique(key, return_counts=True)
        parts.append(
            JointCounts(
                torch.full_like(keys, k),
                keys // (radix_t * radix_p),  # compacted ids stay unique within the image
                (keys // radix_p) % radix_t,
                keys % radix_p,
                counts,
            )
        )
    out = JointCounts(*(torch.cat(x) for x in zip(*parts)))
    bad = (out.target >= num_classes) & (out.target != ignore_index)
    if bad.any():
        raise ValueError(
            f"{who}: target value {int(out.target[bad][0])} is neither a class in "
            f"[0, {num_classes}) nor ignore_index={ignore_index}"
        )
    return out


def confusion_matrix(jc: JointCounts, num_classes: int, ignore_index: int) -> torch.Tensor:
    """Pixel counts long [C+1, C+1]: rows target, columns pred; index C = ignored target / pred outside the classes."""
    c = num_classes
    t = torch.where(jc.target == ignore_index, c, jc.target)
    p = jc.pred.clamp(max=c)
    return (
        torch.bincount(t * (c + 1) + p, weights=jc.count.double(), minlength=(c + 1) ** 2)
        .long()
        .view(c + 1, c + 1)
    )


def instance_histograms(
    jc: JointCounts, is_instance_class: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per ground-truth instance (image, id, class in an instance class): its class [G] and pred histogram long [G, C+1].

    An instance's pixels whose target is ignored or a non-instance class are not part of it.
    """
    c = is_instance_class.numel()
    keep = (jc.instance > 0) & (jc.target < c)
    keep &= is_instance_class[jc.target.clamp(max=c - 1)]
    image, inst, cls = jc.image[keep], jc.instance[keep], jc.target[keep]
    group_key = torch.stack([image, inst, cls], dim=1)
    groups, group_of = torch.unique(group_key, dim=0, return_inverse=True)
    hist = torch.zeros(groups.shape[0], c + 1, dtype=torch.long, device=jc.count.device)
    hist.index_put_((group_of, jc.pred[keep].clamp(max=c)), jc.count[keep], accumulate=True)
    return groups[:, 2], hist


def mean_instance_size_tensor(
    mean_instance_size: Mapping[int, float] | None,
    instance_classes: Sequence[int],
    num_classes: int,
    who: str,
) -> torch.Tensor | None:
    """Validate a {class id: mean pixels} table and return it as float64 [num_classes] (NaN elsewhere)."""
    if mean_instance_size is None:
        return None
    table = {int(k): float(v) for k, v in dict(mean_instance_size).items()}
    missing = [c for c in instance_classes if c not in table]
    if missing:
        raise ValueError(
            f"{who}: mean_instance_size has no entry for instance classes {missing} "
            f"(keys given: {sorted(table)})"
        )
    out = torch.full((num_classes,), float("nan"), dtype=torch.float64)
    for c, v in table.items():
        if not 0 <= c < num_classes:
            raise ValueError(
                f"{who}: mean_instance_size key {c} is not a class in [0, {num_classes})"
            )
        if not v > 0:
            raise ValueError(
                f"{who}: mean_instance_size[{c}] = {v}: expected a positive pixel count"
            )
        out[c] = v
    return out


def check_instance_classes(
    instance_classes: Sequence[int], num_classes: int, who: str
) -> list[int]:
    """Validate instance class ids against num_classes; return them as ints."""
    classes = [int(c) for c in instance_classes]
    bad = [c for c in classes if not 0 <= c < num_classes]
    if bad:
        raise ValueError(f"{who}: instance_classes {bad} are not classes in [0, {num_classes})")
    return classes


class InstanceIoU(Metric):
    """Instance-weighted IoU per class and its mean (Cityscapes `iIoU`).

    Each ground-truth instance t of class c with N_t pixels has weight w_t = N̄_c / N_t; its
    pixels predicted c add w_t to iTP_c, its other pixels add w_t to iFN_c. FP_c counts pixels
    predicted c whose target is another, non-ignored class (unweighted).
    iIoU_c = iTP_c / (iTP_c + FP_c + iFN_c). An instance's class is the target class of its
    pixels; instance pixels whose target is ignored or not an instance class do not count.

    States hold only sums (Σ_t tp_t/N_t, Σ_t fn_t/N_t, Σ_t N_t, #instances, FP), all reduced
    by sum, so N̄_c = Σ N_t / #instances is exact in one pass and DDP equals one process.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(
        self,
        num_classes: int,
        instance_classes: Sequence[int],
        ignore_index: int = 255,
        mean_instance_size: Mapping[int, float] | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if num_classes < 1:
            raise ValueError(f"InstanceIoU: num_classes={num_classes}: expected >= 1")
        if 0 <= ignore_index < num_classes:
            raise ValueError(
                f"InstanceIoU: ignore_index={ignore_index} is a class id in [0, {num_classes})"
            )
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.instance_classes = check_instance_classes(instance_classes, num_classes, "InstanceIoU")
        mask = torch.zeros(num_classes, dtype=torch.bool)
        mask[self.instance_classes] = True
        self.register_buffer("is_instance_class", mask, persistent=False)
        sizes = mean_instance_size_tensor(
            mean_instance_size, self.instance_classes, num_classes, "InstanceIoU"
        )
        self.register_buffer("fixed_mean_size", sizes, persistent=False)

        def zeros(dtype: torch.dtype) -> torch.Tensor:
            return torch.zeros(num_classes, dtype=dtype)

        self.add_state("tp_over_size", default=zeros(torch.float64), dist_reduce_fx="sum")
        self.add_state("fn_over_size", default=zeros(torch.float64), dist_reduce_fx="sum")
        self.add_state("instance_pixels", default=zeros(torch.long), dist_reduce_fx="sum")
        self.add_state("instance_count", default=zeros(torch.long), dist_reduce_fx="sum")
        self.add_state("false_positives", default=zeros(torch.long), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor, instances: torch.Tensor) -> None:
        """Accumulate preds (long [B,H,W] or logits [B,C,H,W]), target and instances (long [B,H,W])."""
        preds, target, instances = check_segmentation_inputs(
            preds, target, instances, "InstanceIoU"
        )
        c = self.num_classes
        jc = joint_counts(preds, target, instances, c, self.ignore_index, "InstanceIoU")
        conf = confusion_matrix(jc, c, self.ignore_index)
        # FP_c: column c over the non-ignored target rows, minus the diagonal.
        self.false_positives += conf[:c, :c].sum(dim=0) - conf.diagonal()[:c]
        cls, hist = instance_histograms(jc, self.is_instance_class)
        size = hist.sum(dim=1).double()
        tp = hist.gather(1, cls.unsqueeze(1)).squeeze(1).double()
        self.tp_over_size += torch.bincount(cls, weights=tp / size, minlength=c)
        self.fn_over_size += torch.bincount(cls, weights=(size - tp) / size, minlength=c)
        self.instance_pixels += torch.bincount(cls, weights=size, minlength=c).long()
        self.instance_count += torch.bincount(cls, minlength=c)

    def mean_instance_size(self) -> torch.Tensor:
        """N̄_c float64 [num_classes]: the given table, else the mean instance size seen so far (NaN if none)."""
        if self.fixed_mean_size is not None:
            return self.fixed_mean_size
        return self.instance_pixels.double() / self.instance_count.double()

    def compute(self) -> dict[str, torch.Tensor]:
        """{"iiou": scalar (mean over non-NaN classes), "iiou_per_class": float [num_classes]}."""
        itp, ifn = weighted_sums(
            self.mean_instance_size(), self.tp_over_size, self.fn_over_size, self.instance_count
        )
        per_class = iou_from_sums(itp, ifn, self.false_positives, self.is_instance_class)
        return {"iiou": nanmean(per_class), "iiou_per_class": per_class}


def weighted_sums(
    mean_size: torch.Tensor,
    tp_over_size: torch.Tensor,
    fn_over_size: torch.Tensor,
    count: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """iTP = N̄ · Σ tp_t/N_t and iFN = N̄ · Σ fn_t/N_t per class, float64 [K] each."""
    seen = count > 0
    zero = torch.zeros_like(tp_over_size)
    # With no instance the weighted sums are 0 whatever N̄ is (it may be NaN then).
    itp = torch.where(seen, mean_size * tp_over_size, zero)
    ifn = torch.where(seen, mean_size * fn_over_size, zero)
    return itp, ifn


def iou_from_sums(
    itp: torch.Tensor, ifn: torch.Tensor, false_positives: torch.Tensor, evaluated: torch.Tensor
) -> torch.Tensor:
    """iTP / (iTP + FP + iFN) per entry, float [K]; NaN where not evaluated or the denominator is 0."""
    denom = itp + ifn + false_positives.double()
    iou = itp / denom
    iou = torch.where(evaluated & (denom > 0), iou, torch.full_like(iou, float("nan")))
    return iou.float()


def nanmean(values: torch.Tensor) -> torch.Tensor:
    """Mean of the non-NaN entries of a 1-D tensor; NaN if there are none."""
    keep = ~torch.isnan(values)
    if not keep.any():
        return torch.tensor(float("nan"), dtype=values.dtype, device=values.device)
    return values[keep].mean()
