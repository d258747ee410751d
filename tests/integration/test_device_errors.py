"""GPU requests on a machine without one end at once, in one line, leaving no run directory."""

import pytest
import torch

from tests.integration.conftest import run_script

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")


@pytest.mark.parametrize(
    "override, expected",
    [
        ("trainer.devices=4", "trainer.devices=4 asks for 4 GPUs"),
        ("trainer=gpu", "trainer.accelerator=gpu asks for a GPU"),
    ],
)
def test_refused_in_one_line_without_a_run_directory(tmp_path, override, expected):
    proc = run_script("train.py", [override, "logger=csv"], tmp_path, check=False, timeout=120)
    assert proc.returncode == 2
    assert expected in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "outputs").exists()
