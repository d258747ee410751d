"""Quick runs test on a few batches unless asked for more (issue 14)."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from pixelwise.cli import _limit_the_test_of_a_quick_run, quick_run_reason


def _cfg(**trainer):
    return OmegaConf.create(
        {"train": True, "quick_test_batches": 8, "trainer": {"max_steps": -1, **trainer}}
    )


@pytest.mark.parametrize(
    "trainer, reason",
    [
        ({"max_steps": 5}, "trainer.max_steps=5"),
        ({"limit_train_batches": 0.1}, "trainer.limit_train_batches=0.1"),
        ({"max_steps": 100000}, None),
        ({"max_steps": -1}, None),
        ({"limit_train_batches": 1.0}, None),
    ],
)
def test_quick_run_reason(trainer, reason):
    assert quick_run_reason(_cfg(**trainer)) == reason


def test_a_quick_run_tests_on_a_few_batches_unless_told_otherwise():
    cfg = _cfg(max_steps=5)
    _limit_the_test_of_a_quick_run(cfg)
    assert cfg.trainer.limit_test_batches == 8
    asked = _cfg(max_steps=5, limit_test_batches=1.0)
    _limit_the_test_of_a_quick_run(asked)
    assert asked.trainer.limit_test_batches == 1.0
    real = _cfg(max_steps=5000)
    _limit_the_test_of_a_quick_run(real)
    assert "limit_test_batches" not in real.trainer
    evaluation = OmegaConf.merge(_cfg(max_steps=5), {"train": False})
    _limit_the_test_of_a_quick_run(evaluation)  # evaluate.py tests what it is given
    assert "limit_test_batches" not in evaluation.trainer
