"""Synthetic scenes exported as a COCO dataset read back by COCODetection equal the synthetic items."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pixelwise.data.coco_detection import COCODetection
from pixelwise.data.coco_export import export_coco, main
from pixelwise.data.synthetic_detection import SyntheticDetectionScenes

SIZE = (96, 128)


def test_coco_detection_reads_back_the_synthetic_items(tmp_path):
    path = export_coco(tmp_path, split="val", count=4, size=SIZE, seed=3)
    assert path == tmp_path / "annotations" / "instances_val2017.json"
    synthetic = SyntheticDetectionScenes(size=SIZE, length=4, seed=3, split="val", with_masks=True)
    coco = COCODetection(tmp_path, split="val", size=SIZE, with_masks=True)
    assert len(coco) == 4 and coco.category_ids == (1, 2, 3)
    assert coco.class_names == ("car", "truck", "pedestrian")
    crowds = 0
    for i in range(4):
        a, b = synthetic[i], coco[i]
        assert set(a) == set(b)
        for key in a:
            if isinstance(a[key], torch.Tensor):
                assert torch.equal(a[key], b[key]), (i, key)
            else:
                assert a[key] == b[key], (i, key)
        crowds += int(a["iscrowd"].sum())
    assert crowds > 0  # the tiny instances went through as crowd regions
    data = json.loads(path.read_text())
    assert data["images"][0]["file_name"] == "000000.png"
    ann = data["annotations"][0]
    assert ann["id"] == 1 and set(ann) >= {"bbox", "area", "iscrowd", "segmentation", "category_id"}
    assert isinstance(ann["segmentation"]["counts"], str)


def test_command_line(tmp_path, capsys):
    main(["export-coco", str(tmp_path), "--split", "test", "--count", "2", "--size", "64", "80"])
    assert "wrote 2 scenes" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "test2017").iterdir()) == ["000000.png", "000001.png"]
    assert COCODetection(tmp_path, split="test", size=None)[1]["image"].shape == (3, 64, 80)
    with pytest.raises(SystemExit):
        main(["export-coco", str(tmp_path), "--count", "0"])


def test_python_dash_m_entry_point_without_runpy_warning(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pixelwise.data.synthetic_scenes",
            "export-coco",
            str(tmp_path),
            "--count",
            "1",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).parent,
        check=True,
    )
    assert "RuntimeWarning" not in out.stderr, out.stderr
    assert (tmp_path / "annotations" / "instances_val2017.json").is_file()
