import math

import pytest
import torch

from pixelwise.losses.balanced_bce import balanced_bce, deep_supervision_bce, edge_fraction

LN2 = math.log(2.0)


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def naive_balanced_bce(logits, targets, weights, beta, reduction):
    """The seed's loss, pixel by pixel in Python floats (beta: number, 'image' or 'batch')."""
    B, K, H, W = targets.shape

    def fraction(bs):
        e = t = 0.0
        for b in bs:
            for k in range(K):
                for y in range(H):
                    for x in range(W):
                        e += float(weights[b, k, y, x] * targets[b, k, y, x])
                        t += float(weights[b, k, y, x])
        return e / t if t > 0 else 0.0

    items, total = [], 0.0
    for b in range(B):
        if beta == "image":
            beta_b = fraction([b])
        elif beta == "batch":
            beta_b = fraction(range(B))
        else:
            beta_b = float(beta)
        for k in range(K):
            cost = count = 0.0
            for y in range(H):
                for x in range(W):
                    s, t, w = (
                        float(logits[b, 0, y, x]),
                        float(targets[b, k, y, x]),
                        float(weights[b, k, y, x]),
                    )
                    c = (1 - beta_b) * t * softplus(-s) + beta_b * (1 - t) * softplus(s)
                    cost += w * c
                    count += w
            total += cost
            if count > 0:
                items.append(cost / count)
    return total / B if reduction == "sum" else sum(items) / len(items)


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 1, 4, 5, generator=g, dtype=torch.float64) * 2
    targets = (torch.rand(3, 2, 4, 5, generator=g) < 0.3).double()
    targets[1, 1] = torch.rand(4, 5, generator=g, dtype=torch.float64)  # a soft target
    weights = (torch.rand(3, 2, 4, 5, generator=g) > 0.2).double()
    weights[2, 1] = 0  # an absent (padded) annotation
    return logits, targets, weights


