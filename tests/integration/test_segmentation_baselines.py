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


def test_benchmark_runs_every_model_on_one_budget():
    """benchmarks/segmentation_baselines.py: the six configs differ in the model only."""
    import importlib.util

    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from tests.integration.conftest import REPO

    spec = importlib.util.spec_from_file_location(
        "segmentation_baselines", REPO / "benchmarks" / "segmentation_baselines.py"
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert len(bench.MODELS) == 6
    rest, targets = [], set()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        for overrides in bench.MODELS.values():
            cfg = compose("train", ["experiment=segmentation_baselines", *overrides])
            targets.add((cfg.model._target_, cfg.model.get("upsampling")))
            cfg = OmegaConf.to_container(cfg, resolve=False)
            cfg.pop("model")
            rest.append(cfg)
    assert len(targets) == 6
    assert all(r == rest[0] for r in rest)
    assert rest[0]["trainer"]["max_steps"] == 400 and rest[0]["data"]["batch_size"] == 16
