"""The lecture's unpooling choices in the U-Net: max_unpool and bed_of_nails."""

import pytest
import torch
import torch.nn.functional as F

from pixelwise.nets.unet import UPSAMPLING, UNet, Up, bed_of_nails

# Lecture 14, "Max Unpooling": the max-pool of A remembers where 5, 6, 7, 8 were; unpooling
# [[1, 2], [3, 4]] puts each value back there.
A = torch.tensor([[1.0, 2, 6, 3], [3, 5, 2, 1], [1, 2, 2, 1], [7, 3, 4, 8]])
UNPOOLED = torch.tensor([[0.0, 0, 2, 0], [0, 1, 0, 0], [0, 0, 0, 0], [3, 0, 0, 4]])
SMALL = torch.tensor([[1.0, 2], [3, 4]])


class TestUnpooling:
    def test_bed_of_nails_puts_each_value_at_the_top_left(self):
        expected = torch.tensor([[1.0, 0, 2, 0], [0, 0, 0, 0], [3, 0, 4, 0], [0, 0, 0, 0]])
        assert torch.equal(bed_of_nails(SMALL[None, None]), expected[None, None])

    def test_max_unpool_in_up_puts_values_at_the_argmax(self):
        pooled, indices = F.max_pool2d(A[None, None], 2, return_indices=True)
        assert torch.equal(pooled[0, 0], torch.tensor([[5.0, 6], [7, 8]]))
        up = Up(2, 1, 1, "max_unpool", "none")
        # Make the 1x1 channel map the identity on channel 0, so the unpooled input is SMALL.
        with torch.no_grad():
            up.up.weight.zero_()
            up.up.weight[0, 0] = 1
            up.up.bias.zero_()
        seen = {}
        up.block.register_forward_pre_hook(lambda _m, inp: seen.update(cat=inp[0]))
        x = torch.stack([SMALL, torch.full((2, 2), 9.0)])[None]
        up(x, torch.zeros(1, 1, 4, 4), indices)
        assert torch.equal(seen["cat"][0, 0], UNPOOLED)

    def test_bed_of_nails_in_up(self):
        up = Up(1, 1, 1, "bed_of_nails", "none")
        seen = {}
        up.block.register_forward_pre_hook(lambda _m, inp: seen.update(cat=inp[0]))
        up(SMALL[None, None], torch.full((1, 1, 4, 4), 7.0))
        assert torch.equal(seen["cat"][0, 0], bed_of_nails(SMALL[None, None])[0, 0])
        assert torch.equal(seen["cat"][0, 1], torch.full((4, 4), 7.0))  # the skip beside it


class TestUNetUnpooling:
    def test_all_lecture_choices_are_options(self):
        assert {"max_unpool", "bed_of_nails"} <= set(UPSAMPLING)

    @pytest.mark.parametrize("upsampling", ["max_unpool", "bed_of_nails"])
    @pytest.mark.parametrize("size", [(32, 32), (37, 51), (17, 64), (3, 5)])
    def test_any_size_gives_logits_of_input_size(self, upsampling, size):
        net = UNet(3, 5, base_channels=4, depth=3, upsampling=upsampling)
        assert net(torch.rand(2, 3, *size)).shape == (2, 5, *size)

    @pytest.mark.parametrize("upsampling", ["max_unpool", "bed_of_nails"])
    def test_gradients_reach_every_level(self, upsampling):
        net = UNet(3, 3, base_channels=4, depth=2, upsampling=upsampling)
        x = torch.rand(2, 3, 20, 20).contiguous(memory_format=torch.channels_last)
        net(x).square().mean().backward()
        for block in [net.stem, *net.down]:
            grad = block[0].weight.grad
            assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0

    def test_max_unpool_uses_the_encoders_pooling_positions(self):
        # The first decoder level's unpooled map is non-zero only where the encoder's
        # last max-pool took its maxima.
        torch.manual_seed(0)
        net = UNet(3, 2, base_channels=4, depth=1, norm="none", upsampling="max_unpool").eval()
        x = torch.rand(1, 3, 8, 8)
        seen = {}
        net.up[0].block.register_forward_pre_hook(lambda _m, inp: seen.update(cat=inp[0]))
        net(x)
        unpooled = seen["cat"][:, :4]
        _, indices = F.max_pool2d(net.stem(x), 2, return_indices=True)
        at_max = torch.zeros(1, 4, 64).scatter_(2, indices.flatten(2), 1).view(1, 4, 8, 8)
        assert ((unpooled != 0) <= (at_max != 0)).all()
        assert (unpooled != 0).any()

    def test_bad_upsampling_names_the_allowed_values(self):
        with pytest.raises(ValueError, match="upsampling='unpool' is not one of.*bed_of_nails"):
            UNet(upsampling="unpool")
