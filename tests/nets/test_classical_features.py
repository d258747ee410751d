"""ClassicalFeatures (OpenCV ORB / SIFT): output format, conventions, Hamming equivalence, HPatches-format photos."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from pixelwise.data.hpatches import HPatches
from pixelwise.geometry.matching import match_descriptors
from pixelwise.hpatches_report import evaluate_features
from pixelwise.metrics.descriptor_metrics import descriptor_distances
from pixelwise.nets.classical_features import ClassicalFeatures, pack_orb, unpack_orb


def _fixture_writer():
    """tests/data/hpatches_fixture.py's writer and photo loader."""
    from tests.data import hpatches_fixture

    return hpatches_fixture.write_hpatches_fixture, hpatches_fixture.photo


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small matrices and OpenCV calls: threads only contend on a shared machine."""
    torch_threads, cv_threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    yield
    torch.set_num_threads(torch_threads)
    cv2.setNumThreads(cv_threads)


@pytest.fixture(scope="module")
def gray() -> np.ndarray:
    """A 240x320 gray photograph (uint8)."""
    _, photo = _fixture_writer()
    return cv2.cvtColor(
        cv2.resize(photo("astronaut"), (320, 240), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY
    )


@pytest.mark.parametrize(("method", "dim"), [("orb", 256), ("sift", 128)])
def test_output_format(gray, method, dim):
    out = ClassicalFeatures(method, max_keypoints=300)(gray)
    kp, scores, desc = out["keypoints"], out["scores"], out["descriptors"]
    assert 100 < kp.shape[0] <= 300 and kp.shape[1] == 2 and kp.dtype == torch.float32
    assert scores.shape == (kp.shape[0],) and desc.shape == (kp.shape[0], dim)
    assert torch.all(scores[:-1] >= scores[1:])  # best first
    assert kp[:, 0].max() < 320 and kp[:, 1].max() < 240 and kp.min() >= 0  # (x, y) inside
    if method == "sift":
        assert torch.allclose(desc.norm(dim=1), torch.ones(len(desc)), atol=1e-5)
    else:
        assert set(desc.unique().tolist()) == {-1.0, 1.0}


@pytest.mark.parametrize("centre", [(70.5, 40.0), (30.7, 60.1)])
def test_keypoint_convention_on_a_blob(centre):
    """A dark Gaussian blob centred at (x, y): SIFT finds its centre in (x, y) order, pixel centres at integers."""
    yy, xx = np.mgrid[0:96, 0:128]
    image = 255 - 200 * np.exp(-((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2) / (2 * 4.0**2))
    image = image.round().astype(np.uint8)
    nearest = (
        (ClassicalFeatures("sift")(image)["keypoints"] - torch.tensor(centre)).norm(dim=1).min()
    )
    assert nearest < 0.1
    # OpenCV's default first-octave upscaling would place it ~(+0.25, +0.25) off
    biased = ClassicalFeatures("sift", enable_precise_upscale=False)(image)["keypoints"]
    offset = biased[(biased - torch.tensor(centre)).norm(dim=1).argmin()] - torch.tensor(centre)
    assert offset.min() > 0.15


def test_tensor_and_array_inputs_agree(gray):
    orb = ClassicalFeatures("orb", 200)
    from_array = orb(gray)
    from_tensor = orb(torch.from_numpy(gray).float()[None] / 255.0)
    for key in from_array:
        assert torch.equal(from_array[key], from_tensor[key])


def test_orb_bits_round_trip_and_rank_by_hamming(gray):
    """The +-1 bits are OpenCV's bytes, and normalised Euclidean distance is 2 sqrt(hamming / 256)."""
    orb = cv2.ORB_create(nfeatures=200)
    _, packed = orb.detectAndCompute(gray, None)
    bits = unpack_orb(packed)
    assert np.array_equal(pack_orb(bits), packed)
    hamming = np.array(
        [[cv2.norm(p, q, cv2.NORM_HAMMING) for q in packed[:40]] for p in packed[:30]]
    )
    got = descriptor_distances(bits[:30], bits[:40]).double().numpy()
    assert np.allclose(got, 2 * np.sqrt(hamming / 256), atol=1e-6)


def test_orb_mutual_matches_equal_opencv_hamming_cross_check(gray):
    shifted = np.roll(gray, (3, 5), axis=(0, 1))
    orb = cv2.ORB_create(nfeatures=300)
    _, da = orb.detectAndCompute(gray, None)
    _, db = orb.detectAndCompute(shifted, None)
    ours = {
        tuple(m)
        for m in match_descriptors(
            unpack_orb(da), unpack_orb(db), mutual=True, max_distance=None
        ).tolist()
    }
    bf = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True)
    theirs = {(m.queryIdx, m.trainIdx) for m in bf.match(da, db)}
    # identical up to ties in Hamming distance, which the two matchers may break differently
    assert len(ours & theirs) >= 0.95 * max(len(ours), len(theirs))


def test_bad_input():
    with pytest.raises(ValueError, match="unknown method 'surf'"):
        ClassicalFeatures("surf")
    with pytest.raises(ValueError, match="max_keypoints"):
        ClassicalFeatures("orb", max_keypoints=0)
    with pytest.raises(ValueError, match=r"gray image \[H, W\] or \[1, H, W\]"):
        ClassicalFeatures("orb")(torch.zeros(3, 32, 32))
    with pytest.raises(TypeError, match="uint8 or float"):
        ClassicalFeatures("orb")(np.zeros((32, 32), dtype=np.int32))


def test_blank_image_gives_empty_features():
    out = ClassicalFeatures("sift")(np.full((64, 64), 128, dtype=np.uint8))
    assert out["keypoints"].shape == (0, 2) and out["descriptors"].shape == (0, 128)


@pytest.fixture(scope="module")
def viewpoint_pairs(tmp_path_factory):
    write, _ = _fixture_writer()
    write(tmp_path_factory.mktemp("hp"), n_illumination=0, n_viewpoint=2, size=(264, 352), seed=0)
    return HPatches(tmp_path_factory.getbasetemp() / "hp0", split="viewpoint", size=(240, 320))


@pytest.mark.parametrize("method", ["orb", "sift"])
def test_homography_estimation_on_photographs(viewpoint_pairs, method):
    results = evaluate_features(ClassicalFeatures(method, 1000), viewpoint_pairs)
    assert results["viewpoint/descriptor_pairs"] == 10
    assert results["viewpoint/homography_accuracy@3"] >= 0.5
    assert results["viewpoint/nn_map"] > 0.3 and results["viewpoint/repeatability"] > 0.3
    assert np.isnan(results["illumination/repeatability"])
