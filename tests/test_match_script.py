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


def test_match_with_a_state_dict_file_reads_the_widths_from_it(tmp_path, capsys):
    torch.manual_seed(0)
    net = SuperPointNet(channels=[4, 4, 8, 8], head_channels=8, descriptor_dim=6, batch_norm=True)
    weights = tmp_path / "sp.pt"
    torch.save(net.state_dict(), weights)
    camera = skdata.camera()[::4, ::4]
    a = tmp_path / "a.png"
    cv2.imwrite(str(a), camera)
    out = tmp_path / "m.png"
    _match_module().main([str(a), str(a), f"weights={weights}", f"out={out}", "threshold=0"])
    assert cv2.imread(str(out)).shape == (128, 256, 3)
    # Same image twice: every mutual match is a point with itself, all RANSAC inliers.
    printed = capsys.readouterr().out
    assert "matches" in printed
    with pytest.raises(SystemExit):
        _match_module().main([str(a), str(a), f"weights={weights}", "ckpt_path=x.ckpt"])


def test_superpoint_from_file_builds_the_net_the_file_describes(tmp_path):
    from pixelwise.nets.superpoint import superpoint_from_file

    for kwargs in (
        {"channels": [4, 4, 8, 8], "head_channels": 8, "descriptor_dim": 6, "batch_norm": True},
        {"channels": [2, 3, 4, 5], "head_channels": 7, "descriptor": False},
    ):
        net = SuperPointNet(**kwargs)
        path = tmp_path / "w.pt"
        torch.save({f"module.{k}": v for k, v in net.state_dict().items()}, path)
        loaded = superpoint_from_file(path)
        assert loaded.state_dict().keys() == net.state_dict().keys()
        for key, value in net.state_dict().items():
            assert torch.equal(loaded.state_dict()[key], value), key
    torch.save({"x": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match="not a SuperPoint/MagicPoint state dict"):
        superpoint_from_file(path)
    with pytest.raises(FileNotFoundError, match="no weights file"):
        superpoint_from_file(tmp_path / "nothing.pt")
