"""pixelwise.tasks."""
