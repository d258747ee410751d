"""The README's offline SuperPoint pipeline end to end, at toy sizes, through the real entry points.

crops of the scikit-image photographs -> pseudo-labels by homographic adaptation (train.py
task.run.mode=export, the shipped MagicPoint as teacher) -> experiment=superpoint_photos (train.py) ->
HPatches-format set from held-out photographs -> evaluate.py data=hpatches with ORB / SIFT.
"""

from __future__ import annotations

import json

import numpy as np
import torch

from pixelwise.data.hpatches_offline import write_hpatches_fixture
from pixelwise.data.sample_images import write_sample_crops
from tests.integration.conftest import REPO, read_metrics, run_script

SIZE = "[64,80]"


def test_offline_superpoint_pipeline(tmp_path):
    crops = tmp_path / "crops"
    write_sample_crops(crops, ["camera", "brick"], per_image=2, size=(64, 80))
    run_script(
        "train.py",
        [
            "task=homographic_adaptation",
            "task.run.mode=export",
            "data=images",
            f"data.root={crops}",
            f"data.size={SIZE}",
            "data.num_workers=0",
            f"task.teacher={REPO / 'weights' / 'magicpoint_shapes.pt'}",
            "task.num_homographies=3",
            "task.detection_threshold=0.002",
            "logger=csv",
            f"hydra.run.dir={tmp_path / 'export'}",
        ],
        tmp_path,
    )
    labels = tmp_path / "export" / "pseudo_labels"
    assert sorted(p.name for p in labels.glob("*.npz")) == sorted(
        p.with_suffix(".npz").name for p in crops.glob("*.png")
    )
    assert sum(len(np.load(p)["keypoints"]) for p in labels.glob("*.npz")) > 0

    train_dir = tmp_path / "train"
    run_script(
        "train.py",
        [
            "experiment=superpoint_photos",
            f"data.root={crops}",
            f"data.labels={labels}",
            f"data.size={SIZE}",
            "data.num_workers=0",
            "data.batch_size=2",
            "data.eval_batch_size=2",
            "data.val.source.repeats=1",
            "trainer.max_steps=2",
            "trainer.max_time=null",
            "trainer.val_check_interval=2",
            "trainer.limit_val_batches=1",
            "logger=csv",
            f"hydra.run.dir={train_dir}",
        ],
        tmp_path,
    )
    # Validation on unlabelled held-out photographs: homography metrics, no loss.
    metrics = read_metrics(train_dir)
    assert "val/homography_accuracy@3" in metrics and "val/loss" not in metrics
    assert np.isfinite(metrics["train/loss_descriptor"])
    ckpt = train_dir / "checkpoints" / "last.ckpt"
    state = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    # The encoder started from the shipped MagicPoint and was trained.
    magic = torch.load(REPO / "weights" / "magicpoint_shapes.pt", weights_only=True)
    assert state["net.convDb.weight"].shape[0] == 256
    assert not torch.equal(state["net.conv1a.weight"], magic["conv1a.weight"])

    # Shipped form: the net's state dict (written by the run), loaded by model.pretrained.
    weights = train_dir / "superpoint.pt"
    best = torch.load(train_dir / "checkpoints" / "epoch_000.ckpt", weights_only=False)
    saved = torch.load(weights, weights_only=True)
    assert saved.keys() == {k.removeprefix("net.") for k in best["state_dict"]}
    for key, value in saved.items():  # the tested (best) checkpoint's weights
        assert torch.equal(value, best["state_dict"][f"net.{key}"]), key
    write_hpatches_fixture(tmp_path / "hp", 1, 1, size=(48, 64), photos=("rocket",))
    eval_dir = tmp_path / "eval"
    run_script(
        "evaluate.py",
        [
            "task=superpoint",
            "model=superpoint_small",
            f"model.pretrained={weights}",
            "data=hpatches",
            f"data.test.root={tmp_path / 'hp'}",
            "data.test.size=[48,64]",
            "data.detector_test.size=[48,64]",
            "data.num_workers=0",
            "logger=csv",
            f"hydra.run.dir={eval_dir}",
        ],
        tmp_path,
    )
    result = read_metrics(eval_dir)
    assert result["test/descriptor_pairs"] == 10
    table = json.loads((eval_dir / "hpatches_table.json").read_text())
    assert set(table) == {"SuperPoint (ours)", "ORB", "SIFT"}
