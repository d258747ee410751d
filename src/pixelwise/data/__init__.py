"""pixelwise.data."""
from pixelwise.data.synthetic_shapes import PRIMITIVES, SyntheticShapes  # noqa: F401, E402
