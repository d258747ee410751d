"""pixelwise.geometry."""

from pixelwise.geometry.adaptation import (  # noqa: F401
    ADAPTATION_HOMOGRAPHY,
    aggregate_warped_heatmaps,
    homographic_adaptation,
    shift_averaged_heatmap,
)
from pixelwise.geometry.cells import (  # noqa: F401
    crop_to_size,
    heatmap_to_cell_distribution,
    keypoints_to_cell_labels,
    logits_to_heatmap,
    pad_to_multiple,
)
from pixelwise.geometry.homography import (  # noqa: F401
    sample_homography,
    sample_homography_np,
    warp_images,
    warp_images_with_mask,
    warp_points,
    warp_valid_mask,
)
from pixelwise.geometry.keypoints import extract_keypoints, nms_heatmap  # noqa: F401
from pixelwise.geometry.matching import match_descriptors  # noqa: F401
