"""train.py runs each of the chapter's baseline segmenters and the U-Net's unpooling choices."""

from __future__ import annotations

import pytest

from tests.integration.conftest import read_metrics, run_script

# model options -> the overrides that pick them
BASELINES = {
    "pixel_linear": ["model=pixel_linear"],
    "fcn": ["model=fcn", "model.base_channels=4"],
    "unet_max_unpool": ["model=unet", "model.upsampling=max_unpool", "model.base_channels=4"],
    "unet_bed_of_nails": ["model=unet", "model.upsampling=bed_of_nails", "model.base_channels=4"],
}
TINY = ["data.train.size=[33,47]", "data.batch_size=2", "data.eval_batch_size=2", "logger=csv"]


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_fast_dev_run(name, tmp_path):
    out = tmp_path / "run"
    run_script(
        "train.py",
        [
            "task=segmentation",
            *BASELINES[name],
            "trainer.fast_dev_run=true",
            "data.num_workers=0",
            *TINY,
            f"hydra.run.dir={out}",
        ],
        tmp_path,
    )
    metrics = read_metrics(out)
    assert 0.0 <= metrics["val/miou"] <= 1.0 and 0.0 <= metrics["test/miou"] <= 1.0


def test_bad_model_option_is_reported_with_its_key(tmp_path):
    proc = run_script(
        "train.py",
        ["task=segmentation", "model=pixel_linear", "model.features=[texture]", *TINY],
        tmp_path,
        check=False,
    )
    assert proc.returncode != 0
    assert "features=['texture']" in proc.stderr + proc.stdout
    assert "'color', 'position'" in proc.stderr + proc.stdout
