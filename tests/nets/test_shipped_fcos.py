"""The shipped weights/fcos_synthetic.pt, evaluated as the README says (evaluate.py with
model.pretrained, no checkpoint) on the first 64 test scenes: pinned to the values measured when
it was shipped, so a change in data, decoding or metric that moves them shows up (slow)."""

import pytest

from tests.integration.conftest import evaluate_for_pins, off_pins

PINNED = {"test/map": 0.6864, "test/map_50": 0.9083, "test/mar_100": 0.7422}


@pytest.mark.slow
def test_shipped_fcos_scores_as_pinned(tmp_path):
    metrics = evaluate_for_pins(
        tmp_path,
        [
            "experiment=fcos_synthetic",
            "model.pretrained=${paths.weights_dir}/fcos_synthetic.pt",
            "data.test.length=64",
        ],
    )
    assert off_pins(metrics, PINNED) == {}
