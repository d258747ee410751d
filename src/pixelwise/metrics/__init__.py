"""pixelwise.metrics."""
