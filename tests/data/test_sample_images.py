"""scikit-image photographs: offline, held-out split, exact preprocessing."""

from __future__ import annotations

import numpy as np
import pytest

from pixelwise.data.sample_images import (
    SAMPLE_IMAGES,
    SPLITS,
    TEST_IMAGES,
    TRAIN_IMAGES,
    VAL_IMAGES,
    SampleImages,
    load_sample_image,
)


@pytest.mark.parametrize("name", SAMPLE_IMAGES)
def test_every_photograph_loads_offline(name):
    array = load_sample_image(name)
    assert array.dtype == np.uint8 and array.ndim in (2, 3) and min(array.shape[:2]) >= 150


def test_train_val_test_splits_are_disjoint_and_cover_every_photograph():
    assert set(TRAIN_IMAGES).isdisjoint(VAL_IMAGES)
    assert set(TRAIN_IMAGES).isdisjoint(TEST_IMAGES)
    assert set(VAL_IMAGES).isdisjoint(TEST_IMAGES)
    assert set(TRAIN_IMAGES) | set(VAL_IMAGES) | set(TEST_IMAGES) == set(SAMPLE_IMAGES)
    assert len(TRAIN_IMAGES) >= 12 and len(VAL_IMAGES) >= 3 and len(TEST_IMAGES) >= 3
    # The stereo pair is one scene: both views in the same split.
    assert {"motorcycle_left", "motorcycle_right"} <= set(VAL_IMAGES)
    assert SampleImages("train").names == list(TRAIN_IMAGES)
    assert SampleImages("val", repeats=2).names == list(VAL_IMAGES)
    assert len(SampleImages("test", repeats=2)) == 2 * len(TEST_IMAGES)
    assert SPLITS["all"] == SAMPLE_IMAGES


def test_reserved_sample_photographs_are_not_offered():
    # matplotlib's and scikit-learn's sample photographs are for evaluation outside the project.
    for reserved in ("grace_hopper", "china", "flower"):
        assert reserved not in SAMPLE_IMAGES
        with pytest.raises(ValueError, match="unknown sample image"):
            load_sample_image(reserved)


def test_unknown_split_names_the_choices():
    with pytest.raises(ValueError, match=r"split='eval'.*'train', 'val', 'test', 'all'"):
        SampleImages("eval")


def test_camera_at_half_size_is_the_2x2_block_mean():
    # camera is 512x512 grey; crop to 256x256 = an exact 2x downscale (INTER_AREA = block mean).
    raw = load_sample_image("camera").astype(np.float64) / 255
    expected = raw.reshape(256, 2, 256, 2).mean(axis=(1, 3))
    item = SampleImages(["camera"], size=(256, 256))[0]
    assert item["ok"] and item["name"] == "camera" and item["path"] == "skimage.data:camera"
    np.testing.assert_allclose(item["image"][0].numpy(), expected, atol=1e-5)


def test_small_photographs_upscale_or_reject():
    assert SampleImages(["page"], size=(240, 320))[0]["image"].shape == (1, 240, 320)
    assert not SampleImages(["page"], size=(240, 320), small="reject")[0]["ok"]


def test_unknown_names_are_errors():
    with pytest.raises(ValueError, match="split='validation'"):
        SampleImages("validation")
    with pytest.raises(ValueError, match=r"unknown names \['lena'\]"):
        SampleImages(["camera", "lena"])
    with pytest.raises(ValueError, match="unknown sample image 'lena'"):
        load_sample_image("lena")


def test_write_sample_crops_is_deterministic_and_covers_each_photograph(tmp_path):
    from PIL import Image

    from pixelwise.data.sample_images import write_sample_crops

    paths = write_sample_crops(tmp_path / "a", ["camera", "coins"], per_image=3, size=(24, 32))
    again = write_sample_crops(tmp_path / "b", ["camera", "coins"], per_image=3, size=(24, 32))
    assert [p.name for p in paths] == [
        f"{n}_{k:03d}.png" for n in ("camera", "coins") for k in range(3)
    ]
    for p, q in zip(paths, again):
        a, b = np.asarray(Image.open(p)), np.asarray(Image.open(q))
        assert a.shape == (24, 32) and a.dtype == np.uint8 and np.array_equal(a, b)
    # Different random windows, not three copies of one.
    crops = [np.asarray(Image.open(p)) for p in paths[:3]]
    assert not np.array_equal(crops[0], crops[1]) and not np.array_equal(crops[1], crops[2])


def test_a_full_scale_crop_is_the_resized_photograph(tmp_path):
    import cv2
    from PIL import Image

    from pixelwise.data.images import to_gray_float
    from pixelwise.data.sample_images import write_sample_crops

    # camera is 512x512: at scale 1 and ratio 1 the window is the whole photograph.
    (path,) = write_sample_crops(tmp_path, ["camera"], per_image=1, size=(64, 64), min_scale=1.0)
    crop = np.asarray(Image.open(path)).astype(np.float32) / 255
    expected = cv2.resize(
        to_gray_float(load_sample_image("camera")), (64, 64), interpolation=cv2.INTER_AREA
    )
    assert np.abs(crop - expected).max() < 2 / 255


def test_write_sample_crops_bad_arguments(tmp_path):
    from pixelwise.data.sample_images import write_sample_crops

    with pytest.raises(ValueError, match="per_image=0"):
        write_sample_crops(tmp_path, per_image=0)
    with pytest.raises(ValueError, match="min_scale=0"):
        write_sample_crops(tmp_path, min_scale=0)
    with pytest.raises(ValueError, match=r"unknown photographs \['lena'\]"):
        write_sample_crops(tmp_path, ["lena"])
