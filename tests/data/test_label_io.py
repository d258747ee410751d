"""label_io: decoding errors name the file."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pixelwise.data.label_io import read_index_png, read_rgb
from pixelwise.errors import UnreadableFileError


def test_corrupt_files_raise_an_error_naming_the_path(tmp_path):
    bad = tmp_path / "frame_gtFine_labelIds.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(
        UnreadableFileError, match=r"frame_gtFine_labelIds\.png: cannot read this labelIds PNG"
    ):
        read_index_png(bad, ("L",), "labelIds")
    with pytest.raises(UnreadableFileError, match="cannot read this image file"):
        read_rgb(bad)
    with pytest.raises(FileNotFoundError):  # missing stays missing, not "unreadable"
        read_rgb(tmp_path / "absent.png")


def test_good_files_still_read(tmp_path):
    ids = np.arange(12, dtype=np.uint8).reshape(3, 4)
    Image.fromarray(ids).save(tmp_path / "ids.png")
    np.testing.assert_array_equal(read_index_png(tmp_path / "ids.png", ("L",), "ids"), ids)
    assert read_rgb(tmp_path / "ids.png").shape == (3, 4, 3)
