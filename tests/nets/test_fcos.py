"""FCOSNet: shapes for any input size, strides, positivity of distances, prior, errors."""

from __future__ import annotations

import math

import pytest
import torch

from pixelwise.nets.fcos import FCOSNet


@pytest.mark.parametrize("size", [(64, 80), (50, 77)])
def test_level_shapes_for_any_size(size):
    net = FCOSNet(num_classes=3, base_channels=4, depth=4, num_levels=3, fpn_channels=8).eval()
    assert net.strides == [4, 8, 16]
    out = net(torch.rand(2, 3, *size))
    h, w = (math.ceil(size[0] / 16) * 16, math.ceil(size[1] / 16) * 16)
    for level, s in enumerate(net.strides):
        assert out["cls_logits"][level].shape == (2, 3, h // s, w // s)
        assert out["box_distances"][level].shape == (2, 4, h // s, w // s)
        assert out["centerness"][level].shape == (2, 1, h // s, w // s)
        assert (out["box_distances"][level] > 0).all()


def test_initial_class_probability_is_the_prior():
    net = FCOSNet(num_classes=2, base_channels=4, fpn_channels=8, prior_probability=0.01).eval()
    out = net(torch.rand(1, 3, 32, 32))
    assert torch.allclose(torch.sigmoid(out["cls_logits"][0]).mean(), torch.tensor(0.01), atol=2e-3)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_classes": 0}, "num_classes"),
        ({"num_classes": 2, "num_levels": 5, "depth": 4}, "num_levels"),
        ({"num_classes": 2, "norm": "layer"}, "norm"),
        ({"num_classes": 2, "prior_probability": 1.0}, "prior_probability"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FCOSNet(**kwargs)


def test_pretrained_round_trip_and_errors(tmp_path):
    net = FCOSNet(num_classes=2, base_channels=4, fpn_channels=8)
    path = tmp_path / "fcos.pt"
    torch.save(net.state_dict(), path)
    again = FCOSNet(num_classes=2, base_channels=4, fpn_channels=8, pretrained=str(path))
    for (k, a), b in zip(net.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), k
    with pytest.raises(ValueError, match="does not fit this FCOSNet"):
        FCOSNet(num_classes=3, base_channels=4, fpn_channels=8, pretrained=str(path))
    with pytest.raises(FileNotFoundError, match="no such file"):
        FCOSNet(num_classes=2, pretrained=str(tmp_path / "missing.pt"))
