"""W&B from the CLI: unique run names (task, time, overrides) and a summary of the best metric."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from pixelwise.cli import CONFIG_DIR, UserError, _summarise_best, run_name


class TestRunName:
    def test_task_time_and_shortened_overrides(self):
        name = run_name(
            "segmentation",
            "20261206-051500",
            ["trainer.max_steps=2", "task.optimizer.lr=0.01", "model=unet", "seed=7"],
        )
        assert (
            name == "segmentation-20261206-051500-max_steps=2,optimizer.lr=0.01,model=unet,seed=7"
        )

    def test_plumbing_overrides_are_left_out_and_paths_shortened(self):
        overrides = [
            "task=superpoint",
            "logger=wandb",
            "logger.wandb.log_model=true",
            "paths.data_dir=/data",
            "hydra/launcher=joblib",
            "ckpt_path=/runs/a/checkpoints/last.ckpt",
            "data.root=/datasets/coco/",
            "+trainer.foo=1",
        ]
        name = run_name("superpoint", "T", overrides)
        assert name == "superpoint-T-root=coco,foo=1"

    def test_no_overrides_and_cut_to_max_length(self):
        assert run_name("edges", "T") == "edges-T"
        long = run_name("edges", "T", [f"model.k{i}={'v' * 20}" for i in range(10)], max_length=60)
        assert len(long) == 60 and long.endswith("~") and long.startswith("edges-T-k0=")
        assert len(run_name("e", "T", ["a.b=" + "x" * 100])) == len("e-T-b=") + 24

    def test_wandb_config_uses_it(self):
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            cfg = compose("train", overrides=["logger=wandb"])
        name = OmegaConf.to_container(cfg.logger.wandb)["name"]
        assert name.startswith("${pixelwise.run_name:${task_name},${now:")
        assert "${hydra:overrides.task}" in name
        assert cfg.logger.wandb.log_model is False


class TestBestSummary:
    def _logger(self, tmp_path):
        from lightning.pytorch.loggers import WandbLogger

        return WandbLogger(project="pixelwise-test", mode="offline", save_dir=str(tmp_path))

    @pytest.mark.parametrize("mode, best", [("max", 0.7), ("min", 0.3)])
    def test_summary_holds_the_best_value_not_the_last(self, tmp_path, mode, best):
        import wandb

        logger = self._logger(tmp_path)
        cfg = OmegaConf.create({"optimized_metric": "val/miou", "optimized_metric_mode": mode})
        try:
            _summarise_best([logger], cfg)
            for step, value in enumerate([0.5, 0.7, 0.3, 0.6]):
                logger.log_metrics({"val/miou": value, "val/loss": 1 - value}, step=step)
            summary = logger.experiment.summary
            assert dict(summary["val/miou"]) == {mode: best}
            assert summary["val/loss"] == pytest.approx(0.4)  # others keep the last value
        finally:
            wandb.finish()

    def test_bad_mode_and_no_metric(self, tmp_path):
        with pytest.raises(UserError, match="optimized_metric_mode=best: expected max or min"):
            _summarise_best(
                [], OmegaConf.create({"optimized_metric": "val/x", "optimized_metric_mode": "best"})
            )
        _summarise_best([object()], OmegaConf.create({"optimized_metric": None}))  # nothing to do
