"""IoU and instance-weighted IoU over category labels (e.g. Cityscapes `vehicle` for car, bus, ...)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torchmetrics import Metric

from pixelwise.metrics.instance_iou import (
    check_instance_classes,
    check_segmentation_inputs,
    confusion_matrix,
    instance_histograms,
    iou_from_sums,
    joint_counts,
    mean_instance_size_tensor,
    nanmean,
    weighted_sums,
)


def _category_table(
    class_to_category: Sequence[int], num_categories: int, num_classes: int | None, who: str
) -> torch.Tensor:
    """Validate a class -> category table; return it as long [num_classes]."""
    table = [int(k) for k in class_to_category]
    if num_classes is not None and len(table) != num_classes:
        raise ValueError(
            f"{who}: class_to_category has {len(table)} entries, expected num_classes={num_classes}"
        )
    bad = [(c, k) for c, k in enumerate(table) if not 0 <= k < num_categories]
    if bad:
        c, k = bad[0]
        raise ValueError(
            f"{who}: class_to_category[{c}] = {k} is not a category in [0, {num_categories})"
        )
    return torch.tensor(table, dtype=torch.long)


def category_confusion(
    conf: torch.Tensor, class_to_category: torch.Tensor, num_categories: int
) -> torch.Tensor:
    """Class confusion long [C+1, C+1] (index C = ignored / outside) -> category confusion long [K+1, K+1] (index K likewise)."""
    k = num_categories
    extended = torch.cat([class_to_category, class_to_category.new_tensor([k])])
    out = torch.zeros(k + 1, k + 1, dtype=conf.dtype, device=conf.device)
    out.index_put_(
        (extended.unsqueeze(1).expand_as(conf), extended.unsqueeze(0).expand_as(conf)),
        conf,
        accumulate=True,
    )
    return out


class _CategoryMetric(Metric):
    """Base of the category metrics: the class -> category table (``class_to_category`` long
    [num_classes], registered as a buffer) and a batch's joint counts and category confusion."""

    is_differentiable = False
    higher_is_better = True
    full_state_update = False
    # The subclass's counts per category: long [num_categories] states summed across processes.
    category_counts: tuple[str, ...] = ()

    def __init__(
        self,
        class_to_category: Sequence[int],
        num_categories: int,
        ignore_index: int = 255,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        who = type(self).__name__
        table = _category_table(class_to_category, num_categories, None, who)
        self.num_classes = table.numel()
        if 0 <= ignore_index < self.num_classes:
            raise ValueError(f"{who}: ignore_index={ignore_index} is a class id")
        self.num_categories = num_categories
        self.ignore_index = ignore_index
        self.register_buffer("class_to_category", table, persistent=False)
        for name in self.category_counts:
            self.add_state(
                name, default=torch.zeros(num_categories, dtype=torch.long), dist_reduce_fx="sum"
            )

    def _counts(
        self, preds: torch.Tensor, target: torch.Tensor, instances: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Checked inputs -> (joint counts of :func:`joint_counts`, category confusion long [K+1, K+1])."""
        who = type(self).__name__
        preds, target, instances = check_segmentation_inputs(preds, target, instances, who)
        c = self.num_classes
        jc = joint_counts(preds, target, instances, c, self.ignore_index, who)
        conf = category_confusion(
            confusion_matrix(jc, c, self.ignore_index), self.class_to_category, self.num_categories
        )
        return jc, conf


class CategoryIoU(_CategoryMetric):
    """IoU per category and its mean, with classes and predictions mapped through `class_to_category`.

    As the Cityscapes script: TP_k counts target-and-prediction in category k, FN_k target k
    predicted elsewhere (or outside all classes), FP_k prediction k on a non-ignored target of
    another category; IoU_k = TP / (TP + FP + FN), NaN where that is 0/0.
    """

    category_counts = ("true_positives", "false_positives", "false_negatives")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        """Accumulate preds (long [B,H,W] or logits [B,C,H,W]) against target (long [B,H,W], ignore_index skipped)."""
        _, conf = self._counts(preds, target)
        k = self.num_categories
        tp = conf.diagonal()[:k]
        self.true_positives += tp
        self.false_negatives += conf[:k].sum(dim=1) - tp
        self.false_positives += conf[:k, :k].sum(dim=0) - tp

    def compute(self) -> dict[str, torch.Tensor]:
        """{"category_miou": scalar (mean over non-NaN), "category_iou_per_category": float [num_categories]}."""
        denom = self.true_positives + self.false_positives + self.false_negatives
        iou = self.true_positives.double() / denom.double()
        iou = torch.where(denom > 0, iou, torch.full_like(iou, float("nan"))).float()
        return {"category_miou": nanmean(iou), "category_iou_per_category": iou}


class CategoryInstanceIoU(_CategoryMetric):
    """Instance-weighted IoU per category (Cityscapes `categoryiIoU`) and its mean.

    Only categories whose classes are all in `instance_classes` are evaluated (Cityscapes:
    human, vehicle); the rest are NaN. An instance t of class c keeps its class weight
    w_t = N̄_c / N_t; its pixels predicted as any class of c's category add w_t to iTP, the
    others add w_t to iFN. FP_k counts pixels predicted in category k whose target is a
    non-ignored class of another category. States are sums, as in `InstanceIoU`.
    """

    category_counts = ("false_positives",)

    def __init__(
        self,
        class_to_category: Sequence[int],
        num_categories: int,
        instance_classes: Sequence[int],
        ignore_index: int = 255,
        mean_instance_size: Mapping[int, float] | None = None,
        **kwargs,
    ) -> None:
        super().__init__(class_to_category, num_categories, ignore_index, **kwargs)
        who = "CategoryInstanceIoU"
        table, num_classes = self.class_to_category, self.num_classes
        self.instance_classes = check_instance_classes(instance_classes, num_classes, who)
        is_inst = torch.zeros(num_classes, dtype=torch.bool)
        is_inst[self.instance_classes] = True
        # A category is evaluated when it has classes and all of them have instances.
        has_class = torch.bincount(table, minlength=num_categories) > 0
        has_plain = torch.bincount(table[~is_inst], minlength=num_categories) > 0
        self.register_buffer("is_instance_class", is_inst, persistent=False)
        self.register_buffer("evaluated", has_class & ~has_plain, persistent=False)
        sizes = mean_instance_size_tensor(
            mean_instance_size, self.instance_classes, num_classes, who
        )
        self.register_buffer("fixed_mean_size", sizes, persistent=False)

        def zeros(n: int, dtype: torch.dtype) -> torch.Tensor:
            return torch.zeros(n, dtype=dtype)

        # Per class (the weight is a class quantity), summed into categories at compute time.
        self.add_state(
            "tp_over_size", default=zeros(num_classes, torch.float64), dist_reduce_fx="sum"
        )
        self.add_state(
            "fn_over_size", default=zeros(num_classes, torch.float64), dist_reduce_fx="sum"
        )
        self.add_state(
            "instance_pixels", default=zeros(num_classes, torch.long), dist_reduce_fx="sum"
        )
        self.add_state(
            "instance_count", default=zeros(num_classes, torch.long), dist_reduce_fx="sum"
        )

    def update(self, preds: torch.Tensor, target: torch.Tensor, instances: torch.Tensor) -> None:
        """Accumulate preds (long [B,H,W] or logits [B,C,H,W]), target and instances (long [B,H,W])."""
        jc, conf = self._counts(preds, target, instances)
        c, k = self.num_classes, self.num_categories
        self.false_positives += conf[:k, :k].sum(dim=0) - conf.diagonal()[:k]
        cls, hist = instance_histograms(jc, self.is_instance_class)
        # Pixels of an instance predicted as any class of its category are category hits.
        pred_cat = torch.cat([self.class_to_category, self.class_to_category.new_tensor([k])])
        same = pred_cat.unsqueeze(0) == self.class_to_category[cls].unsqueeze(1)
        size = hist.sum(dim=1).double()
        tp = (hist * same).sum(dim=1).double()
        self.tp_over_size += torch.bincount(cls, weights=tp / size, minlength=c)
        self.fn_over_size += torch.bincount(cls, weights=(size - tp) / size, minlength=c)
        self.instance_pixels += torch.bincount(cls, weights=size, minlength=c).long()
        self.instance_count += torch.bincount(cls, minlength=c)

    def compute(self) -> dict[str, torch.Tensor]:
        """{"category_iiou": scalar (mean over non-NaN), "category_iiou_per_category": float [num_categories]}."""
        if self.fixed_mean_size is not None:
            mean_size = self.fixed_mean_size
        else:
            mean_size = self.instance_pixels.double() / self.instance_count.double()
        # N̄_c per class times the per-class sums, then summed over the classes of each category.
        itp_c, ifn_c = weighted_sums(
            mean_size, self.tp_over_size, self.fn_over_size, self.instance_count
        )
        zeros = torch.zeros(self.num_categories, dtype=torch.float64, device=itp_c.device)
        itp = zeros.index_add(0, self.class_to_category, itp_c)
        ifn = zeros.index_add(0, self.class_to_category, ifn_c)
        per_cat = iou_from_sums(itp, ifn, self.false_positives, self.evaluated)
        return {"category_iiou": nanmean(per_cat), "category_iiou_per_category": per_cat}
