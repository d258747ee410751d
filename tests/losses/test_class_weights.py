import pytest
import torch

from pixelwise.losses.class_weights import class_weights


class TestClassWeights:
    def test_none(self):
        assert class_weights(torch.tensor([1, 2, 3]), "none") is None

    def test_median_frequency_hand_computed(self):
        # frequencies 0.1, 0.2, 0.7 -> median 0.2 -> weights 2, 1, 2/7
        w = class_weights(torch.tensor([10, 20, 70]), "median_frequency")
        assert torch.allclose(w, torch.tensor([2.0, 1.0, 2 / 7]))

    def test_inverse_frequency_pixel_weighted_mean_is_one(self):
        counts = torch.tensor([10, 20, 70])
        w = class_weights(counts, "inverse_frequency")
        # w proportional to 1/f, and sum_c f_c w_c = 1 -> w_c = 1 / (K f_c) with K = 3
        assert torch.allclose(w, torch.tensor([10 / 3, 5 / 3, 1 / 2.1]), rtol=1e-5)
        assert (w * counts / counts.sum()).sum().item() == pytest.approx(1.0)

    def test_unseen_class_gets_zero_and_is_left_out_of_the_median(self):
        w = class_weights(torch.tensor([0, 30, 10]), "median_frequency")
        # seen frequencies 0.75, 0.25 -> torch median (lower) 0.25
        assert torch.allclose(w, torch.tensor([0.0, 1 / 3, 1.0]))

    def test_errors(self):
        with pytest.raises(ValueError, match="'sqrt'"):
            class_weights(torch.tensor([1, 1]), "sqrt")
        with pytest.raises(ValueError, match="all zero"):
            class_weights(torch.tensor([0, 0]), "median_frequency")
