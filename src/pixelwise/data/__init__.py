"""pixelwise.data."""

from pixelwise.data.hpatches import HPatches  # noqa: F401, E402
from pixelwise.data.superpoint_pairs import SuperPointPairs  # noqa: F401, E402
from pixelwise.data.synthetic_scenes import SCENE_CLASSES, SCENE_PALETTE, SyntheticScenes  # noqa: F401, E402
from pixelwise.data.synthetic_shapes import PRIMITIVES, SyntheticShapes  # noqa: F401, E402
