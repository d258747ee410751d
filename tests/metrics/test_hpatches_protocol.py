"""The HPatches protocol: an oracle extractor scores perfectly, splits and 'all' are pair means, extraction reuse."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pixelwise.hpatches_report import PAPER_TABLE4, evaluate_features, format_table
from pixelwise.metrics.descriptor_metrics import pair_descriptor_scores
from pixelwise.metrics.homography_accuracy import corner_error, estimate_homography
from pixelwise.metrics.hpatches_protocol import HPatchesEvaluator, shared_mutual_matches
from pixelwise.metrics.repeatability import pair_repeatability

SHAPE = (48, 64)
POINTS = np.array([[10, 8], [50, 9], [30, 20], [15, 35], [45, 38], [25, 30], [40, 15], [20, 12]])


def dots(points: np.ndarray, shape=SHAPE) -> torch.Tensor:
    """[1, H, W] image: point i (x, y) is a pixel of value (i + 1) / 255, the rest 0."""
    image = torch.zeros(1, *shape)
    for i, (x, y) in enumerate(points):
        image[0, int(y), int(x)] = (i + 1) / 255.0
    return image


def oracle(image: torch.Tensor) -> dict[str, torch.Tensor]:
    """Keypoints at the lit pixels, score = value, descriptor = one-hot of the point's id."""
    ys, xs = torch.nonzero(image[0] > 0, as_tuple=True)
    ids = (image[0, ys, xs] * 255).round().long() - 1
    return {
        "keypoints": torch.stack([xs, ys], 1).float(),
        "scores": image[0, ys, xs],
        "descriptors": torch.nn.functional.one_hot(ids, 16).float(),
    }


def translation(dx: float, dy: float) -> torch.Tensor:
    return torch.tensor([[1.0, 0, dx], [0, 1.0, dy], [0, 0, 1.0]])


def perfect_item(k: int, sequence: str = "i_dots", kind: str = "i") -> dict:
    shift = np.array([k - 4, 1])
    return {
        "image_a": dots(POINTS),
        "image_b": dots(POINTS + shift),
        "homography": translation(*shift),
        "sequence": sequence,
        "kind": kind,
    }


GARBAGE_B = np.array([[5, 40], [60, 3], [33, 44], [7, 7], [58, 30], [2, 22], [44, 25], [30, 5]])


def garbage_item() -> dict:
    """A 'viewpoint' pair whose b-points are unrelated to the a-points under H (same ids, wrong places)."""
    return {
        "image_a": dots(POINTS),
        "image_b": dots(GARBAGE_B),
        "homography": translation(2, 1),
        "sequence": "v_dots",
        "kind": "v",
    }


def test_oracle_features_score_perfectly():
    out = evaluate_features(oracle, [perfect_item(k) for k in range(2, 7)])
    assert out["illumination/repeatability"] == 1 and out["illumination/localization_error"] == 0
    for t in (1, 3, 5):
        assert out[f"illumination/homography_accuracy@{t}"] == 1
    assert (
        out["illumination/nn_map"] == pytest.approx(1) and out["illumination/matching_score"] == 1
    )
    assert out["illumination/descriptor_pairs"] == 5 and out["all/descriptor_pairs"] == 5
    assert math.isnan(out["viewpoint/nn_map"])
    assert out["all/repeatability"] == 1 and out["all/nn_map"] == pytest.approx(1)


def test_all_is_the_mean_over_every_pair_not_of_the_split_means():
    items = [perfect_item(k) for k in (2, 3)] + [garbage_item()]
    out = evaluate_features(oracle, items)
    fa, fb = oracle(items[2]["image_a"]), oracle(items[2]["image_b"])
    h = items[2]["homography"].double()
    count, total, _ = pair_repeatability(
        fa["keypoints"], fa["scores"], fb["keypoints"], fb["scores"], h, SHAPE, SHAPE, 3.0, 300
    )
    ap, ms = pair_descriptor_scores(
        fa["keypoints"],
        fa["scores"],
        fa["descriptors"],
        fb["keypoints"],
        fb["scores"],
        fb["descriptors"],
        h,
        SHAPE,
        SHAPE,
    )
    error = corner_error(
        estimate_homography(*shared_mutual_matches(fa, fb, h, SHAPE, SHAPE)), h, SHAPE
    )
    assert ap < 0.5 and count / total < 0.8 and error > 5  # the garbage pair is bad
    assert out["viewpoint/repeatability"] == pytest.approx(count / total)
    assert out["viewpoint/nn_map"] == pytest.approx(ap)
    assert out["all/repeatability"] == pytest.approx((2 + count / total) / 3)
    assert out["all/nn_map"] == pytest.approx((2 + ap) / 3)
    assert out["all/matching_score"] == pytest.approx((2 + ms) / 3)
    assert out["all/homography_accuracy@5"] == pytest.approx(2 / 3)


