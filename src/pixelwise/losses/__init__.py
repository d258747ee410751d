"""pixelwise.losses."""
