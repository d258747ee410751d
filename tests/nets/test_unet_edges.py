import pytest
import torch
import torch.nn.functional as F

from pixelwise.nets.unet import UNet
from pixelwise.nets.unet_edges import UNetEdges


class TestUNetEdges:
    @pytest.mark.parametrize("size", [(32, 32), (37, 51), (17, 9)])
    @pytest.mark.parametrize("depth", [1, 3])
    def test_depth_plus_two_maps_of_input_size(self, size, depth):
        net = UNetEdges(base_channels=4, depth=depth)
        outs = net(torch.rand(2, 3, *size))
        assert len(outs) == depth + 2 == net.num_outputs
        assert all(o.shape == (2, 1, *size) for o in outs)

    def test_sides_are_1x1_convs_of_the_unet_decoder_scales(self):
        torch.manual_seed(0)
        net = UNetEdges(base_channels=4, depth=2, norm="none").eval()
        assert isinstance(net.unet, UNet)
        x = torch.rand(1, 3, 16, 24)  # divisible by 4: no padding
        outs = net(x)
        feats = net.unet.decode(x)
        assert [f.shape[-1] for f in feats] == [6, 12, 24]
        for k, feat in enumerate(feats):
            expected = net.side[k](feat)
            if k < 2:
                expected = F.interpolate(
                    expected, size=(16, 24), mode="bilinear", align_corners=False
                )
            assert torch.allclose(outs[k], expected, atol=1e-6)

    def test_fusion_starts_as_the_mean_of_the_sides(self):
        net = UNetEdges(base_channels=4, depth=3).eval()
        outs = net(torch.rand(1, 3, 20, 28))
        assert torch.allclose(outs[-1], sum(outs[:-1]) / 4, atol=1e-6)

    def test_every_parameter_gets_a_gradient(self):
        # An unused parameter (e.g. the U-Net's class head) would break DDP.
        net = UNetEdges(base_channels=4, depth=2)
        sum(o.mean() for o in net(torch.rand(2, 3, 16, 16))).backward()
        assert all(p.grad is not None for p in net.parameters())

    def test_bad_options_reach_the_unet_checks(self):
        with pytest.raises(ValueError, match="norm='layer'"):
            UNetEdges(norm="layer")
