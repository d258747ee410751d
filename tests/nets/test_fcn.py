import pytest
import torch
from torch import nn

from pixelwise.nets.fcn import FCN
from pixelwise.nets.unet import UNet
from tests.nets.receptive_path import encoder_outputs_read_by_decoder


class TestFCN:
    @pytest.mark.parametrize("size", [(32, 32), (37, 51), (17, 64), (5, 3)])
    def test_any_size_gives_logits_of_input_size(self, size):
        net = FCN(in_channels=3, num_classes=5, base_channels=4, depth=3)
        assert net(torch.rand(2, 3, *size)).shape == (2, 5, *size)

    def test_downsamples_with_strided_convs_and_upsamples_with_transposed_convs(self):
        net = FCN(3, 4, base_channels=4, depth=3)
        strided = [m for m in net.down if isinstance(m, nn.Conv2d) and m.stride == (2, 2)]
        learned_up = [m for m in net.up if isinstance(m, nn.ConvTranspose2d)]
        assert len(strided) == 3 and len(learned_up) == 3
        assert [m.stride for m in learned_up] == [(2, 2)] * 3
        assert not any(isinstance(m, (nn.MaxPool2d, nn.Upsample)) for m in net.modules())
        # The code is 1/8 of the input size, the widths double per stage.
        code = net.down(torch.rand(1, 3, 32, 48))
        assert code.shape == (1, 16, 4, 6)

    def test_decoder_reads_only_the_coarsest_code_unlike_the_unet(self):
        x = torch.rand(1, 3, 32, 32)
        fcn = FCN(3, 4, base_channels=4, depth=3).eval()
        encoder, decoder = list(fcn.down.modules()), list(fcn.up.modules()) + [fcn.head]
        assert encoder_outputs_read_by_decoder(fcn, encoder, decoder, x) == 1
        # The same observation finds the U-Net's skips: the code plus one map per level.
        unet = UNet(3, 4, base_channels=4, depth=3).eval()
        encoder = [unet.stem, *unet.down]
        assert encoder_outputs_read_by_decoder(unet, encoder, list(unet.up), x) == 4

    def test_gradients_reach_the_first_layer(self):
        net = FCN(3, 3, base_channels=4, depth=2)
        net(torch.rand(2, 3, 21, 19)).square().mean().backward()
        grad = net.down[0].weight.grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0

    def test_bad_options_name_the_argument(self):
        with pytest.raises(ValueError, match="norm='layer'.*batch"):
            FCN(norm="layer")
        with pytest.raises(ValueError, match="depth=0 must be >= 1"):
            FCN(depth=0)
        with pytest.raises(ValueError, match="base_channels=-1"):
            FCN(base_channels=-1)