class TestBalancedBCE:
    def test_hand_computed_two_pixels(self):
        # beta = 1/2 (one edge pixel of two); logit 0 on the edge, ln 3 on the non-edge:
        # C_edge = 0.5 softplus(0) = 0.5 ln 2, C_non = 0.5 softplus(ln 3) = 0.5 ln 4 = ln 2.
        logits = torch.tensor([[[[0.0, math.log(3.0)]]]])
        targets = torch.tensor([[[[1.0, 0.0]]]])
        assert balanced_bce(logits, targets, beta="image").item() == pytest.approx(0.75 * LN2)
        assert balanced_bce(logits, targets, beta="image", reduction="sum").item() == pytest.approx(
            1.5 * LN2
        )

    def test_hand_computed_positives_weighted_one_minus_beta(self):
        # One edge pixel in four, all logits 0: beta = 1/4; edge costs 3/4 ln 2, each non-edge 1/4 ln 2.
        logits = torch.zeros(1, 1, 2, 2)
        targets = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
        assert balanced_bce(logits, targets, beta="image").item() == pytest.approx(6 / 16 * LN2)
        # A fixed (dataset) beta of 0.1 instead: (0.9 + 3 * 0.1) ln 2 / 4.
        assert balanced_bce(logits, targets, beta=0.1).item() == pytest.approx(1.2 / 4 * LN2)

    def test_gradient_by_hand(self):
        # d/ds of (1 - beta) softplus(-s) at s = 0 is -(1 - beta) / 2; of beta softplus(s) is beta / 2.
        logits = torch.zeros(1, 1, 1, 4, requires_grad=True)
        targets = torch.tensor([[[[1.0, 0.0, 0.0, 0.0]]]])
        balanced_bce(logits, targets, beta="image", reduction="sum").backward()
        assert logits.grad.flatten().tolist() == pytest.approx([-0.375, 0.125, 0.125, 0.125])

    @pytest.mark.parametrize("beta", ["image", "batch", 0.07])
    @pytest.mark.parametrize("reduction", ["mean", "sum"])
    def test_equals_naive_loop(self, batch, beta, reduction):
        logits, targets, weights = batch
        got = balanced_bce(logits, targets, weights, beta=beta, reduction=reduction).item()
        assert got == pytest.approx(
            naive_balanced_bce(logits, targets, weights, beta, reduction), rel=1e-10
        )

    def test_three_dim_inputs_are_one_map(self, batch):
        logits, targets, _ = batch
        a = balanced_bce(logits[:, 0], targets[:, 0], beta="image")
        b = balanced_bce(logits, targets[:, :1], beta="image")
        assert a.item() == pytest.approx(b.item())

    def test_each_annotator_equals_the_soft_mean_target_at_fixed_beta(self, batch):
        # The loss is linear in the target: K annotations == their mean as one soft target.
        logits, targets, _ = batch
        each = balanced_bce(logits, targets, beta=0.2, reduction="mean")
        mean = balanced_bce(logits, targets.mean(1, keepdim=True), beta=0.2, reduction="mean")
        assert each.item() == pytest.approx(mean.item(), rel=1e-12)

    def test_everything_ignored_is_zero_not_nan_and_keeps_the_graph(self):
        logits = torch.randn(2, 1, 3, 3, requires_grad=True)
        loss = balanced_bce(logits, torch.ones(2, 1, 3, 3), torch.zeros(2, 1, 3, 3), beta="image")
        assert loss.item() == 0.0
        loss.backward()
        assert torch.all(logits.grad == 0)

    def test_no_edges_in_an_image_gives_finite_loss(self):
        # beta = 0 for an edgeless image: negatives get weight 0 (HED's per-image balancing).
        loss = balanced_bce(torch.randn(1, 1, 4, 4), torch.zeros(1, 1, 4, 4), beta="image")
        assert loss.item() == 0.0

    def test_gradcheck(self, batch):
        logits, targets, weights = batch
        logits = logits.clone().requires_grad_(True)
        assert torch.autograd.gradcheck(
            lambda s: balanced_bce(s, targets, weights, beta="batch"), (logits,)
        )

    def test_bad_input_errors(self):
        x = torch.zeros(2, 1, 4, 4)
        with pytest.raises(ValueError, match="beta='dataset' is the edge fraction"):
            balanced_bce(x, x, beta="dataset")
        with pytest.raises(ValueError, match="beta='pixel'"):
            balanced_bce(x, x, beta="pixel")
        with pytest.raises(ValueError, match=r"beta=1.5: expected a number in \[0,1\]"):
            balanced_bce(x, x, beta=1.5)
        with pytest.raises(ValueError, match="reduction='max'"):
            balanced_bce(x, x, reduction="max")
        with pytest.raises(
            ValueError, match=r"targets \(2, 1, 4, 5\) do not match logits \(2, 1, 4, 4\)"
        ):
            balanced_bce(x, torch.zeros(2, 1, 4, 5))
        with pytest.raises(ValueError, match="weights .* must have the shape of targets"):
            balanced_bce(x, x, torch.ones(2, 2, 4, 4))
        with pytest.raises(ValueError, match="logits must have one channel"):
            balanced_bce(torch.zeros(2, 3, 4, 4), x)


class TestEdgeFraction:
    def test_hand_computed(self):
        targets = torch.tensor([1.0, 0.0, 0.0, 1.0])
        assert edge_fraction(targets).item() == 0.5
        assert edge_fraction(targets, torch.tensor([1.0, 1.0, 1.0, 0.0])).item() == pytest.approx(
            1 / 3
        )


class TestDeepSupervision:
    def test_weighted_sum_of_per_output_losses_with_one_beta(self, batch):
        logits, targets, weights = batch
        outs = [logits, logits * 0.5, -logits]
        total, parts = deep_supervision_bce(outs, targets, weights, "image", [0.5, 1.0, 2.0])
        naive = [naive_balanced_bce(o, targets, weights, "image", "mean") for o in outs]
        assert [p.item() for p in parts] == pytest.approx(naive, rel=1e-10)
        assert total.item() == pytest.approx(0.5 * naive[0] + naive[1] + 2 * naive[2], rel=1e-10)

    def test_default_weights_are_one(self, batch):
        logits, targets, weights = batch
        total, parts = deep_supervision_bce([logits, logits], targets, weights, beta=0.3)
        assert total.item() == pytest.approx(2 * parts[0].item())

    def test_errors(self, batch):
        logits, targets, _ = batch
        with pytest.raises(ValueError, match="2 output weights for 3 outputs"):
            deep_supervision_bce([logits] * 3, targets, output_weights=[1.0, 1.0])
        with pytest.raises(ValueError, match="no output maps"):
            deep_supervision_bce([], targets)
