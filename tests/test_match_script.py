"""match.py: two photographs + a checkpoint -> a PNG of the matches (side by side) and the counts."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from skimage import data as skdata

from pixelwise.nets.superpoint import SuperPointNet
from pixelwise.tasks.superpoint import SuperPointTask
from tests.checkpoints import save_lightning_checkpoint

REPO = Path(__file__).resolve().parents[1]


def _match_module():
    spec = importlib.util.spec_from_file_location("match_script", REPO / "match.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def checkpoint(tmp_path):
    torch.manual_seed(0)
    task = SuperPointTask(SuperPointNet(channels=[4, 4, 8, 8], head_channels=8, descriptor_dim=6))
    path = tmp_path / "sp.ckpt"
    save_lightning_checkpoint(task, path)
    return path


def test_match_writes_a_png_of_both_images(tmp_path, checkpoint, capsys):
    camera = skdata.camera()[::4, ::4]  # 128x128 real photograph
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    cv2.imwrite(str(a), camera)
    cv2.imwrite(str(b), np.ascontiguousarray(camera[:, ::-1][:100, :120]))  # another size
    out = tmp_path / "out" / "m.png"
    module = _match_module()
    written = module.main([str(a), str(b), f"ckpt_path={checkpoint}", f"out={out}", "threshold=0"])
    assert written == out
    picture = cv2.imread(str(out))
    assert picture.shape == (128, 128 + 120, 3)
    # The left half is image a (grey: equal channels wherever no keypoint/line was drawn on it).
    printed = capsys.readouterr().out
    assert "matches" in printed and "RANSAC inliers" in printed


def test_match_needs_a_checkpoint(tmp_path):
    module = _match_module()
    with pytest.raises(SystemExit):
        module.main([str(tmp_path / "a.png"), str(tmp_path / "b.png")])
    with pytest.raises(SystemExit):
        module.main(["a.png", "b.png", "ckpt=x"])
