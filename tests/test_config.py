"""The config tree composes for every documented choice (Hydra compose API, no training)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from pixelwise.cli import CONFIG_DIR

CONF = Path(CONFIG_DIR)


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def composed(overrides: list[str], hydra_cfg: bool = False):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose("train", overrides=overrides, return_hydra_config=hydra_cfg)


def test_defaults_are_segmentation_on_synthetic_scenes_with_wandb_offline():
    cfg = composed([])
    assert cfg.task_name == "segmentation" and cfg.optimized_metric == "val/miou"
    assert cfg.model._target_.endswith("UNet")
    assert cfg.data.train._target_.endswith("SyntheticScenes")
    assert set(cfg.logger) == {"csv", "wandb"}
    # last.ckpt after every validation (not only when the metric improved), best by the metric.
    assert OmegaConf.select(cfg, "callbacks.last_checkpoint.filename") == "last"
    assert OmegaConf.select(cfg, "callbacks.last_checkpoint.monitor") is None
    assert OmegaConf.select(cfg, "callbacks.model_checkpoint.save_last") is False


@pytest.mark.parametrize("trainer", options("trainer"))
def test_trainer_options_compose(trainer):
    cfg = composed([f"trainer={trainer}"])
    assert cfg.trainer._target_ == "lightning.pytorch.Trainer"


def test_ddp_choices():
    assert composed(["trainer=ddp_cpu"]).trainer.devices == 2
    cfg = composed(["trainer.devices=4", "trainer.precision=bf16-mixed", "trainer.num_nodes=2"])
    assert (cfg.trainer.devices, cfg.trainer.precision, cfg.trainer.num_nodes) == (
        4,
        "bf16-mixed",
        2,
    )


@pytest.mark.parametrize("launcher", ["joblib", "submitit_slurm", "submitit_local"])
def test_cluster_and_parallel_launchers_compose(launcher):
    cfg = composed([f"hydra/launcher={launcher}"], hydra_cfg=True)
    assert "launcher" in cfg.hydra.launcher._target_.lower()


def test_optuna_search_space():
    cfg = composed(["hparams_search=segmentation_optuna"], hydra_cfg=True)
    assert cfg.hydra.sweeper.direction == "maximize"
    assert "task.optimizer.lr" in cfg.hydra.sweeper.params


@pytest.mark.parametrize("logger", options("logger"))
def test_logger_options(logger):
    cfg = composed([f"logger={logger}"])
    expected = {"wandb": {"csv", "wandb"}, "tensorboard": {"csv", "tensorboard"}, "csv": {"csv"}}
    assert set(cfg.get("logger") or {}) == expected.get(logger, set())


@pytest.mark.parametrize("debug", options("debug"))
def test_debug_options(debug):
    assert composed([f"debug={debug}"]).trainer


# Each task's optimizer and scheduler as they were written in task/*.yaml before the groups.
TASK_OPTIMIZERS = {
    "segmentation": ("torch.optim.AdamW", 0.003, "CosineAnnealingLR"),
    "edges": ("torch.optim.AdamW", 0.003, "CosineAnnealingLR"),
    "detection": ("torch.optim.AdamW", 0.002, "CosineAnnealingLR"),
    "homographic_adaptation": ("torch.optim.AdamW", 0.0005, None),
    "instance": ("torch.optim.AdamW", 0.0005, "CosineAnnealingLR"),
    "magicpoint": ("torch.optim.AdamW", 0.001, None),
    "panoptic": ("torch.optim.AdamW", 0.003, "CosineAnnealingLR"),
    "superpoint": ("torch.optim.Adam", 0.001, None),
}


@pytest.mark.parametrize("task", options("task"))
def test_each_task_picks_its_optimizer_and_scheduler_from_the_groups(task):
    target, lr, scheduler = TASK_OPTIMIZERS[task]
    cfg = composed([f"task={task}"])
    assert (cfg.task.optimizer._target_, cfg.task.optimizer.lr) == (target, lr)
    assert cfg.task.optimizer._partial_ is True
    if scheduler is None:
        assert cfg.task.scheduler is None
    else:
        assert cfg.task.scheduler._target_ == f"torch.optim.lr_scheduler.{scheduler}"


def test_optimizer_and_scheduler_swap_from_the_command_line():
    import torch
    from hydra.utils import instantiate

    cfg = composed(["optimizer=sgd", "scheduler=poly", "task.optimizer.lr=0.05"])
    params = [torch.nn.Parameter(torch.zeros(2))]
    optimizer = instantiate(cfg.task.optimizer)(params)
    assert isinstance(optimizer, torch.optim.SGD)
    assert optimizer.defaults["lr"] == 0.05 and optimizer.defaults["momentum"] == 0.9
    scheduler = instantiate(cfg.task.scheduler)(optimizer, total_iters=10)
    assert isinstance(scheduler, torch.optim.lr_scheduler.PolynomialLR)
    assert composed(["scheduler=none"]).task.scheduler is None
    assert set(options("optimizer")) >= {"adam", "adamw", "sgd"}
    assert set(options("scheduler")) >= {"cosine", "none", "poly", "step"}


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
def test_shipped_optimizers_are_fused_and_match_the_per_tensor_loop(optimizer):
    """The groups pick torch's fused kernel; its steps equal the default loop's within rounding."""
    import torch
    from hydra.utils import instantiate

    fused_cfg = composed([f"optimizer={optimizer}"])
    loop_cfg = composed([f"optimizer={optimizer}", "task.optimizer.fused=null"])
    torch.manual_seed(0)
    start = [torch.randn(5, 3), torch.randn(7)]
    fused_params = [torch.nn.Parameter(t.clone()) for t in start]
    loop_params = [torch.nn.Parameter(t.clone()) for t in start]
    fused = instantiate(fused_cfg.task.optimizer)(fused_params)
    loop = instantiate(loop_cfg.task.optimizer)(loop_params)
    assert fused.defaults["fused"] is True and not loop.defaults["fused"]
    for _ in range(20):
        grads = [torch.randn_like(t) for t in start]
        for params, opt in ((fused_params, fused), (loop_params, loop)):
            for p, g in zip(params, grads):
                p.grad = g.clone()
            opt.step()
    for a, b, t in zip(fused_params, loop_params, start):
        assert not torch.allclose(a, t)  # the steps moved the parameters
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_gpu_segmentation_recipes_share_one_base():
    voc = composed(["experiment=unet_voc"])
    city = composed(["experiment=unet_cityscapes"])
    crop = {
        name: [t for t in OmegaConf.to_container(c.data.train.transform.transforms, resolve=True)]
        for name, c in (("voc", voc), ("city", city))
    }
    assert crop["voc"][2] == {"_target_": "albumentations.RandomCrop", "height": 320, "width": 320}
    assert crop["city"][2]["height"] == 512 and crop["city"][2]["width"] == 1024
    assert crop["voc"][4]["hue"] == 0.02 and crop["city"][4]["brightness"] == 0.25
    for cfg in (voc, city):
        assert cfg.task.scheduler._target_.endswith("PolynomialLR")
        assert cfg.task.optimizer.lr == 0.001 and cfg.trainer.precision == "16-mixed"


@pytest.mark.parametrize("experiment", [e for e in options("experiment")] + ["base/unet_gpu"])
def test_experiments_compose(experiment):
    if experiment == "base/unet_gpu":
        # The shared recipe needs its concrete experiment's sizes.
        with pytest.raises(Exception, match="crop_size"):
            OmegaConf.to_container(composed([f"experiment={experiment}"]).data, resolve=True)
        return
    cfg = composed([f"experiment={experiment}"])
    assert cfg.task._target_ and cfg.model._target_ and cfg.data._target_


@pytest.mark.parametrize("task", options("task"))
def test_task_picks_its_defaults_and_a_model_can_be_swapped(task):
    cfg = composed([f"task={task}"])
    assert cfg.task_name == task
    swapped = composed([f"task={task}", "model=unet"])
    assert swapped.model._target_.endswith("UNet")


@pytest.mark.skipif(
    shutil.which("pixelwise-train") is None
    and not (Path(__file__).parents[1] / ".venv/bin/pixelwise-train").exists(),
    reason="console scripts not installed",
)
def test_console_scripts_run_hydra():
    bin_dir = Path(__file__).parents[1] / ".venv" / "bin"
    for script in ("pixelwise-train", "pixelwise-evaluate"):
        exe = bin_dir / script if (bin_dir / script).exists() else script
        out = subprocess.run(
            [str(exe), "--cfg", "job"], capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, out.stderr
        assert "task_name: segmentation" in out.stdout


def test_weights_dir_is_the_projects_from_any_directory(tmp_path, monkeypatch):
    from pixelwise.cli import WEIGHTS_DIR

    monkeypatch.chdir(tmp_path)
    cfg = composed(["experiment=superpoint_photos"])
    assert cfg.paths.weights_dir == str(WEIGHTS_DIR)
    assert Path(cfg.task.detector_weights).is_file()  # the shipped MagicPoint
