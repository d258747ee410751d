"""pixelwise: image-to-image mapping by classification (Lightning + Hydra).

The Python API needs neither: ``from pixelwise import SuperPoint, MagicPoint`` (see
:mod:`pixelwise.pretrained`); they are imported on first use, so ``import pixelwise`` stays light.
"""

import os

# albumentations checks PyPI for a newer release when imported (the configs instantiate it):
# no network call from a training job or a test. Set before anything can import it.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.1.0"
__all__ = ["MagicPoint", "SuperPoint", "__version__"]


def __getattr__(name: str):
    if name in ("SuperPoint", "MagicPoint"):
        from pixelwise import pretrained

        return getattr(pretrained, name)
    raise AttributeError(f"module 'pixelwise' has no attribute {name!r}")
