from types import SimpleNamespace

import pytest
import torch

from pixelwise.callbacks.finite_loss import FiniteLossCheck, NonFiniteLossError


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_loss_raises_naming_the_step(value):
    trainer = SimpleNamespace(global_step=17, current_epoch=2)
    with pytest.raises(NonFiniteLossError, match="global step 17 \\(epoch 2\\)"):
        FiniteLossCheck().on_before_backward(trainer, None, torch.tensor(value))


def test_finite_loss_passes():
    trainer = SimpleNamespace(global_step=0, current_epoch=0)
    assert FiniteLossCheck().on_before_backward(trainer, None, torch.tensor(1.5)) is None
