"""The shipped weights/magicpoint_shapes.pt, evaluated as the README says (evaluate.py with
model.pretrained, no checkpoint) on the first 128 clean test shapes of the reference-recipe
generator, with Harris and FAST through the same code: pinned to the values measured when it was
shipped (slow). The baselines also pin the data distribution: a change of the renderer moves them."""

import pytest

from tests.integration.conftest import evaluate_for_pins, off_pins

PINNED = {
    "test/map": 0.9482,
    "test/map_one_to_one": 0.9522,
    "test/localization_error": 0.2857,
    "test/harris/map": 0.6261,
    "test/fast/map": 0.7798,
}


@pytest.mark.slow
def test_shipped_magicpoint_scores_as_pinned(tmp_path):
    metrics = evaluate_for_pins(
        tmp_path,
        [
            "experiment=magicpoint_shapes",
            "model.pretrained=${paths.weights_dir}/magicpoint_shapes.pt",
            "data.test.length=128",
            "task.baselines=[harris,fast]",
        ],
    )
    assert off_pins(metrics, PINNED) == {}
