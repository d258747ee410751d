"""Device requests a machine cannot meet are refused with a message that says what to run instead."""

import pytest

from pixelwise.devices import device_problem


@pytest.mark.parametrize(
    "accelerator, devices",
    [("auto", 1), ("auto", "auto"), ("cpu", 4), ("cpu", "2"), (None, 1), ("auto", -1)],
)
def test_allowed_without_cuda(accelerator, devices):
    assert device_problem(accelerator, devices, cuda_available=False) is None


def test_several_devices_on_auto_without_cuda_is_refused():
    msg = device_problem("auto", 4, cuda_available=False)
    assert "trainer.devices=4 asks for 4 GPUs" in msg
    assert "4 CPU processes" in msg and "trainer=ddp_cpu" in msg and "make install TORCH=" in msg


@pytest.mark.parametrize("accelerator", ["gpu", "cuda", "GPU"])
def test_gpu_without_cuda_is_refused(accelerator):
    msg = device_problem(accelerator, 1, cuda_available=False)
    assert f"trainer.accelerator={accelerator.lower()} asks for a GPU" in msg
    assert "trainer=cpu" in msg


def test_device_lists_mean_gpus():
    assert "asks for 2 GPUs" in device_problem("auto", [0, 1], cuda_available=False)
    assert "asks for 2 GPUs" in device_problem("auto", "0,1", cuda_available=False)


def test_anything_goes_with_cuda():
    assert device_problem("gpu", 8, cuda_available=True) is None


def test_bad_value():
    assert "expected a number" in device_problem("auto", "many", cuda_available=False)
