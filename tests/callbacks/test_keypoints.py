"""KeypointMetrics: hand-computed AP / localization error through the hooks; detections drawn where they are."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from pixelwise.callbacks.keypoints import KeypointMetrics, draw_detections
from pixelwise.tasks.outputs import KeypointOutput


class Module:
    """The part of a LightningModule the callback touches: device and log."""

    device = torch.device("cpu")

    def __init__(self) -> None:
        self.logged: dict[str, float] = {}

    def log(self, name: str, value: float, **kwargs) -> None:
        self.logged[name] = value


def trainer(sanity: bool = False) -> SimpleNamespace:
    return SimpleNamespace(
        loggers=[], is_global_zero=True, sanity_checking=sanity, current_epoch=0, global_step=0
    )


def batch_and_outputs():
    # image 0 (polygon): gt at (10, 10) and (30, 30); detections (10, 11) score 0.9 -> TP at
    # 1 px, (50, 50) score 0.8 -> FP. image 1 (star): gt (5, 5); detection (8, 9) score 0.7 ->
    # TP at exactly 5 px? no: sqrt(9 + 16) = 5 > 4 -> FP; (5, 6) score 0.3 -> TP at 1 px.
    batch = {
        "image": torch.zeros(2, 1, 64, 64),
        "keypoints": [torch.tensor([[10.0, 10.0], [30.0, 30.0]]), torch.tensor([[5.0, 5.0]])],
        "primitive": ["draw_polygon", "draw_star"],
    }
    outputs = KeypointOutput(
        keypoints=[
            torch.tensor([[10.0, 11.0], [50.0, 50.0]]),
            torch.tensor([[8.0, 9.0], [5.0, 6.0]]),
        ],
        scores=[torch.tensor([0.9, 0.8]), torch.tensor([0.7, 0.3])],
    )
    return batch, outputs


def test_map_and_localization_error_by_hand():
    cb = KeypointMetrics(groups=["draw_polygon", "draw_star", "draw_cube"])
    module, tr = Module(), trainer()
    batch, outputs = batch_and_outputs()
    cb.on_validation_epoch_start(tr, module)
    cb.on_validation_batch_end(tr, module, outputs, batch, 0)
    cb.on_validation_epoch_end(tr, module)
    # pooled by score: 0.9 TP, 0.8 FP, 0.7 FP, 0.3 TP; n_gt = 3
    # recall 1/3, 1/3, 1/3, 2/3; precision 1, 1/2, 1/3, 1/2 -> running max from the right
    # 1, 1/2, 1/2, 1/2 -> AP = 1 * 1/3 + 1/2 * 1/3 = 0.5
    assert module.logged["val/map"] == pytest.approx(0.5)
    # localization error over score > 0.5 within 4 px: (10, 11) -> 1; (8, 9) is 5 px away
    assert module.logged["val/localization_error"] == pytest.approx(1.0)
    # polygon alone: TP 0.9, FP 0.8, n_gt 2 -> AP 1/2; star alone: FP 0.7, TP 0.3, n_gt 1 -> AP 1/2
    assert module.logged["val/map/draw_polygon"] == pytest.approx(0.5)
    assert module.logged["val/map/draw_star"] == pytest.approx(0.5)
    assert "val/map/draw_cube" not in module.logged  # no image: NaN, not logged
    assert "val/localization_error/draw_star" not in module.logged  # no detection > 0.5 within 4 px
    assert cb.curves["val"]["precision"].shape == (101,)


def test_prefix_and_test_stage():
    cb = KeypointMetrics(prefix="noise/")
    module, tr = Module(), trainer()
    batch, outputs = batch_and_outputs()
    cb.on_test_epoch_start(tr, module)
    cb.on_test_batch_end(tr, module, outputs, batch, 0)
    cb.on_test_epoch_end(tr, module)
    assert module.logged["test/noise/map"] == pytest.approx(0.5)
    assert not any("draw_" in k for k in module.logged)  # no groups declared


def test_sanity_check_logs_nothing_and_resets():
    cb = KeypointMetrics()
    module = Module()
    batch, outputs = batch_and_outputs()
    cb.on_validation_epoch_start(trainer(True), module)
    cb.on_validation_batch_end(trainer(True), module, outputs, batch, 0)
    cb.on_validation_epoch_end(trainer(True), module)
    assert module.logged == {}


def test_group_list_of_wrong_length_is_an_error():
    cb = KeypointMetrics(groups=["draw_polygon", "draw_star"])
    module, tr = Module(), trainer()
    batch, outputs = batch_and_outputs()
    batch["primitive"] = ["draw_polygon"]
    cb.on_validation_epoch_start(tr, module)
    with pytest.raises(ValueError, match="1 entries for 2 images"):
        cb.on_validation_batch_end(tr, module, outputs, batch, 0)


def test_bad_arguments_fail_at_construction():
    with pytest.raises(ValueError, match="every_n_epochs=0"):
        KeypointMetrics(every_n_epochs=0)
    with pytest.raises(ValueError, match="distance"):
        KeypointMetrics(distance=-1)


def test_draw_detections_places_marks_at_pixel_centres():
    image = torch.full((1, 20, 30), 0.5)
    canvas = draw_detections(
        image,
        keypoints=torch.tensor([[7.0, 4.0], [20.0, 10.0]]),
        scores=torch.tensor([0.9, 0.001]),  # the second is below the threshold: not drawn
        gt_keypoints=torch.tensor([[25.0, 15.0]]),
        threshold=0.015,
        scale=2,
    )
    assert canvas.shape == (40, 60, 3) and canvas.dtype == np.uint8
    # pixel (x=7, y=4) covers [14, 16) x [8, 10) at scale 2: a red dot there
    assert canvas[9, 15, 0] > 200 and canvas[9, 15, 1] < 100
    # the undrawn detection leaves gray
    assert tuple(canvas[21, 41]) == (128, 128, 128)
    # ground truth: a green ring of radius 4 around (51, 31), centre untouched
    assert tuple(canvas[31, 51]) == (128, 128, 128)
    assert canvas[31, 55, 1] > canvas[31, 55, 0]


def test_draw_detections_rejects_a_batch():
    with pytest.raises(ValueError, match=r"\[1\|3, H, W\]"):
        draw_detections(torch.zeros(2, 1, 8, 8), torch.zeros(0, 2), torch.zeros(0))
