"""The shipped weights/magicpoint_photos.pt (round 1 of homographic adaptation on photographs),
evaluated as its model card says (evaluate.py with model.pretrained and task.teacher, no
checkpoint) on 6 pairs of the val photographs: alone, adapted over N = 100 (the next round's
teacher), Harris and FAST on the same pairs. Pinned to the values measured when it was shipped
(slow); Harris and FAST also pin the pairs."""

import pytest

from tests.integration.conftest import evaluate_for_pins, off_pins

WEIGHTS = "${paths.weights_dir}/magicpoint_photos.pt"
PINNED = {
    "test/repeatability": 0.5739,
    "test/adapted_teacher_repeatability": 0.7374,
    "test/harris_repeatability": 0.7104,
    "test/fast_repeatability": 0.6223,
}


@pytest.mark.slow
def test_shipped_magicpoint_photos_scores_as_pinned(tmp_path):
    metrics = evaluate_for_pins(
        tmp_path,
        [
            "experiment=magicpoint_photos_adaptation",
            f"model.pretrained={WEIGHTS}",
            f"task.teacher={WEIGHTS}",
            "data.test.split=val",
            "data.test.repeats=2",
            "task.baselines=[harris,fast,adapted_teacher]",
            "callbacks.repeatability.models=[student,harris,fast,adapted_teacher]",
        ],
    )
    assert off_pins(metrics, PINNED) == {}
    # The adapted detector repeats more of its points than the same net alone and than FAST.
    assert metrics["test/adapted_teacher_repeatability"] >= metrics["test/repeatability"] + 0.1
    assert metrics["test/adapted_teacher_repeatability"] > metrics["test/fast_repeatability"]
