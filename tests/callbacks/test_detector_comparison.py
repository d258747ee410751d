"""DetectorComparison: classical detectors scored through the task's extraction; table files; logged names."""

from __future__ import annotations

import csv
from types import SimpleNamespace

import pytest
import torch

from pixelwise.callbacks.detector_comparison import DetectorComparison, comparison_table


class Module:
    device = torch.device("cpu")

    def __init__(self, **hparams) -> None:
        self.hparams = hparams
        self.logged: dict[str, float] = {}

    def log(self, name: str, value: float, **kwargs) -> None:
        self.logged[name] = value


def square_batch():
    """Two 64x64 images with a bright square; ground truth = its 4 corners (pixels 16 and 47)."""
    image = torch.zeros(2, 1, 64, 64)
    image[:, :, 16:48, 16:48] = 1.0
    corners = torch.tensor([[16.0, 16.0], [47.0, 16.0], [16.0, 47.0], [47.0, 47.0]])
    return {
        "image": image,
        "keypoints": [corners, corners.clone()],
        "primitive": ["draw_polygon", "draw_polygon"],
    }, corners


def run(cb, module, tmp_path, outputs, batch):
    tr = SimpleNamespace(default_root_dir=str(tmp_path), is_global_zero=True, loggers=[])
    cb.on_test_epoch_start(tr, module)
    cb.on_test_batch_end(tr, module, outputs, batch, 0)
    cb.on_test_epoch_end(tr, module)


def test_top_k_from_the_task_gives_hand_computed_ap(tmp_path):
    """top_k=1 from the task's hparams: each detector keeps its strongest response, a corner ->
    per image 1 TP of 4 ground-truth points at precision 1 -> AP = 1/4 exactly."""
    batch, corners = square_batch()
    outputs = {"keypoints": [corners, corners], "scores": [torch.ones(4), torch.ones(4)]}
    cb = DetectorComparison(model_name="magicpoint", groups=["draw_polygon", "draw_star"])
    module = Module(detection_threshold=0.001, nms_radius=4, border=0, top_k=1)
    run(cb, module, tmp_path, outputs, batch)
    for method in ("harris", "shi", "fast"):
        assert cb.table[method]["map"] == pytest.approx(0.25), method
        assert module.logged[f"test/{method}/map"] == pytest.approx(0.25)
    # the model's perfect detections: AP 1, localization error 0 (not logged: KeypointMetrics does)
    assert cb.table["magicpoint"]["map"] == pytest.approx(1.0)
    assert cb.table["magicpoint"]["localization_error"] == pytest.approx(0.0)
    assert "test/magicpoint/map" not in module.logged

    md = (tmp_path / "detector_comparison.md").read_text().splitlines()
    assert md[0] == "| method | map | localization_error | map/draw_polygon | map/draw_star |"
    assert md[2].startswith("| magicpoint | 1.0000 | 0.0000 | 1.0000 | - |")
    rows = list(csv.reader((tmp_path / "detector_comparison.csv").open()))
    assert [r[0] for r in rows] == ["method", "magicpoint", "harris", "shi", "fast"]
    assert rows[2][1] == "0.2500"


def test_without_top_k_all_four_corners_are_found(tmp_path):
    """No top-k: the square's four corners are the four strongest NMS maxima -> AP 1."""
    batch, corners = square_batch()
    outputs = {"keypoints": [corners, corners], "scores": [torch.ones(4), torch.ones(4)]}
    cb = DetectorComparison(methods=["harris", "shi"], prefix="noise/", filename="cmp")
    module = Module(detection_threshold=0.001, nms_radius=4, border=0, top_k=None)
    run(cb, module, tmp_path, outputs, batch)
    assert cb.table["harris"]["map"] == pytest.approx(1.0)
    assert cb.table["shi"]["map"] == pytest.approx(1.0)
    assert set(module.logged) >= {"test/noise/harris/map", "test/noise/shi/map"}
    assert (tmp_path / "cmp.md").is_file()


def test_extraction_falls_back_to_own_settings_for_tasks_without_them(tmp_path):
    batch, corners = square_batch()
    outputs = {"keypoints": [corners, corners], "scores": [torch.ones(4), torch.ones(4)]}
    cb = DetectorComparison(methods=["harris"], top_k=2)
    module = Module()  # no extraction hparams
    run(cb, module, tmp_path, outputs, batch)
    assert cb.table["harris"]["map"] == pytest.approx(0.5)  # 2 TP of 4 at precision 1


def test_bad_method_and_name_clash():
    with pytest.raises(ValueError, match="unknown method 'sift'"):
        DetectorComparison(methods=["sift"])
    with pytest.raises(ValueError, match="model_name='harris'"):
        DetectorComparison(model_name="harris")


def test_comparison_table_formats_nan_as_dash():
    md, rows = comparison_table({"a": {"map": 0.5, "x": float("nan")}}, ["map", "x", "missing"])
    assert md.splitlines()[2] == "| a | 0.5000 | - | - |"
    assert rows == [["method", "map", "x", "missing"], ["a", "0.5000", "-", "-"]]
