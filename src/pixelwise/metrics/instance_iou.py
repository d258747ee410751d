"""Instance-weighted IoU (iIoU) as the Cityscapes pixel-level benchmark computes it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torchmetrics import Metric

# Above this many (image, instance id, class) bins the instance ids are compacted with
# torch.unique first, so raw ids like Cityscapes' 26001 cost no memory.
_MAX_DENSE_BINS = 1 << 22


def check_segmentation_inputs(
    preds: torch.Tensor,
    target: torch.Tensor,
    instances: torch.Tensor | None,
    num_classes: int,
    ignore_index: int,
    who: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Validate preds (long [B,H,W] or logits [B,C,H,W]), target and instances (long [B,H,W]); return them as [B, H*W]."""
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
    bad = ((target < 0) | (target >= num_classes)) & (target != ignore_index)
    if bad.any():
        raise ValueError(
            f"{who}: target value {int(target[bad][0])} is neither a class in "
            f"[0, {num_classes}) nor ignore_index={ignore_index}"
        )
    if instances is not None and (instances < 0).any():
        raise ValueError(
            f"{who}: instance ids must be >= 0 (0 = no instance), got {int(instances.min())}"
        )
    b = target.shape[0]
    flat = (preds.reshape(b, -1).long(), target.reshape(b, -1).long())
    return flat[0], flat[1], instances.reshape(b, -1).long() if instances is not None else None


def instance_groups(
    target: torch.Tensor, instances: torch.Tensor, is_instance_class: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Group instance pixels of [B, P] maps by (image, instance id, target class).

    Returns the selected pixel mask [B, P], the group index of each selected pixel [S],
    the class of each group slot [G] and G. A slot with no pixel is an empty group.
    """
    num_classes = is_instance_class.numel()
    in_class = is_instance_class[target.clamp(0, num_classes - 1)] & (target < num_classes)
    sel = (instances > 0) & in_class
    b = target.shape[0]
    batch = torch.arange(b, device=target.device).unsqueeze(1).expand_as(target)[sel]
    inst = instances[sel]
    cls = target[sel]
    max_id = int(inst.max()) if inst.numel() else 0
    if b * (max_id + 1) * num_classes <= _MAX_DENSE_BINS:
        key = (batch * (max_id + 1) + inst) * num_classes + cls
        num_groups = b * (max_id + 1) * num_classes
        group_class = torch.arange(num_groups, device=target.device) % num_classes
        return sel, key, group_class, num_groups
    # Sparse ids: compact (image, id) pairs first, then the dense key is small.
    _, compact = torch.unique(batch * (max_id + 1) + inst, return_inverse=True)
    num_pairs = int(compact.max()) + 1
    key = compact * num_classes + cls
    num_groups = num_pairs * num_classes
    group_class = torch.arange(num_groups, device=target.device) % num_classes
    return sel, key, group_class, num_groups


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
            preds, target, instances, self.num_classes, self.ignore_index, "InstanceIoU"
        )
        c = self.num_classes
        self.false_positives += false_positive_counts(preds, target, c, self.ignore_index)

        sel, key, group_class, num_groups = instance_groups(
            target, instances, self.is_instance_class
        )
        hit = preds[sel] == target[sel]
        size = torch.bincount(key, minlength=num_groups)
        tp = torch.bincount(key[hit], minlength=num_groups)
        present = size > 0
        cls, size, tp = group_class[present], size[present], tp[present]
        inv = 1.0 / size.double()
        self.tp_over_size += torch.bincount(cls, weights=tp.double() * inv, minlength=c)
        self.fn_over_size += torch.bincount(cls, weights=(size - tp).double() * inv, minlength=c)
        self.instance_pixels += torch.bincount(cls, weights=size.double(), minlength=c).long()
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


def false_positive_counts(
    preds: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int
) -> torch.Tensor:
    """Per class, pixels predicted c whose target is another non-ignored class: long [num_classes]."""
    wrong = (target != ignore_index) & (preds != target) & (preds >= 0) & (preds < num_classes)
    return torch.bincount(preds[wrong], minlength=num_classes)


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
