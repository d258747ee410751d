"""Mistakes a user can make end in a line or two in config terms, without a traceback (issue 14)."""

from __future__ import annotations

import pytest

from tests.integration.conftest import run_script
from tests.integration.dataset_trees import write_cityscapes


def _refused(tmp_path, args: list[str]) -> str:
    proc = run_script("train.py", [*args, "logger=csv"], tmp_path, check=False, timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "Error executing job" not in proc.stderr
    return proc.stderr


@pytest.mark.parametrize(
    "args, expected",
    [
        (
            ["data=voc", "data.root=/nonexistent"],
            ["error: VOCSegmentation: /nonexistent is missing", "VOCdevkit/VOC2012/"],
        ),
        (
            ["task=segmentation", "data=synthetic_shapes"],
            [
                "error: task=segmentation needs data.num_classes, which data=synthetic_shapes does "
                "not declare",
                "synthetic_scenes",
            ],
        ),
        (
            ["model.base_channels=-3"],
            ["error: model (pixelwise.nets.unet.UNet): UNet: base_channels=-3 must be >= 1"],
        ),
    ],
    ids=["missing-dataset", "task-data-misfit", "bad-width"],
)
def test_config_mistakes_are_one_message_without_traceback(tmp_path, args, expected):
    stderr = _refused(tmp_path, args)
    for text in expected:
        assert text in stderr
    assert "HYDRA_FULL_ERROR=1 shows the traceback" in stderr
    if "data.root=/nonexistent" not in args:  # the dataset is opened once the run has started
        assert not (tmp_path / "outputs").exists()  # refused before anything ran


def test_a_corrupt_label_png_is_named_by_path(tmp_path):
    root = tmp_path / "cityscapes"
    write_cityscapes(root, {"train": 2, "val": 1, "test": 1})
    bad = next((root / "gtFine" / "train").rglob("*_gtFine_labelIds.png"))
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    stderr = _refused(
        tmp_path,
        ["data=cityscapes", f"data.root={root}", "trainer.max_steps=1", "data.num_workers=0"],
    )
    assert f"error: {bad}: cannot read this" in stderr
