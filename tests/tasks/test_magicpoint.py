"""MagicPointTask: labels from keypoints, loss against a naive per-cell loop, detections in (x, y), errors."""

from __future__ import annotations

import functools
import math

import pytest
import torch
from torch import nn

from pixelwise.nets.superpoint import magicpoint
from pixelwise.tasks.magicpoint import MagicPointTask


class FixedLogits(nn.Module):
    """A 'net' returning given logits [B,65,Hc,Wc] (a parameter, so the optimizer has something)."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = nn.Parameter(logits.clone())

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"logits": self.logits[: images.shape[0]]}


def make_task(net: nn.Module, **kwargs) -> MagicPointTask:
    opt = functools.partial(torch.optim.AdamW, lr=1e-3)
    task = MagicPointTask(net, opt, channels_last=False, **kwargs)
    task.log = lambda *a, **k: None  # no trainer attached
    return task


class TestLabels:
    def test_hand_computed_cell_class_and_ignored_cell(self):
        task = make_task(FixedLogits(torch.zeros(1, 65, 4, 4)))
        valid = torch.ones(1, 32, 32, dtype=torch.bool)
        valid[0, 0, 0] = False  # pixel (0, 0) invalid -> cell (0, 0) ignored
        batch = {
            "image": torch.zeros(1, 1, 32, 32),
            "keypoints": [torch.tensor([[9.4, 17.6]])],  # pixel x=9, y=18
            "valid_mask": valid,
        }
        labels = task.labels(batch)
        expected = torch.full((1, 4, 4), 64, dtype=torch.long)
        expected[0, 2, 1] = (18 % 8) * 8 + 9 % 8  # cell row 18//8=2, col 9//8=1 -> class 17
        expected[0, 0, 0] = 255
        assert torch.equal(labels, expected)

    def test_single_keypoint_tensor_for_a_batch_is_an_error(self):
        task = make_task(FixedLogits(torch.zeros(2, 65, 4, 4)))
        batch = {"image": torch.zeros(2, 1, 32, 32), "keypoints": torch.zeros(3, 2)}
        with pytest.raises(ValueError, match="list_keys"):
            task.labels(batch)

    def test_wrong_number_of_keypoint_lists(self):
        task = make_task(FixedLogits(torch.zeros(2, 65, 4, 4)))
        batch = {"image": torch.zeros(2, 1, 32, 32), "keypoints": [torch.zeros(0, 2)]}
        with pytest.raises(ValueError, match="1 entries for 2 images"):
            task.labels(batch)


def test_training_loss_equals_naive_per_cell_cross_entropy():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 65, 2, 3, generator=g)
    task = make_task(FixedLogits(logits))
    kps = [torch.tensor([[3.0, 4.0], [20.0, 9.0]]), torch.zeros(0, 2)]
    valid = torch.ones(2, 16, 24, dtype=torch.bool)
    valid[1, 15, 23] = False  # last cell of image 1 ignored
    batch = {"image": torch.zeros(2, 1, 16, 24), "keypoints": kps, "valid_mask": valid}
    loss = task.training_step(batch, 0)

    labels = {(0, 0, 0): 4 * 8 + 3, (0, 1, 2): 1 * 8 + 4}  # (b, row, col) -> class
    total, n = 0.0, 0
    for b in range(2):
        for r in range(2):
            for c in range(3):
                if b == 1 and (r, c) == (1, 2):
                    continue
                cls = labels.get((b, r, c), 64)
                z = logits[b, :, r, c].double()
                total += -(z[cls].item() - math.log(z.exp().sum().item()))
                n += 1
    assert loss.item() == pytest.approx(total / n, rel=1e-5)


def test_validation_step_returns_the_peak_pixel_as_x_y():
    logits = torch.full((1, 65, 3, 4), -10.0)
    logits[:, 64] = 10.0  # dustbin everywhere ...
    logits[0, 64, 1, 2] = -10.0
    logits[0, 5 * 8 + 3, 1, 2] = 10.0  # ... but cell (row 1, col 2) has its point at dx=3, dy=5
    task = make_task(FixedLogits(logits), detection_threshold=0.5)
    batch = {"image": torch.zeros(1, 1, 24, 32), "keypoints": [torch.tensor([[19.0, 13.0]])]}
    out = task.validation_step(batch, 0)
    assert out.heatmap.shape == (1, 1, 24, 32)
    assert out.keypoints[0].tolist() == [[19.0, 13.0]]  # x = 2*8+3, y = 1*8+5
    assert out.scores[0].item() == pytest.approx(1.0, abs=1e-6)
    assert out.loss.item() < 1e-6


def test_image_size_not_multiple_of_8_and_top_k():
    torch.manual_seed(0)
    net = magicpoint(channels=(4, 4, 8, 8), head_channels=8)
    task = make_task(net, detection_threshold=0.0, top_k=5)
    images = torch.rand(2, 1, 30, 37)
    out = task.detect(images)
    assert out.heatmap.shape == (2, 1, 30, 37)
    assert all(len(k) == 5 for k in out.keypoints)
    for k in out.keypoints:
        assert (k[:, 0] < 37).all() and (k[:, 1] < 30).all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"nms_radius": -1}, "task.nms_radius=-1"),
        ({"detection_threshold": 1.5}, "task.detection_threshold=1.5"),
        ({"border": -2}, "task.border=-2"),
        ({"top_k": 0}, "task.top_k=0"),
    ],
)
def test_bad_settings_name_the_key(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_task(FixedLogits(torch.zeros(1, 65, 1, 1)), **kwargs)


@pytest.mark.slow
def test_a_few_steps_on_synthetic_shapes_reduce_the_loss():
    """Tiny net, one fixed batch: the labels are learnable (the loss drops well below its start)."""
    from pixelwise.data.synthetic_shapes import SyntheticShapes

    torch.manual_seed(0)
    ds = SyntheticShapes(size=(32, 32), length=4, seed=0, photometric=False, homographic=False)
    items = [ds[i] for i in range(4)]
    batch = {
        "image": torch.stack([it["image"] for it in items]),
        "keypoints": [it["keypoints"] for it in items],
        "valid_mask": torch.stack([it["valid_mask"] for it in items]),
    }
    task = make_task(magicpoint(channels=(8, 8, 16, 16), head_channels=16, batch_norm=True))
    opt = torch.optim.Adam(task.parameters(), lr=1e-2)
    first = None
    for _ in range(40):
        loss = task.training_step(batch, 0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < 0.5 * first
