"""DetectionTask: batch checks, losses of both net kinds, typed outputs, and that it learns."""

from __future__ import annotations

from functools import partial

import pytest
import torch

from pixelwise.nets.fcos import FCOSNet
from pixelwise.nets.torchvision_detectors import TorchvisionDetector
from pixelwise.tasks.detection import DetectionTask
from pixelwise.tasks.outputs import DetectionOutput

ADAM = partial(torch.optim.Adam, lr=1e-2)


def _batch():
    image = torch.zeros(2, 3, 48, 64)
    image[0, :, 8:24, 8:32] = 1.0  # a bright car
    image[1, 1, 20:44, 40:52] = 1.0  # a green pedestrian
    return {
        "image": image,
        "boxes": [torch.tensor([[8.0, 8.0, 32.0, 24.0]]), torch.tensor([[40.0, 20.0, 52.0, 44.0]])],
        "labels": [torch.tensor([0]), torch.tensor([1])],
        "iscrowd": [torch.tensor([False]), torch.tensor([False])],
    }


def _fcos_task(**kwargs):
    net = FCOSNet(num_classes=2, base_channels=8, depth=3, num_levels=2, fpn_channels=16)
    return DetectionTask(net, ADAM, num_classes=2, channels_last=False, **kwargs)


def test_fcos_losses_and_output_contract():
    task = _fcos_task()
    losses = task.training_loss(_batch())
    assert set(losses) == {"loss", "classification", "box", "centerness"}
    task.eval()
    out = task.evaluation_step(_batch(), "val")
    assert isinstance(out, DetectionOutput) and len(out.boxes) == 2
    for b, s, lab in zip(out.boxes, out.scores, out.labels):
        assert b.shape[1] == 4 and len(b) == len(s) == len(lab)
        assert lab.dtype == torch.long and (b[:, 2:] <= torch.tensor([64.0, 48.0])).all()


@pytest.mark.slow
def test_fcos_task_learns_two_boxes():
    """Overfitting one batch: both objects are found with IoU > 0.5 and the right class."""
    torch.manual_seed(0)
    task = _fcos_task(score_threshold=0.05)
    opt = torch.optim.Adam(task.parameters(), lr=3e-3)
    batch = _batch()
    for _ in range(150):
        opt.zero_grad()
        task.training_loss(batch)["loss"].backward()
        opt.step()
    task.eval()
    out = task.evaluation_step(batch, "val")
    from torchvision.ops import box_iou

    for i in range(2):
        assert len(out.boxes[i]), f"image {i}: no detection"
        best = out.scores[i].argmax()
        assert out.labels[i][best] == batch["labels"][i][0]
        assert box_iou(out.boxes[i][best : best + 1], batch["boxes"][i]).item() > 0.5


def test_batch_errors_name_what_is_wrong():
    task = _fcos_task()
    batch = _batch()
    bad = {**batch, "labels": [torch.tensor([0]), torch.tensor([5])]}
    with pytest.raises(ValueError, match=r"label 5 outside \[0, 2\)"):
        task.training_loss(bad)
    with pytest.raises(KeyError, match="boxes"):
        task.training_loss({k: v for k, v in batch.items() if k != "boxes"})
    with pytest.raises(ValueError, match="expected \\[N,4\\]"):
        task.training_loss({**batch, "boxes": [torch.zeros(1, 3), torch.zeros(1, 4)]})


def test_class_count_mismatch_and_bad_options():
    net = FCOSNet(num_classes=3, base_channels=4, fpn_channels=8)
    with pytest.raises(ValueError, match="model has 3 classes but task.num_classes=2"):
        DetectionTask(net, ADAM, num_classes=2)
    with pytest.raises(ValueError, match="task.nms_iou"):
        DetectionTask(net, ADAM, num_classes=3, nms_iou=0.0)
    with pytest.raises(TypeError, match="neither a dense detector"):
        DetectionTask(torch.nn.Conv2d(3, 3, 1), ADAM, num_classes=3)


def test_torchvision_detector_through_the_task():
    net = TorchvisionDetector(
        "fasterrcnn_mobilenet_v3_large_fpn", num_classes=2, min_size=48, max_size=64
    )
    task = DetectionTask(net, ADAM, num_classes=2, channels_last=False)
    losses = task.training_loss(_batch())
    assert "loss_classifier" in losses and "loss_rpn_box_reg" in losses
    assert torch.isfinite(losses["loss"])
    task.eval()
    out = task.evaluation_step(_batch(), "test")
    assert all(lab.min() >= 0 for lab in out.labels if len(lab))  # 0-based labels back


def test_torchvision_pretrained_round_trip_and_errors(tmp_path):
    arch = "fasterrcnn_mobilenet_v3_large_fpn"
    net = TorchvisionDetector(arch, num_classes=2, min_size=32, max_size=32)
    path = tmp_path / "frcnn.pt"
    torch.save(net.model.state_dict(), path)  # the bare torchvision model's keys
    again = TorchvisionDetector(arch, num_classes=2, min_size=32, max_size=32, pretrained=str(path))
    for (k, a), b in zip(net.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), k
    with pytest.raises(ValueError, match=f"does not fit {arch} with 3 classes"):
        TorchvisionDetector(arch, num_classes=3, pretrained=str(path))
    with pytest.raises(FileNotFoundError, match="no such file"):
        TorchvisionDetector(arch, num_classes=2, pretrained=str(tmp_path / "x"))
    with pytest.raises(ValueError, match="model.architecture='yolo'"):
        TorchvisionDetector("yolo", num_classes=2)
