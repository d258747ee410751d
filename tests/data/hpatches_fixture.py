"""The tests' HPatches-format set: :mod:`pixelwise.data.hpatches_offline` (kept under this name for the tests)."""

from pixelwise.data.hpatches_offline import PHOTOS, photo, write_hpatches_fixture

__all__ = ["PHOTOS", "photo", "write_hpatches_fixture"]
