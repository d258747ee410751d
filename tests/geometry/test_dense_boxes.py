"""Locations of pyramid levels and FCOS-style decoding, on hand-made maps."""

from __future__ import annotations

import torch

from pixelwise.geometry.dense_boxes import (
    decode_dense_detections,
    distances_to_boxes,
    level_locations,
)


def test_locations_are_cell_centres_row_major():
    (loc,) = level_locations([(2, 3)], [8])
    assert loc.tolist() == [[4, 4], [12, 4], [20, 4], [4, 12], [12, 12], [20, 12]]


def test_distances_to_boxes():
    boxes = distances_to_boxes(torch.tensor([[10.0, 20.0]]), torch.tensor([[1.0, 2.0, 3.0, 4.0]]))
    assert boxes.tolist() == [[9.0, 18.0, 13.0, 24.0]]


def _maps(sizes, k=2):
    cls = [torch.full((1, k, h, w), -10.0) for h, w in sizes]
    dist = [torch.full((1, 4, h, w), 2.0) for h, w in sizes]
    ctr = [torch.full((1, 1, h, w), 10.0) for h, w in sizes]
    return cls, dist, ctr


def test_one_confident_location_gives_its_box_label_and_score():
    sizes, strides = [(4, 6), (2, 3)], [4, 8]
    cls, dist, ctr = _maps(sizes)
    cls[1][0, 1, 1, 2] = 2.0  # location (x, y) = (2*8+4, 1*8+4) = (20, 12), class 1
    dist[1][0, :, 1, 2] = torch.tensor([5.0, 6.0, 7.0, 8.0])
    (det,) = decode_dense_detections(cls, dist, ctr, strides, (16, 24), score_threshold=0.05)
    assert det["labels"].tolist() == [1]
    assert det["boxes"].tolist() == [[15.0, 6.0, 24.0, 16.0]]  # x2 27 and y2 20 clipped to 24, 16
    want = torch.sqrt(torch.sigmoid(torch.tensor(2.0)) * torch.sigmoid(torch.tensor(10.0)))
    assert torch.allclose(det["scores"], want[None])


def test_nms_keeps_the_best_of_overlapping_boxes_per_class():
    sizes, strides = [(4, 4)], [4]
    cls, dist, ctr = _maps(sizes)
    cls[0][0, 0, 1, 1] = 3.0  # (6, 6), class 0
    cls[0][0, 0, 1, 2] = 2.0  # (10, 6), class 0, overlaps the first after decoding
    cls[0][0, 1, 1, 2] = 1.0  # same place, class 1: another class, kept
    dist[0][0] = 4.0
    (det,) = decode_dense_detections(cls, dist, ctr, strides, (16, 16), nms_iou=0.3)
    assert sorted(det["labels"].tolist()) == [0, 1]
    assert det["scores"][0] > det["scores"][1]


def test_max_detections_and_threshold():
    sizes, strides = [(4, 4)], [4]
    cls, dist, ctr = _maps(sizes, k=1)
    cls[0][:] = 0.0  # every location scores sqrt(0.5 * ~1) ~ 0.71
    dist[0][:] = 1.0  # tiny boxes, no overlap
    (det,) = decode_dense_detections(cls, dist, ctr, strides, (16, 16), max_detections=5)
    assert len(det["boxes"]) == 5
    (none,) = decode_dense_detections(cls, dist, ctr, strides, (16, 16), score_threshold=0.8)
    assert len(none["boxes"]) == 0
