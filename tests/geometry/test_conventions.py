"""Coordinate conventions: the pixel-centre resize mapping vs the scaled-corner one, by hand and by
resizing a real image (cv2.INTER_AREA keeps a single bright pixel block's centre of mass)."""

import cv2
import numpy as np
import torch

from pixelwise.geometry.conventions import (
    from_scaled_corner_convention,
    to_scaled_corner_convention,
)


def test_hand_computed_offset_at_one_eighth():
    ours = torch.tensor([[10.0, 20.0]])
    assert to_scaled_corner_convention(ours, 1 / 8).tolist() == [[10.4375, 20.4375]]
    back = from_scaled_corner_convention(to_scaled_corner_convention(ours, 0.25), 0.25)
    assert torch.equal(back, ours)


def test_pixel_centre_mapping_matches_an_actual_resize():
    # An 8x8 block at columns 80..87 of a 960-wide image: its centre, pixel-centre convention, is
    # 83.5; after an 8x area resize it is the single pixel 10. The reference's p * s gives 10.4375.
    big = np.zeros((64, 960), np.float32)
    big[:, 80:88] = 1.0
    small = cv2.resize(big, (120, 8), interpolation=cv2.INTER_AREA)
    col = float((small[0] * np.arange(120)).sum() / small[0].sum())
    centre_big = 83.5
    ours = (centre_big + 0.5) / 8 - 0.5
    assert abs(col - ours) < 1e-6
    reference = torch.tensor([[centre_big / 8, 0.0]])
    assert abs(from_scaled_corner_convention(reference, 1 / 8)[0, 0].item() - col) < 1e-6
