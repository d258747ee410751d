"""SuperPoint callback: match pictures, RANSAC inliers, HPatches-protocol metrics and evaluate.py with the fixture."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pixelwise.callbacks.superpoint import SuperPointEvaluation
from pixelwise.data.info import DatasetInfo
from pixelwise.drawing import draw_matches
from pixelwise.geometry.matching import ransac_inliers
from pixelwise.nets.superpoint import SuperPointNet
from pixelwise.tasks.outputs import SuperPointPairOutput
from pixelwise.tasks.superpoint import SuperPointTask
from tests.checkpoints import save_lightning_checkpoint

REPO = Path(__file__).resolve().parents[2]
TINY = {"channels": [4, 4, 8, 8], "head_channels": 8, "descriptor_dim": 6}


def test_draw_matches_colours_inliers_and_outliers():
    a = torch.zeros(1, 20, 30)
    b = torch.zeros(1, 20, 30)
    kps = torch.tensor([[5.0, 5.0], [5.0, 15.0]])
    matches = torch.tensor([[0, 0], [1, 1]])
    pic = draw_matches(a, b, kps, kps, matches, inliers=np.array([True, False]))
    assert pic.shape == (20, 60, 3) and pic.dtype == np.uint8
    # Midpoints of the two horizontal lines (5 -> 35): green inlier, red outlier (antialiased).
    r, g, b = (int(v) for v in pic[5, 20])
    assert g > 150 and r == 0 and b == 0
    r, g, b = (int(v) for v in pic[15, 20])
    assert r > 150 and g < 40 and b < 40
    assert pic[10, 20].tolist() == [0, 0, 0]  # nothing between the lines


def test_ransac_inliers_recover_a_known_homography():
    rng = np.random.default_rng(0)
    h = np.array([[1.1, 0.05, 3.0], [-0.02, 0.95, -2.0], [1e-4, 0.0, 1.0]])
    pa = torch.tensor(rng.uniform(0, 200, (40, 2)))
    ph = np.c_[pa.numpy(), np.ones(40)] @ h.T
    pb = torch.tensor(ph[:, :2] / ph[:, 2:])
    pb[:5] += 50.0  # five wrong matches
    matches = torch.stack([torch.arange(40), torch.arange(40)], dim=1)
    est, inliers = ransac_inliers(pa, pb, matches, threshold=1.0)
    assert inliers.tolist() == [False] * 5 + [True] * 35
    assert np.allclose(est / est[2, 2], h, atol=1e-4)
    assert ransac_inliers(pa, pb, matches[:3])[0] is None


class _DM:
    info = DatasetInfo()


class _Trainer:
    datamodule = _DM()


def test_metrics_of_identical_images_under_identity():
    cb = SuperPointEvaluation()
    cb._start(_Trainer())
    torch.manual_seed(0)
    kps = torch.rand(30, 2) * torch.tensor([70.0, 50.0]) + 5
    feats = {"keypoints": kps, "scores": torch.rand(30), "descriptors": torch.randn(30, 6)}
    outputs = SuperPointPairOutput(
        features_a=[feats],
        features_b=[feats],
        homography=torch.eye(3)[None],
        kinds=["v"],
        shape_a=(60, 80),
        shape_b=(60, 80),
    )
    cb._update(outputs)
    values = cb.evaluator.compute()
    assert values["all/repeatability"] == pytest.approx(1.0)
    assert values["all/localization_error"] == pytest.approx(0.0)
    assert values["all/homography_accuracy@1"] == pytest.approx(1.0)
    assert values["all/matching_score"] == pytest.approx(1.0)
    logged = {}
    cb._log(
        type("M", (), {"log": lambda self, k, v, **kw: logged.__setitem__(k, v)})(), "val", values
    )
    assert logged["val/repeatability"] == pytest.approx(1.0)
    assert logged["val/viewpoint/nn_map"] == pytest.approx(1.0)
    # No illumination pairs: their count is logged, their NaN metrics are not.
    assert logged["val/illumination/detector_pairs"] == 0
    assert "val/illumination/repeatability" not in logged


@pytest.mark.slow
@pytest.mark.parametrize("weights", ["checkpoint", "state_dict"])
def test_evaluate_on_hpatches_fixture_writes_metrics_and_table(tmp_path, weights):
    from tests.data.hpatches_fixture import write_hpatches_fixture

    write_hpatches_fixture(tmp_path / "hp", n_illumination=1, n_viewpoint=1, size=(96, 128))
    task = SuperPointTask(SuperPointNet(**TINY))
    if weights == "checkpoint":
        path = tmp_path / "sp.ckpt"
        save_lightning_checkpoint(task, path)
        source = f"ckpt_path={path}"
    else:  # a bare net state dict, as shipped in weights/: model.pretrained, no checkpoint
        path = tmp_path / "sp.pt"
        torch.save(task.net.state_dict(), path)
        source = f"model.pretrained={path}"
    out = tmp_path / "run"
    args = [
        "task=superpoint",
        "data=hpatches",
        f"data.test.root={tmp_path / 'hp'}",
        source,
        "model.channels=[4,4,8,8]",
        "model.head_channels=8",
        "model.descriptor_dim=6",
        "data.test.size=[96,128]",
        "data.detector_test.size=[96,128]",
        "data.num_workers=0",
        "logger=csv",
        f"hydra.run.dir={out}",
    ]
    env = {"OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, str(REPO / "evaluate.py"), *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    # 2 sequences x 5 pairs, one of each kind.
    assert metrics["test/detector_pairs"] == 10 and metrics["test/descriptor_pairs"] == 10
    assert metrics["test/illumination/detector_pairs"] == 5
    assert 0.0 <= metrics["test/repeatability"] <= 1.0
    table = (out / "hpatches_table.md").read_text()
    rows = [line.split("|")[1].strip() for line in table.splitlines()[2:]]
    assert rows[:9] == ["SuperPoint (ours)"] * 3 + ["ORB"] * 3 + ["SIFT"] * 3
    results = json.loads((out / "hpatches_table.json").read_text())
    assert set(results) == {"SuperPoint (ours)", "ORB", "SIFT"}
    # The model's row is the logged metrics.
    assert results["SuperPoint (ours)"]["all/repeatability"] == pytest.approx(
        metrics["test/repeatability"], rel=1e-5
    )

    # A checkpoint with another descriptor size than the config: a clear error.
    bad = subprocess.run(
        [
            sys.executable,
            str(REPO / "evaluate.py"),
            *args[:-1],
            "model.descriptor_dim=16",
            f"hydra.run.dir={tmp_path / 'bad'}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert bad.returncode != 0
    assert "model.descriptor_dim=6" in bad.stdout + bad.stderr
