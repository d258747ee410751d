import pytest
import torch

from pixelwise.nets.pixel_linear import PixelLinear, pixel_features


class TestPixelLinear:
    @pytest.mark.parametrize("size", [(1, 1), (37, 51), (17, 64)])
    def test_any_size_gives_logits_of_input_size(self, size):
        net = PixelLinear(3, 5, features=["color", "position"])
        assert net(torch.rand(2, 3, *size)).shape == (2, 5, *size)

    def test_is_multinomial_logistic_regression_at_each_pixel(self):
        # softmax(A x + b) at every pixel, computed by hand with loops over pixels.
        torch.manual_seed(0)
        net = PixelLinear(3, 4, features=["color", "position"])
        images = torch.rand(2, 3, 3, 5)
        probs = net(images).softmax(dim=1)
        a = net.classifier.weight[:, :, 0, 0]  # [K, F]
        b = net.classifier.bias
        for n in range(2):
            for row in range(3):
                for col in range(5):
                    x = torch.cat([images[n, :, row, col], torch.tensor([col / 4, row / 2])])
                    s = a @ x + b
                    q = torch.exp(s) / torch.exp(s).sum()
                    torch.testing.assert_close(probs[n, :, row, col], q)

    def test_sees_nothing_but_the_pixel(self):
        net = PixelLinear(3, 4)
        images = torch.rand(1, 3, 8, 8)
        changed = images.clone()
        changed[0, :, 3, 3] = 1 - changed[0, :, 3, 3]
        diff = (net(images) - net(changed)).abs().sum(dim=1)[0]
        assert diff[3, 3] > 0 and diff.sum() == diff[3, 3]

    def test_position_features_are_x_then_y(self):
        feats = pixel_features(torch.zeros(1, 1, 3, 5), ["position"])
        assert feats.shape == (1, 2, 3, 5)
        assert feats[0, 0, 2, 4] == 1 and feats[0, 1, 2, 4] == 1
        assert feats[0, 0, 0, 2] == 0.5 and feats[0, 1, 1, 0] == 0.5

    def test_gradients_flow(self):
        net = PixelLinear(3, 4)
        net(torch.rand(2, 3, 7, 9)).square().mean().backward()
        assert net.classifier.weight.grad.abs().sum() > 0 and net.classifier.bias.grad is not None

    def test_bad_options_name_the_argument(self):
        with pytest.raises(ValueError, match=r"features=\['texture'\].*'color', 'position'"):
            PixelLinear(features=["texture"])
        with pytest.raises(ValueError, match=r"features=\[\]"):
            PixelLinear(features=[])
        with pytest.raises(ValueError, match="num_classes=0 must be >= 1"):
            PixelLinear(num_classes=0)
        with pytest.raises(ValueError, match=r"expected images \[B,3,H,W\], got \(1, 1, 4, 4\)"):
            PixelLinear(3, 2)(torch.rand(1, 1, 4, 4))
