"""pixelwise.metrics: torchmetrics ``Metric``s (DDP-reduced), usable without Lightning or Hydra.

from pixelwise.metrics import BoundaryF, InstanceIoU
"""

from pixelwise.metrics.boundary_f import BoundaryF
from pixelwise.metrics.category_iou import CategoryInstanceIoU, CategoryIoU
from pixelwise.metrics.coco_map import coco_box_map
from pixelwise.metrics.descriptor_metrics import DescriptorMetrics
from pixelwise.metrics.homography_accuracy import HomographyAccuracy
from pixelwise.metrics.instance_iou import InstanceIoU
from pixelwise.metrics.keypoint_ap import KeypointAP
from pixelwise.metrics.repeatability import Repeatability

__all__ = [
    "BoundaryF",
    "CategoryInstanceIoU",
    "CategoryIoU",
    "DescriptorMetrics",
    "HomographyAccuracy",
    "InstanceIoU",
    "KeypointAP",
    "Repeatability",
    "coco_box_map",
]
