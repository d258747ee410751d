"""pixelwise.callbacks."""
