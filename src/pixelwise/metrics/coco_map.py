"""COCO box mAP: a thin factory over torchmetrics' ``MeanAveragePrecision`` (COCO's own evaluation code).

The metric is torchmetrics' (states gathered across DDP ranks, then one COCO evaluation), run by
pycocotools or by faster-coco-eval; it is not re-implemented here. Feed it per image

- preds: ``{"boxes": float [N,4] xyxy, "scores": float [N], "labels": long [N]}``;
- targets: ``{"boxes": float [M,4] xyxy, "labels": long [M], "iscrowd": bool/long [M],
  "area": float [M]}`` — crowd boxes are matched as "ignore" as COCOeval does, and ``area``
  (COCO's segment area) decides small / medium / large; without it, box area is used.

in *original image* coordinates (a letterboxed item's boxes divided by its ``scale``), so the
size ranges (32², 96² pixels) mean what they mean in COCO. ``compute()`` returns ``map``,
``map_50``, ``map_75``, ``map_small/medium/large``, ``mar_1/10/100``, ``mar_small/medium/large``
(``-1`` where a size range has no object), and per class with ``class_metrics=True``.

Backend, measured by ``benchmarks/bench_coco_map.py`` in one run (500 images x 50 detections,
10 classes, update in batches of 16 + compute; AMD EPYC, 2 cores, torch 2.14.1, one core busy with
a training): faster_coco_eval 1.05 s, pycocotools 6.72 s (6.4x slower; pycocotools' own COCOeval
on the same detections 7.17 s); all three give the same mAP to 1e-6.
So the default is ``"faster_coco_eval"``.

Under DDP the states are gathered by :class:`CocoMeanAveragePrecision`, which also works when the
ranks hold different numbers of images (the evaluation sampler's uneven shards) and gives the
single-process values exactly (tests/metrics/test_coco_map_ddp.py).
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import numpy as np
import torch
import torch.distributed as dist
from torchmetrics.detection import MeanAveragePrecision

# faster_coco_eval prints COCO's 12-line summary at INFO on every compute; callers log the values.
logging.getLogger("faster_coco_eval").setLevel(logging.WARNING)
__all__ = [
    "COCO_IOU_THRESHOLDS",
    "COCO_RECALL_THRESHOLDS",
    "DEFAULT_BACKEND",
    "CocoMeanAveragePrecision",
    "coco_box_map",
]

DEFAULT_BACKEND: Literal["pycocotools", "faster_coco_eval"] = "faster_coco_eval"

# COCOeval's own thresholds (pycocotools Params.setDetParams), in float64. torchmetrics' defaults
# come from torch.linspace in float32: 36 of the 101 recall thresholds (0.07, 0.14, 0.3, ...)
# then lie just above COCO's, and a class whose recall reaches exactly such a value (k of n
# objects) loses that point, e.g. AP_medium 0.1356 instead of COCOeval's 0.1360 in
# tests/metrics/test_coco_map.py. Passing COCO's values makes the metric equal COCOeval.
COCO_IOU_THRESHOLDS: list[float] = np.linspace(0.5, 0.95, 10).tolist()
COCO_RECALL_THRESHOLDS: list[float] = np.linspace(0.0, 1.0, 101).tolist()


class CocoMeanAveragePrecision(MeanAveragePrecision):
    """torchmetrics' MeanAveragePrecision whose per-image states are gathered whole, rank by rank.

    torchmetrics 1.9 gathers each per-image list state element by element, so ranks holding
    different numbers of images run different numbers of collectives (gloo aborts: "Received data
    size doesn't match expected size"), and its ``segm`` gather reads rank 0's length for every
    rank. Here each rank's lists go in one ``all_gather_object`` and the images are put back in the
    order of an unpadded distributed sampler (image k of rank r is image ``k * world + r``, as
    Lightning's UnrepeatedDistributedSampler deals them): the order one process sees, which
    COCOeval's ties between equal scores depend on.
    """

    def _sync_dist(self, dist_sync_fn: Any = None, process_group: Any = None) -> None:
        group = process_group or self.process_group
        local = {
            attr: [x.cpu() if isinstance(x, torch.Tensor) else x for x in getattr(self, attr)]
            for attr in self._reductions
        }
        gathered: list[Any] = [None] * dist.get_world_size(group)
        dist.all_gather_object(gathered, local, group=group)
        for attr in self._reductions:
            parts = [g[attr] for g in gathered]
            merged = [
                part[k] for k in range(max(map(len, parts))) for part in parts if k < len(part)
            ]
            setattr(
                self,
                attr,
                [x.to(self.device) if isinstance(x, torch.Tensor) else x for x in merged],
            )


def coco_box_map(
    backend: Literal["pycocotools", "faster_coco_eval"] = DEFAULT_BACKEND,
    class_metrics: bool = False,
    **kwargs: Any,
) -> MeanAveragePrecision:
    """COCO bbox mAP over xyxy boxes (torchmetrics MeanAveragePrecision, iou_type="bbox", COCO's thresholds)."""
    kwargs.setdefault("iou_thresholds", list(COCO_IOU_THRESHOLDS))
    kwargs.setdefault("rec_thresholds", list(COCO_RECALL_THRESHOLDS))
    return CocoMeanAveragePrecision(
        box_format="xyxy", iou_type="bbox", backend=backend, class_metrics=class_metrics, **kwargs
    )
