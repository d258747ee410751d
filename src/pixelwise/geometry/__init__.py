"""pixelwise.geometry."""
from pixelwise.geometry.homography import (  # noqa: F401
    sample_homography,
    warp_images,
    warp_images_with_mask,
    warp_points,
    warp_valid_mask,
)
