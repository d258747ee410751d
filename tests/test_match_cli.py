"""pixelwise.match_cli (the pixelwise-match console script; match.py is a thin wrapper)."""

from __future__ import annotations

import cv2
import pytest
from skimage import data as skdata

from pixelwise.match_cli import main


def test_shipped_weights_by_name_match_an_image_with_itself(tmp_path, capsys):
    camera = skdata.camera()[::2, ::2]  # 256x256 real photograph
    a = tmp_path / "a.png"
    cv2.imwrite(str(a), camera)
    out = main([str(a), str(a), "weights=superpoint_photos", f"out={tmp_path / 'm.png'}"])
    assert cv2.imread(str(out)).shape == (256, 512, 3)
    printed = capsys.readouterr().out
    # The same image twice: every keypoint has itself as its mutual nearest descriptor.
    n = int(printed.split()[1])
    assert n > 20 and f"keypoints {n} / {n}, matches {n}, RANSAC inliers {n}" in printed


def test_unknown_weights_name_is_a_one_line_error(tmp_path):
    with pytest.raises(
        SystemExit,
        match="shipped: fcos_synthetic, magicpoint_photos, magicpoint_shapes, superpoint_photos",
    ):
        main(["a.png", "b.png", "weights=superpoint_nothing"])
