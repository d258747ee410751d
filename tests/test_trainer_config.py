"""conf/trainer/default.yaml: the Lightning flags people override exist, with Lightning's defaults."""

from __future__ import annotations

import inspect

import hydra
import lightning.pytorch as L
import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from pixelwise.cli import CONFIG_DIR

DEFAULT_YAML = f"{CONFIG_DIR}/trainer/default.yaml"
# Chosen by the project on purpose (not Lightning's default).
PROJECT_CHOICES = {
    "_target_",
    "default_root_dir",
    "devices",
    "precision",
    "max_epochs",
    "log_every_n_steps",
    "deterministic",
    "benchmark",
    "enable_model_summary",  # callbacks.model_summary prints it
}
# The flags the README and users type daily: each must override without `+`.
DAILY_FLAGS = {
    "fast_dev_run",
    "limit_train_batches",
    "limit_val_batches",
    "limit_test_batches",
    "limit_predict_batches",
    "val_check_interval",
    "num_sanity_val_steps",
    "profiler",
    "enable_progress_bar",
    "enable_model_summary",
    "overfit_batches",
    "max_time",
    "strategy",
    "gradient_clip_val",
}


def composed(overrides: list[str]):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose("train", overrides=overrides)


def _trainer_yaml() -> dict:
    with open(DEFAULT_YAML) as f:
        return yaml.safe_load(f)


def test_default_lists_the_daily_flags():
    assert DAILY_FLAGS <= set(_trainer_yaml())


def test_flags_not_chosen_by_the_project_have_lightnings_defaults():
    signature = inspect.signature(L.Trainer.__init__).parameters
    listed = _trainer_yaml()
    unknown = set(listed) - set(signature) - {"_target_"}
    assert not unknown, f"not Trainer arguments: {unknown}"
    for key, value in listed.items():
        if key in PROJECT_CHOICES:
            continue
        assert value == signature[key].default, (key, value, signature[key].default)


@pytest.mark.parametrize(
    "override, key, value",
    [
        ("trainer.fast_dev_run=true", "fast_dev_run", True),
        ("trainer.limit_val_batches=2", "limit_val_batches", 2),
        ("trainer.limit_train_batches=0.1", "limit_train_batches", 0.1),
        ("trainer.val_check_interval=50", "val_check_interval", 50),
        ("trainer.num_sanity_val_steps=0", "num_sanity_val_steps", 0),
        ("trainer.profiler=simple", "profiler", "simple"),
        ("trainer.enable_progress_bar=false", "enable_progress_bar", False),
    ],
)
def test_plain_override_without_plus(override, key, value):
    assert composed([override]).trainer[key] == value


@pytest.mark.parametrize("choice", ["cpu", "ddp_cpu", "gpu", "ddp"])
def test_trainer_choices_keep_the_flags(choice):
    cfg = composed([f"trainer={choice}", "trainer.limit_val_batches=2"])
    assert cfg.trainer.limit_val_batches == 2 and "fast_dev_run" in cfg.trainer


@pytest.mark.parametrize("debug", ["fdr", "limit", "overfit", "profiler"])
def test_debug_configs_set_the_listed_flags(debug):
    cfg = composed([f"debug={debug}"])
    expected = {
        "fdr": {"fast_dev_run": True},
        "limit": {"limit_train_batches": 5, "limit_val_batches": 2, "max_epochs": 2},
        "overfit": {"overfit_batches": 2, "max_epochs": 100},
        "profiler": {"profiler": "simple", "limit_train_batches": 20},
    }[debug]
    assert {k: cfg.trainer[k] for k in expected} == expected
    assert set(cfg.trainer) == set(_trainer_yaml())  # no flag outside the listed ones


def test_composed_trainer_instantiates_with_the_overrides(tmp_path):
    cfg = composed(["trainer.fast_dev_run=true", "trainer.limit_val_batches=2", "trainer=cpu"])
    trainer_cfg = OmegaConf.to_container(cfg.trainer, resolve=False)
    trainer_cfg["default_root_dir"] = str(tmp_path)
    trainer = hydra.utils.instantiate(trainer_cfg, logger=False, enable_checkpointing=False)
    assert trainer.fast_dev_run is True
    assert trainer.limit_val_batches == 1  # fast_dev_run wins: one batch of each split
    plain = hydra.utils.instantiate(
        {**trainer_cfg, "fast_dev_run": False}, logger=False, enable_checkpointing=False
    )
    assert plain.limit_val_batches == 2 and plain.limit_train_batches == 1.0
    assert plain.num_sanity_val_steps == 2  # Lightning's default from null
