"""DetectorComparison: the task's classical baselines scored next to the model; table files; logged names."""

from __future__ import annotations

import csv
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from pixelwise.callbacks.detector_comparison import DetectorComparison, comparison_table
from pixelwise.geometry.keypoints import MAGICPOINT_EVAL_EXTRACTION, Extraction
from pixelwise.nets.classical_detectors import ClassicalDetector
from pixelwise.tasks.outputs import KeypointOutput


class Module:
    device = torch.device("cpu")

    def __init__(self) -> None:
        self.logged: dict[str, float] = {}

    def log(self, name: str, value: float, **kwargs) -> None:
        self.logged[name] = value


def square_batch():
    """Two 64x64 images with a bright square, lightly blurred (OpenCV's FAST NMS drops the tied
    corners of a sharp one); ground truth = its 4 corners (pixels 16 and 47)."""
    square = np.zeros((64, 64), np.float32)
    square[16:48, 16:48] = 1.0
    image = torch.from_numpy(cv2.GaussianBlur(square, (5, 5), 0.8)).expand(2, 1, 64, 64).clone()
    corners = torch.tensor([[16.0, 16.0], [47.0, 16.0], [16.0, 47.0], [47.0, 47.0]])
    return {
        "image": image,
        "keypoints": [corners, corners.clone()],
        "primitive": ["draw_polygon", "draw_polygon"],
    }, corners


def model_output(batch, corners, methods, extraction=MAGICPOINT_EVAL_EXTRACTION):
    """The model's perfect detections plus the baselines as MagicPointTask's test step gives them."""
    out = KeypointOutput([corners, corners], [torch.ones(4), torch.ones(4)])
    out.baselines = {
        m: KeypointOutput.from_detections(extraction(ClassicalDetector(m)(batch["image"])))
        for m in methods
    }
    return out


def run(cb, module, tmp_path, outputs, batch):
    tr = SimpleNamespace(default_root_dir=str(tmp_path), is_global_zero=True, loggers=[])
    cb.on_test_epoch_start(tr, module)
    cb.on_test_batch_end(tr, module, outputs, batch, 0)
    cb.on_test_epoch_end(tr, module)


def test_top_k_from_the_task_gives_hand_computed_ap(tmp_path):
    """top_k=1 in the task's extraction: each detector keeps its strongest response, a corner ->
    per image 1 TP of 4 ground-truth points at precision 1 -> AP = 1/4 exactly."""
    batch, corners = square_batch()
    top1 = Extraction(threshold=0.001, nms_radius=4, border=0, top_k=1)
    outputs = model_output(batch, corners, ["harris", "shi", "fast"], top1)
    cb = DetectorComparison(model_name="magicpoint", groups=["draw_polygon", "draw_star"])
    module = Module()
    run(cb, module, tmp_path, outputs, batch)
    for method in ("harris", "shi", "fast"):
        assert cb.table[method]["map"] == pytest.approx(0.25), method
        assert module.logged[f"test/{method}/map"] == pytest.approx(0.25)
    # the model's perfect detections: AP 1, localization error 0 (not logged: KeypointMetrics does)
    assert cb.table["magicpoint"]["map"] == pytest.approx(1.0)
    assert cb.table["magicpoint"]["localization_error"] == pytest.approx(0.0)
    assert "test/magicpoint/map" not in module.logged

    md = (tmp_path / "detector_comparison.md").read_text().splitlines()
    assert md[0] == (
        "| method | map | map_one_to_one | localization_error | map/draw_polygon | map/draw_star |"
    )
    assert md[2].startswith("| magicpoint | 1.0000 | 1.0000 | 0.0000 | 1.0000 | - |")
    rows = list(csv.reader((tmp_path / "detector_comparison.csv").open()))
    assert [r[0] for r in rows] == ["method", "magicpoint", "harris", "shi", "fast"]
    assert rows[2][1] == "0.2500"


def test_without_top_k_all_four_corners_are_found(tmp_path):
    """No top-k: the square's four corners are the four strongest NMS maxima -> AP 1."""
    batch, corners = square_batch()
    outputs = model_output(batch, corners, ["harris", "shi", "fast"])
    cb = DetectorComparison(methods=["harris", "shi"], prefix="noise/", filename="cmp")
    module = Module()
    run(cb, module, tmp_path, outputs, batch)
    assert cb.table["harris"]["map"] == pytest.approx(1.0)
    assert cb.table["shi"]["map"] == pytest.approx(1.0)
    assert set(module.logged) >= {"test/noise/harris/map", "test/noise/shi/map"}
    assert (tmp_path / "cmp.md").is_file()
    assert "fast" not in cb.table  # not asked for


def test_magicpoint_task_runs_its_baselines_at_test_only(tmp_path):
    from pixelwise.nets.superpoint import magicpoint
    from pixelwise.tasks.magicpoint import MagicPointTask

    batch, corners = square_batch()
    task = MagicPointTask(
        magicpoint(channels=(4, 4, 8, 8), head_channels=8), None, top_k=2, baselines=["harris"]
    )
    task.log = lambda *a, **k: None
    assert task.validation_step(batch, 0).baselines == {}
    outputs = task.test_step(batch, 0)
    cb = DetectorComparison(methods=["harris"])
    run(cb, Module(), tmp_path, outputs, batch)
    assert cb.table["harris"]["map"] == pytest.approx(0.5)  # top_k=2: 2 TP of 4 at precision 1


def test_bad_method_missing_baseline_and_name_clash(tmp_path):
    from pixelwise.nets.superpoint import magicpoint
    from pixelwise.tasks.magicpoint import MagicPointTask

    with pytest.raises(ValueError, match="unknown method 'sift'"):
        MagicPointTask(magicpoint(), None, baselines=["sift"])
    with pytest.raises(ValueError, match="model_name='harris'"):
        DetectorComparison(model_name="harris", methods=["harris"])
    batch, corners = square_batch()
    with pytest.raises(ValueError, match="add them to task.baselines"):
        run(
            DetectorComparison(methods=["fast"]),
            Module(),
            tmp_path,
            model_output(batch, corners, []),
            batch,
        )


def test_comparison_table_formats_nan_as_dash():
    md, rows = comparison_table({"a": {"map": 0.5, "x": float("nan")}}, ["map", "x", "missing"])
    assert md.splitlines()[2] == "| a | 0.5000 | - | - |"
    assert rows == [["method", "map", "x", "missing"], ["a", "0.5000", "-", "-"]]
