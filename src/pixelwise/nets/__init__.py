"""pixelwise.nets."""

from pixelwise.nets.classical_detectors import ClassicalDetector  # noqa: F401
from pixelwise.nets.classical_features import ClassicalFeatures  # noqa: F401
from pixelwise.nets.hed import HED  # noqa: F401
from pixelwise.nets.superpoint import SuperPointNet, load_superpoint_weights, magicpoint  # noqa: F401
from pixelwise.nets.unet_edges import UNetEdges  # noqa: F401
