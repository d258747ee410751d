"""pixelwise.losses."""

from pixelwise.losses.cell_cross_entropy import cell_cross_entropy  # noqa: F401