def test_compute_is_repeatable_and_reset_forgets():
    evaluator = HPatchesEvaluator()
    for item in (perfect_item(2), garbage_item()):
        fa, fb = oracle(item["image_a"]), oracle(item["image_b"])
        evaluator.update(fa, fb, item["homography"], item["kind"], SHAPE, SHAPE)
    first, second = evaluator.compute(), evaluator.compute()
    assert first.keys() == second.keys()
    assert all(
        first[k] == second[k] or (math.isnan(first[k]) and math.isnan(second[k])) for k in first
    )
    evaluator.reset()
    assert math.isnan(evaluator.compute()["all/repeatability"])


def test_image_a_is_extracted_once_per_sequence_and_detector_set_is_separate():
    calls = []

    def counting(image):
        calls.append(tuple(image.shape))
        return oracle(image)

    items = [perfect_item(k) for k in range(2, 7)]
    evaluate_features(counting, items)
    assert len(calls) == 6  # image 1 once + 5 others
    calls.clear()
    small = [
        dict(item, image_a=item["image_a"][:, :40], image_b=item["image_b"][:, :40])
        for item in items
    ]
    out = evaluate_features(counting, items, detector_dataset=small)
    assert len(calls) == 12
    assert out["all/detector_pairs"] == 5 and out["all/descriptor_pairs"] == 5


def test_paper_options_reach_the_metrics():
    evaluator = HPatchesEvaluator(thresholds=(2, 4), repeatability_top_k=3, top_k=5)
    assert evaluator.metrics["v"]["detector"].top_k == 3
    assert evaluator.metrics["i"]["descriptors"].top_k == 5
    assert "homography_accuracy@2" in evaluator.metric_names


def test_bad_input():
    with pytest.raises(ValueError, match="missing 'kind'"):
        evaluate_features(oracle, [{k: v for k, v in perfect_item(2).items() if k != "kind"}])
    evaluator = HPatchesEvaluator()
    f = oracle(dots(POINTS))
    with pytest.raises(ValueError, match="kind='x' is invalid"):
        evaluator.update(f, f, torch.eye(3), "x", SHAPE, SHAPE)
    no_desc = {k: v for k, v in f.items() if k != "descriptors"}
    evaluator.update_detector(
        no_desc, no_desc, torch.eye(3), "i", SHAPE, SHAPE
    )  # detector needs none
    with pytest.raises(ValueError, match="descriptors"):
        evaluator.update_descriptors(no_desc, no_desc, torch.eye(3), "i", SHAPE, SHAPE)


def test_format_table_layout():
    results = {"oracle": evaluate_features(oracle, [perfect_item(2)])}
    table = format_table(results, splits=("all", "viewpoint"))
    lines = table.splitlines()
    assert lines[0] == "| method | split | ε=1 | ε=3 | ε=5 | Rep. | MLE | NN mAP | M. Score |"
    assert lines[2] == "| oracle | all | 1.000 | 1.000 | 1.000 | 1.000 | 0.000 | 1.000 | 1.000 |"
    assert lines[3].startswith("| oracle | viewpoint | – |")
    assert "| SIFT (paper) | all | 0.424 | 0.676 | 0.759 | 0.495 | 0.833 | 0.694 | 0.313 |" in lines
    assert len(lines) == 4 + len(PAPER_TABLE4)
    assert len(format_table(results, reference=False).splitlines()) == 2 + 3


def _ddp_worker(rank: int, world: int, init_file: str, shards: list, queue) -> None:
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world
    )
    try:
        evaluator = HPatchesEvaluator()
        for item in shards[rank]:
            fa, fb = oracle(item["image_a"]), oracle(item["image_b"])
            evaluator.update(fa, fb, item["homography"], item["kind"], SHAPE, SHAPE)
        queue.put((rank, evaluator.compute()))
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_ddp_result_equals_single_process(tmp_path):
    """Two gloo ranks, one of which never sees a viewpoint pair: same numbers as one process, no hang."""
    import torch.multiprocessing as mp

    shards = [[perfect_item(2), perfect_item(3)], [garbage_item(), perfect_item(4)]]
    single = HPatchesEvaluator()
    for item in shards[0] + shards[1]:
        fa, fb = oracle(item["image_a"]), oracle(item["image_b"])
        single.update(fa, fb, item["homography"], item["kind"], SHAPE, SHAPE)
    expected = single.compute()
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=_ddp_worker, args=(r, 2, str(tmp_path / "init"), shards, queue))
        for r in range(2)
    ]
    for p in procs:
        p.start()
    results = dict(queue.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=30)
    for rank in (0, 1):
        got = results[rank]
        assert got.keys() == expected.keys()
        for key, value in expected.items():
            assert got[key] == pytest.approx(value, nan_ok=True), key
