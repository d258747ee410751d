"""pixelwise.geometry."""
