"""AdaptationMedia panels and DetectorWeights files."""

from __future__ import annotations

import functools
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from pixelwise.callbacks.adaptation_media import AdaptationMedia, heatmap_panel
from pixelwise.callbacks.detector_weights import DetectorWeights
from pixelwise.nets.superpoint import load_superpoint_weights, magicpoint
from pixelwise.tasks.homographic_adaptation import HomographicAdaptationTask


def test_panel_is_image_then_three_heatmaps_scaled_to_their_max():
    image = torch.zeros(1, 4, 5)
    image[0, 1, 2] = 1.0
    heat = torch.zeros(1, 4, 5)
    heat[0, 2, 3] = 0.25  # the maximum: brightest colour
    panel = heatmap_panel(image, heat, heat * 2, torch.zeros(1, 4, 5))
    assert panel.shape == (4, 20, 3) and panel.dtype == np.uint8
    assert panel[1, 2].tolist() == [255, 255, 255] and panel[0, 0].tolist() == [0, 0, 0]
    top = cv2.applyColorMap(np.array([[255]], np.uint8), cv2.COLORMAP_INFERNO)[0, 0, ::-1]
    assert panel[2, 5 + 3].tolist() == top.tolist() == panel[2, 10 + 3].tolist()
    assert (panel[:, 15:] == panel[0, 15]).all()  # all-zero heatmap: one colour


def make_task(**kwargs):
    torch.manual_seed(0)
    net = magicpoint(channels=(4, 4, 8, 8), head_channels=16)
    with pytest.warns(UserWarning, match="RANDOM"):
        return HomographicAdaptationTask(
            net,
            functools.partial(torch.optim.SGD, lr=0.1),
            num_homographies=3,
            channels_last=False,
            **kwargs,
        )


def test_media_written_as_pngs_without_wandb(tmp_path):
    """The task computes adapted heatmaps for its first media_images usable images; the callback draws them."""
    cb = AdaptationMedia(max_images=3, dirpath=str(tmp_path))
    trainer = SimpleNamespace(
        loggers=[], is_global_zero=True, sanity_checking=False, current_epoch=0, global_step=7
    )
    task = make_task(media_images=3, media_num_homographies=2)
    task.log = lambda *a, **k: None
    task.on_validation_epoch_start()
    batch = {"image": torch.rand(2, 1, 16, 24), "ok": torch.tensor([False, True])}
    out = task.validation_step(batch, 0)
    assert out.media_images.shape == (1, 1, 16, 24) and out.adapted_heatmap.shape == (1, 1, 16, 24)
    cb.on_validation_batch_end(trainer, task, out, batch, 0)
    batch2 = {"image": torch.rand(4, 1, 16, 24)}
    out2 = task.validation_step(batch2, 1)
    assert out2.media_images.shape[0] == 2  # 3 wanted per epoch, 1 already given
    cb.on_validation_batch_end(trainer, task, out2, batch2, 1)
    assert task.validation_step(batch2, 2).adapted_heatmap is None
    cb.on_validation_epoch_end(trainer, task)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"val_000007_{i}.png" for i in range(3)]
    first = cv2.imread(str(tmp_path / "val_000007_0.png"))
    assert first.shape == (16, 96, 3)
    grey = np.round(batch["image"][1, 0].numpy() * 255)
    np.testing.assert_allclose(first[:, :24, 0], grey, atol=1)
    teacher = task.teacher_heatmap(batch["image"][1:2])[0, 0]
    top = cv2.applyColorMap(np.array([[255]], np.uint8), cv2.COLORMAP_INFERNO)[0, 0]
    y, x = divmod(int(teacher.argmax()), 24)
    assert first[y, 24 + x].tolist() == top.tolist()  # the teacher's panel: its maximum brightest


def test_media_does_nothing_without_a_destination():
    cb = AdaptationMedia()
    trainer = SimpleNamespace(
        loggers=[], is_global_zero=True, sanity_checking=False, current_epoch=0
    )
    cb.on_validation_batch_end(trainer, None, None, {"image": torch.rand(1, 1, 8, 8)}, 0)
    cb.on_validation_epoch_end(trainer, None)  # None outputs would fail if they were read
    assert cb.panels == []


def test_detector_weights_load_back_as_a_teacher(tmp_path):
    task = make_task()
    path = tmp_path / "round" / "detector.pt"
    DetectorWeights(path).on_fit_end(SimpleNamespace(is_global_zero=True), task)
    net = load_superpoint_weights(magicpoint(channels=(4, 4, 8, 8), head_channels=16), path)
    for name, value in task.net.state_dict().items():
        assert torch.equal(net.state_dict()[name], value)
    assert not list(path.parent.glob(".*.tmp"))
    with pytest.raises(AttributeError, match="has no 'backbone' module"):
        DetectorWeights(path, attribute="backbone").on_test_end(
            SimpleNamespace(is_global_zero=True), task
        )
