"""pixelwise.metrics."""

from pixelwise.metrics.boundary_f import BoundaryF  # noqa: F401
from pixelwise.metrics.category_iou import CategoryInstanceIoU, CategoryIoU  # noqa: F401
from pixelwise.metrics.descriptor_metrics import DescriptorMetrics  # noqa: F401
from pixelwise.metrics.homography_accuracy import HomographyAccuracy  # noqa: F401
from pixelwise.metrics.instance_iou import InstanceIoU  # noqa: F401
from pixelwise.metrics.keypoint_ap import KeypointAP  # noqa: F401
from pixelwise.metrics.repeatability import Repeatability  # noqa: F401
