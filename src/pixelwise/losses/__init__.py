"""pixelwise.losses."""

from pixelwise.losses.cell_cross_entropy import cell_cross_entropy  # noqa: F401
from pixelwise.losses.descriptor_hinge import descriptor_hinge_loss  # noqa: F401
