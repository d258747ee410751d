"""Tests of pixelwise.losses.cell_cross_entropy against hand computation."""

import math

import pytest
import torch

from pixelwise.losses.cell_cross_entropy import cell_cross_entropy


def naive_ce(logits, labels):
    """Loop reference: mean over cells with label != 255 of -log softmax[label]."""
    total, n = 0.0, 0
    b, c, h, w = logits.shape
    for i in range(b):
        for y in range(h):
            for x in range(w):
                lab = int(labels[i, y, x])
                if lab == 255:
                    continue
                z = [float(logits[i, k, y, x]) for k in range(c)]
                m = max(z)
                lse = m + math.log(sum(math.exp(v - m) for v in z))
                total += lse - z[lab]
                n += 1
    return total / n


class TestHardLabels:
    def test_uniform_logits_give_log65(self):
        loss = cell_cross_entropy(torch.zeros(2, 65, 3, 4), torch.full((2, 3, 4), 64))
        assert loss.item() == pytest.approx(math.log(65))

    def test_hand_case_with_ignore(self):
        logits = torch.zeros(1, 65, 1, 3)
        logits[0, 10, 0, 0] = 2.0  # cell 0: p(10) = e^2 / (e^2 + 64)
        logits[0, 64, 0, 1] = 1.0  # cell 1 labelled 3: p(3) = 1 / (e + 64)
        labels = torch.tensor([[[10, 3, 255]]])
        expected = (-math.log(math.e**2 / (math.e**2 + 64)) - math.log(1 / (math.e + 64))) / 2
        assert cell_cross_entropy(logits, labels).item() == pytest.approx(expected, rel=1e-6)

    def test_matches_loop_reference(self):
        g = torch.Generator().manual_seed(0)
        logits = torch.randn(2, 65, 3, 5, generator=g) * 3
        labels = torch.randint(0, 65, (2, 3, 5), generator=g)
        labels[0, 1, 2] = 255
        labels[1, 0, :] = 255
        assert cell_cross_entropy(logits, labels).item() == pytest.approx(
            naive_ce(logits, labels), rel=1e-5
        )

    def test_cell_mask_and_all_ignored(self):
        logits = torch.randn(1, 65, 2, 2, requires_grad=True)
        labels = torch.tensor([[[1, 2], [3, 4]]])
        mask = torch.tensor([[[True, False], [False, False]]])
        masked = cell_cross_entropy(logits, labels, cell_mask=mask)
        only = cell_cross_entropy(logits[:, :, :1, :1], labels[:, :1, :1])
        assert masked.item() == pytest.approx(only.item())
        zero = cell_cross_entropy(logits, torch.full((1, 2, 2), 255))
        assert zero.item() == 0.0
        zero.backward()  # still connected to logits
        assert logits.grad is not None and (logits.grad == 0).all()

    def test_bad_labels(self):
        logits = torch.zeros(1, 65, 1, 2)
        with pytest.raises(ValueError, match="0..64 or 255.*65"):
            cell_cross_entropy(logits, torch.tensor([[[1, 65]]]))
        with pytest.raises(ValueError, match=r"\[B, Hc, Wc\]"):
            cell_cross_entropy(logits, torch.tensor([[1, 2]]))
        with pytest.raises(ValueError, match=r"\[B, 65, Hc, Wc\]"):
            cell_cross_entropy(torch.zeros(1, 64, 1, 2), torch.tensor([[[1, 2]]]))
        with pytest.raises(TypeError, match="bool"):
            cell_cross_entropy(logits, torch.ones(1, 1, 2, dtype=torch.bool))


class TestSoftTargets:
    def test_one_hot_equals_hard(self):
        g = torch.Generator().manual_seed(1)
        logits = torch.randn(2, 65, 3, 3, generator=g)
        labels = torch.randint(0, 65, (2, 3, 3), generator=g)
        q = torch.nn.functional.one_hot(labels, 65).permute(0, 3, 1, 2).float()
        torch.testing.assert_close(
            cell_cross_entropy(logits, q), cell_cross_entropy(logits, labels)
        )

    def test_hand_case(self):
        logits = torch.zeros(1, 65, 1, 1)
        logits[0, 0, 0, 0] = math.log(2.0)  # p0 = 2/66, others 1/66
        q = torch.zeros(1, 65, 1, 1)
        q[0, 0], q[0, 64] = 0.25, 0.75
        expected = -(0.25 * math.log(2 / 66) + 0.75 * math.log(1 / 66))
        assert cell_cross_entropy(logits, q).item() == pytest.approx(expected, rel=1e-6)

    def test_cell_mask_and_validation(self):
        logits = torch.zeros(1, 65, 1, 2)
        q = torch.zeros(1, 65, 1, 2)
        q[0, 64, 0, 0] = 1.0  # cell 1 is all zeros: invalid unless masked out
        with pytest.raises(ValueError, match="sum to 1.*0"):
            cell_cross_entropy(logits, q)
        loss = cell_cross_entropy(logits, q, cell_mask=torch.tensor([[[True, False]]]))
        assert loss.item() == pytest.approx(math.log(65))
        q[0, 3, 0, 1], q[0, 4, 0, 1] = -0.5, 1.5
        with pytest.raises(ValueError, match=">= 0"):
            cell_cross_entropy(logits, q)
        with pytest.raises(ValueError, match="soft targets must be"):
            cell_cross_entropy(logits, torch.zeros(1, 65, 2, 2))
