"""RepeatabilityMetrics: student and teacher repeatability from step outputs, and the gain."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from pixelwise.callbacks.repeatability import RepeatabilityMetrics
from pixelwise.tasks.outputs import AdaptationOutput, PairDetections


class Module:
    device = torch.device("cpu")

    def __init__(self):
        self.logged = {}

    def log(self, name, value, **kwargs):
        self.logged[name] = value


def dets(a, b):
    a, b = torch.tensor(a, dtype=torch.float32), torch.tensor(b, dtype=torch.float32)
    return PairDetections([a], [torch.ones(len(a))], [b], [torch.ones(len(b))])


def outputs(student, teacher=None, ok=True, shape=(64, 64)):
    detections = (
        {"student": student} if teacher is None else {"student": student, "teacher": teacher}
    )
    return AdaptationOutput(
        homography=torch.eye(3)[None],
        shape=shape,
        ok=torch.tensor([ok]),
        detections=detections,
        student_heatmap=torch.zeros(1, 1, *shape),
        teacher_heatmap=torch.zeros(1, 1, *shape),
    )


def test_student_teacher_and_gain_on_hand_made_pairs():
    cb, module = RepeatabilityMetrics(distance=3.0, top_k=None), Module()
    trainer = SimpleNamespace(sanity_checking=False)
    cb.on_validation_epoch_start(trainer, module)
    # student: both points repeat -> 1. teacher: (10,10) repeats both ways, (20,20) and (50,50)
    # are 14 px and 42 px from the nearest point -> 2 / 4.
    cb.on_validation_batch_end(
        trainer,
        module,
        outputs(
            dets([[10, 10], [20, 20]], [[10, 10], [21, 20]]),
            dets([[10, 10], [20, 20]], [[10, 10], [50, 50]]),
        ),
        None,
        0,
    )
    # An unusable item is not a pair.
    cb.on_validation_batch_end(
        trainer,
        module,
        outputs(dets([[1, 1]], [[40, 40]]), dets([[1, 1]], [[40, 40]]), ok=False),
        None,
        1,
    )
    cb.on_validation_epoch_end(trainer, module)
    assert module.logged["val/repeatability"] == pytest.approx(1.0)
    assert module.logged["val/localization_error"] == pytest.approx(0.5)  # (0 + 1 + 0 + 1) / 4
    assert module.logged["val/teacher_repeatability"] == pytest.approx(0.5)
    assert module.logged["val/teacher_localization_error"] == pytest.approx(0.0)
    assert module.logged["val/repeatability_gain"] == pytest.approx(1.0)
    assert cb.results["val"] == module.logged


def test_sanity_check_logs_nothing_and_missing_model_is_named():
    cb, module = RepeatabilityMetrics(), Module()
    cb.on_validation_epoch_start(SimpleNamespace(), module)
    cb.on_validation_batch_end(
        None, module, outputs(dets([[1, 1]], [[1, 1]]), dets([[1, 1]], [[1, 1]])), None, 0
    )
    cb.on_validation_epoch_end(SimpleNamespace(sanity_checking=True), module)
    assert module.logged == {}
    with pytest.raises(KeyError, match="no 'teacher' detections"):
        cb.on_test_epoch_start(None, module)
        cb.on_test_batch_end(None, module, outputs(dets([[1, 1]], [[1, 1]]), shape=(8, 8)), None, 0)
    with pytest.raises(ValueError, match="at least one model"):
        RepeatabilityMetrics(models=())


def test_top_k_scales_with_the_image_area():
    cb = RepeatabilityMetrics(top_k=300, top_k_size=(240, 320))
    assert cb.top_k_for((240, 320)) == 300 and cb.top_k_for((120, 160)) == 75
    assert RepeatabilityMetrics(top_k=300).top_k_for((120, 160)) == 300
    # top_k 1 on a 64x64 image: only the best point of each side counts, (10,10) in a and
    # (30,30) in b, 28 px apart: 0 / 2 (all points would give (10,10) twice: 2 / 4).
    cb, module = RepeatabilityMetrics(top_k=1, top_k_size=(64, 64), models=["student"]), Module()
    cb.on_test_epoch_start(None, module)
    student = dets([[10, 10], [40, 40]], [[30, 30], [10, 10]])
    student.scores_a = [torch.tensor([1.0, 0.5])]
    student.scores_b = [torch.tensor([1.0, 0.5])]
    cb.on_test_batch_end(None, module, outputs(student), None, 0)
    cb.on_test_epoch_end(None, module)
    assert module.logged["test/repeatability"] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="top_k_size"):
        RepeatabilityMetrics(top_k_size=(0, 4))
