import pytest
import torch

from pixelwise.nets.unet import UNet


class TestUNet:
    @pytest.mark.parametrize("upsampling", ["bilinear", "transposed", "nearest"])
    @pytest.mark.parametrize("size", [(32, 32), (37, 51), (17, 64)])
    def test_any_size_gives_logits_of_input_size(self, upsampling, size):
        net = UNet(in_channels=3, num_classes=5, base_channels=4, depth=3, upsampling=upsampling)
        out = net(torch.rand(2, 3, *size))
        assert out.shape == (2, 5, *size)

    def test_padding_does_not_leak_into_the_valid_region_for_divisible_sizes(self):
        torch.manual_seed(0)
        net = UNet(3, 4, base_channels=4, depth=2, norm="none").eval()
        x = torch.rand(1, 3, 16, 16)
        # A size divisible by 2**depth is not padded: the output equals the decoder head exactly.
        assert torch.equal(net(x), net.head(net.decode(x)[-1]))

    def test_widths_double_per_level(self):
        net = UNet(3, 2, base_channels=8, depth=3)
        assert net.widths == [8, 16, 32, 64]
        feats = net.decode(torch.rand(1, 3, 32, 32))
        assert [f.shape[1] for f in feats] == [64, 32, 16, 8]
        assert [f.shape[-1] for f in feats] == [4, 8, 16, 32]

    @pytest.mark.parametrize("norm", ["batch", "group", "instance", "none"])
    def test_norms_train(self, norm):
        net = UNet(3, 3, base_channels=4, depth=2, norm=norm)
        loss = net(torch.rand(2, 3, 20, 20)).square().mean()
        loss.backward()
        assert net.stem[0].weight.grad is not None and torch.isfinite(net.stem[0].weight.grad).all()

    def test_bad_options_name_the_argument(self):
        with pytest.raises(ValueError, match="upsampling='cubic'"):
            UNet(upsampling="cubic")
        with pytest.raises(ValueError, match="norm='layer'"):
            UNet(norm="layer")
        with pytest.raises(ValueError, match="depth=0"):
            UNet(depth=0)
