"""pixelwise.data."""
