"""Tests of SuperPointNet's full-resolution refinement (refine_channels > 0).

What it must do: start as the plain net (zero output), add one logit per pixel to that pixel's
class of its cell, be shift-equivariant (stride 1), and survive loading, folding and refusals.
"""

import pytest
import torch
import torch.nn.functional as F

from pixelwise.nets.superpoint import (
    SuperPointNet,
    load_superpoint_weights,
    superpoint_from_file,
    superpoint_net_config,
)
from pixelwise.nets.superpoint_official import fold_batch_norm, official_state_dict
from pixelwise.nets.superpoint_widen import widen_superpoint

SMALL = {"channels": [8, 8, 16, 16], "head_channels": 16, "descriptor_dim": 8}


def _randomise(net: SuperPointNet, seed: int = 0) -> SuperPointNet:
    """Every parameter and batch-norm statistic random (the refinement's zero start included)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in net.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            else:
                t.copy_(torch.randn(t.shape, generator=g) * 0.3)
    return net.eval()


@pytest.mark.parametrize("batch_norm", [False, True])
def test_plain_weights_load_and_the_refined_net_computes_the_plain_function(tmp_path, batch_norm):
    plain = _randomise(SuperPointNet(batch_norm=batch_norm, **SMALL))
    path = tmp_path / "plain.pt"
    torch.save(plain.state_dict(), path)
    refined = SuperPointNet(
        batch_norm=batch_norm, refine_channels=4, pretrained=path, **SMALL
    ).eval()
    x = torch.rand(2, 1, 37, 50)
    a, b = plain(x), refined(x)
    assert torch.equal(a["logits"], b["logits"])
    assert torch.equal(a["descriptors"], b["descriptors"])


def test_refinement_adds_one_logit_per_pixel_to_that_pixels_class():
    """logits = cell head + pixel_unshuffle(convRb(relu(convRa(conv1 features)))), dustbin untouched."""
    torch.manual_seed(0)
    net = _randomise(SuperPointNet(descriptor=False, refine_channels=3, **SMALL))
    x = torch.rand(1, 1, 16, 24)
    out = net(x)["logits"]

    plain_logits = net.convPb(F.relu(net.convPa(_encode(net, x))))
    per_pixel = net.convRb(F.relu(net.convRa(F.relu(net.conv1b(F.relu(net.conv1a(x)))))))
    for cy in range(2):
        for cx in range(3):
            for dy in range(8):
                for dx in range(8):
                    expected = (
                        plain_logits[0, dy * 8 + dx, cy, cx]
                        + per_pixel[0, 0, cy * 8 + dy, cx * 8 + dx]
                    )
                    assert torch.allclose(out[0, dy * 8 + dx, cy, cx], expected, atol=1e-5)
            assert torch.allclose(out[0, 64, cy, cx], plain_logits[0, 64, cy, cx], atol=1e-6)


def _encode(net: SuperPointNet, x: torch.Tensor) -> torch.Tensor:
    """The plain encoder without batch norm, written out: conv pairs with 2x2 max pools between."""
    for block in ("1", "2", "3", "4"):
        x = F.relu(getattr(net, f"conv{block}a")(x))
        x = F.relu(getattr(net, f"conv{block}b")(x))
        if block != "4":
            x = F.max_pool2d(x, 2, 2)
    return x


def test_refinement_is_shift_equivariant_where_the_cell_head_is_not():
    """With the cell head's logits constant, the per-pixel logits move with the input by any integer shift."""
    net = _randomise(SuperPointNet(descriptor=False, refine_channels=4, **SMALL))
    with torch.no_grad():
        net.convPb.weight.zero_()
        net.convPb.bias.zero_()
    image = torch.rand(1, 1, 48, 64)
    a, shifted = image[..., 0:40, 0:56], image[..., 3:43, 5:61]  # content moved by (-5, -3)

    def per_pixel(x):
        return F.pixel_shuffle(net(x)["logits"][:, :64], 8)

    pa, pb = per_pixel(a), per_pixel(shifted)
    # shifted's pixel (y, x) is a's (y + 3, x + 5); away from the borders, where the three 3x3
    # convs (conv1a, conv1b, convRa) see zero padding.
    assert torch.allclose(pb[..., 3:34, 3:48], pa[..., 6:37, 8:53], atol=1e-5)
    # The cell head alone is not: the same shift changes its sub-cell logits.
    plain = _randomise(SuperPointNet(descriptor=False, **SMALL))
    qa = F.pixel_shuffle(plain(a)["logits"][:, :64], 8)
    qb = F.pixel_shuffle(plain(shifted)["logits"][:, :64], 8)
    assert not torch.allclose(qb[..., 8:32, 8:43], qa[..., 11:35, 13:48], atol=1e-3)


def test_refined_file_round_trips_through_superpoint_from_file(tmp_path):
    net = _randomise(SuperPointNet(batch_norm=True, refine_channels=5, **SMALL))
    path = tmp_path / "refined.pt"
    torch.save(net.state_dict(), path)
    loaded = superpoint_from_file(path).eval()
    assert loaded.refine_channels == 5
    assert superpoint_net_config(loaded)["refine_channels"] == 5
    x = torch.rand(1, 1, 24, 32)
    assert torch.equal(net(x)["logits"], loaded(x)["logits"])


def test_refined_file_does_not_load_into_a_plain_net(tmp_path):
    net = _randomise(SuperPointNet(refine_channels=2, **SMALL))
    path = tmp_path / "refined.pt"
    torch.save(net.state_dict(), path)
    with pytest.raises(ValueError, match=r"unexpected keys.*convRa\.weight"):
        load_superpoint_weights(SuperPointNet(**SMALL), path)


def test_fold_batch_norm_keeps_the_refinement():
    net = _randomise(SuperPointNet(batch_norm=True, refine_channels=3, **SMALL))
    folded = fold_batch_norm(net)
    assert folded.refine_channels == 3 and not folded.batch_norm
    x = torch.rand(2, 1, 24, 40)
    assert torch.allclose(net(x)["logits"], folded(x)["logits"], atol=1e-4)


def test_refusals_name_the_refinement():
    net = SuperPointNet(refine_channels=2, **SMALL)
    with pytest.raises(ValueError, match="refine_channels=2.*official network"):
        official_state_dict(net)
    with pytest.raises(
        ValueError, match="widen_superpoint: the net has a full-resolution refinement"
    ):
        widen_superpoint(net, [16, 16, 32, 32], 32)
    with pytest.raises(ValueError, match="refine_channels must be >= 0"):
        SuperPointNet(refine_channels=-1)
