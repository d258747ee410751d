"""pixelwise.nets."""
