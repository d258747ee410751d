"""pixelwise: image-to-image mapping by classification (Lightning + Hydra)."""

__version__ = "0.1.0"
