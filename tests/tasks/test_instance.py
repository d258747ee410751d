"""task=instance: Mask R-CNN through the torchvision wrapper, masks in and out."""

from __future__ import annotations

import functools

import pytest
import torch

from pixelwise.data.collate import DictCollate
from pixelwise.data.synthetic_detection import SyntheticDetectionScenes
from pixelwise.nets.torchvision_detectors import TorchvisionDetector
from pixelwise.nets.torchvision_instance import TorchvisionMaskRCNN
from pixelwise.tasks.instance import InstanceTask
from pixelwise.tasks.outputs import InstanceOutput


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    net = TorchvisionMaskRCNN(
        "maskrcnn_mobilenet_v3_large_fpn", 3, min_size=64, max_size=80, box_detections_per_img=5
    )
    task = InstanceTask(net, functools.partial(torch.optim.SGD, lr=0.01), num_classes=3)
    ds = SyntheticDetectionScenes(split="val", length=2, size=(64, 80), with_masks=True)
    batch = DictCollate(["boxes", "labels", "iscrowd", "area", "masks"])([ds[0], ds[1]])
    return task, batch


def test_training_loss_has_mask_loss(setup) -> None:
    task, batch = setup
    task.train()
    losses = task.training_loss(batch)
    assert {"loss", "loss_mask", "loss_classifier", "loss_objectness"} <= set(losses)
    assert torch.isclose(losses["loss"], sum(v for k, v in losses.items() if k != "loss"))
    no_masks = {k: v for k, v in batch.items() if k != "masks"}
    with pytest.raises(KeyError, match="masks"):
        task.training_loss(no_masks)


def test_evaluation_gives_masks(setup) -> None:
    task, batch = setup
    task.eval()
    with torch.no_grad():
        out = task.evaluation_step(batch, "val")
    assert isinstance(out, InstanceOutput)
    for m, b, s in zip(out.masks, out.boxes, out.scores):
        assert m.dtype == torch.bool and m.shape == (len(b), 64, 80) and len(s) == len(b)
    assert set(out.as_torchmetrics()[0]) == {"boxes", "scores", "labels", "masks"}


def test_needs_a_mask_model() -> None:
    net = TorchvisionDetector("fasterrcnn_mobilenet_v3_large_fpn", 3, min_size=64, max_size=80)
    with pytest.raises(TypeError, match="does not produce masks"):
        InstanceTask(net, None)
    with pytest.raises(ValueError, match="architecture"):
        TorchvisionMaskRCNN("maskrcnn_nope", 3)
