"""Imported before any test module: pixelwise sets NO_ALBUMENTATIONS_UPDATE=1 (no update check
over the network) before a test imports albumentations itself."""

import pixelwise  # noqa: F401
