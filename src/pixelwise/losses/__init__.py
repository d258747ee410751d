"""pixelwise.losses."""

from pixelwise.losses.balanced_bce import balanced_bce, deep_supervision_bce  # noqa: F401
from pixelwise.losses.cell_cross_entropy import cell_cross_entropy  # noqa: F401
from pixelwise.losses.descriptor_hinge import descriptor_hinge_loss  # noqa: F401
