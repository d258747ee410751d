import math

import pytest
import torch

from pixelwise.losses.pixel_cross_entropy import pixel_cross_entropy


def naive_weighted_ce(logits, target, weight, ignore):
    num, den = 0.0, 0.0
    b, k, h, w = logits.shape
    for i in range(b):
        for y in range(h):
            for x in range(w):
                t = int(target[i, y, x])
                if t == ignore:
                    continue
                z = logits[i, :, y, x].double()
                logp = z[t] - torch.logsumexp(z, 0)
                wt = 1.0 if weight is None else float(weight[t])
                num += -wt * float(logp)
                den += wt
    return num / den


class TestPixelCrossEntropy:
    def test_hand_computed_two_pixels(self):
        # pixel 1: logits (0, 0) target 0 -> log 2; pixel 2 ignored.
        logits = torch.zeros(1, 2, 1, 2)
        target = torch.tensor([[[0, 255]]])
        assert pixel_cross_entropy(logits, target).item() == pytest.approx(math.log(2))

    def test_hand_computed_weights(self):
        # two pixels, both logits (0, log 3): p = (1/4, 3/4)
        logits = torch.zeros(1, 2, 1, 2)
        logits[:, 1] = math.log(3)
        target = torch.tensor([[[0, 1]]])
        weight = torch.tensor([2.0, 1.0])
        expected = (2 * math.log(4) + 1 * -math.log(0.75)) / 3
        assert pixel_cross_entropy(logits, target, weight).item() == pytest.approx(expected)

    @pytest.mark.parametrize("use_weight", [False, True])
    def test_matches_naive_loop(self, use_weight):
        g = torch.Generator().manual_seed(0)
        logits = torch.randn(2, 4, 5, 6, generator=g)
        target = torch.randint(0, 4, (2, 5, 6), generator=g)
        target[0, 0, :3] = 255
        weight = torch.rand(4, generator=g) + 0.5 if use_weight else None
        got = pixel_cross_entropy(logits, target, weight)
        assert got.item() == pytest.approx(naive_weighted_ce(logits, target, weight, 255), rel=1e-5)

    def test_all_ignored_is_zero_with_gradient(self):
        logits = torch.randn(1, 3, 2, 2, requires_grad=True)
        loss = pixel_cross_entropy(logits, torch.full((1, 2, 2), 255))
        loss.backward()
        assert loss.item() == 0.0 and torch.equal(logits.grad, torch.zeros_like(logits))

    def test_shape_mismatch_is_named(self):
        with pytest.raises(ValueError, match=r"\(1, 3, 2, 2\).*\(1, 3, 3\)"):
            pixel_cross_entropy(torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 3, dtype=torch.long))
