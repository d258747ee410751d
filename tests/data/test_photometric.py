"""Photometric augmentation: each operation's effect on hand-made images, reproducibility, switches."""

import numpy as np
import pytest

from pixelwise.data import photometric as ph

H, W = 120, 160


def _ramp() -> np.ndarray:
    return np.tile(np.linspace(0.3, 0.7, W, dtype=np.float32), (H, 1))


class Fixed:
    """A stand-in generator whose scalar draws are chosen by the test (arrays delegate to numpy)."""

    def __init__(self, uniform: float) -> None:
        self._u = uniform
        self._rng = np.random.default_rng(0)

    def uniform(self, low: float, high: float, size=None):  # noqa: ANN001, ANN201
        return low + self._u * (high - low)

    def __getattr__(self, name: str):  # noqa: ANN204
        return getattr(self._rng, name)


def test_brightness_adds_a_constant_and_clips():
    img = _ramp()
    out = ph.random_brightness(img, Fixed(1.0))  # +75/255
    np.testing.assert_allclose(out, np.clip(img + 75 / 255, 0, 1), atol=1e-6)
    out = ph.random_brightness(np.full((4, 4), 0.1, np.float32), Fixed(0.0))  # -75/255
    np.testing.assert_allclose(out, 0.0)


def test_contrast_scales_deviations_from_the_mean():
    img = _ramp()
    out = ph.random_contrast(img, Fixed(1.0))  # factor 1.8
    np.testing.assert_allclose(out, np.clip((img - img.mean()) * 1.8 + img.mean(), 0, 1), atol=1e-5)
    out = ph.random_contrast(img, Fixed(0.0))  # factor 0.3
    assert out.mean() == pytest.approx(img.mean(), abs=1e-5)
    assert out.std() == pytest.approx(0.3 * img.std(), rel=1e-4)


def test_gaussian_noise_has_the_drawn_sigma():
    img = np.full((H, W), 0.5, np.float32)
    out = ph.additive_gaussian_noise(img, Fixed(1.0))  # sigma = 15/255
    assert (out - img).mean() == pytest.approx(0.0, abs=0.002)
    assert (out - img).std() == pytest.approx(15 / 255, rel=0.05)
    assert ph.additive_gaussian_noise(img, Fixed(0.0)).std() == 0.0


def test_speckle_sets_a_fraction_to_black_and_white():
    img = np.full((H, W), 0.5, np.float32)
    out = ph.additive_speckle_noise(img, Fixed(1.0))  # p = 0.0035 each
    n = H * W
    for value in (0.0, 1.0):
        count = int((out == value).sum())
        assert abs(count - n * 0.0035) < 5 * np.sqrt(n * 0.0035)
    assert ((out == 0.5) | (out == 0.0) | (out == 1.0)).all()


def test_shade_is_multiplicative_and_smooth():
    img = np.full((H, W), 0.5, np.float32)
    assert np.array_equal(ph.additive_shade(img, Fixed(0.5 / 1.3)), img)  # transparency 0
    out = ph.additive_shade(img, Fixed(1.0))  # transparency 0.8: darker under the ellipses
    assert out.max() <= 0.5 + 1e-6 and out.min() >= 0.5 * 0.2 - 1e-6 and out.min() < 0.45
    assert np.abs(np.diff(out, axis=1)).max() < 0.03  # blurred with sigma >= 7.8 px


def test_motion_blur_preserves_constants_and_blurs_along_a_line():
    rng = np.random.default_rng(0)
    const = np.full((H, W), 0.4, np.float32)
    np.testing.assert_allclose(ph.motion_blur(const, rng), 0.4, atol=1e-6)
    dot = np.zeros((31, 31), np.float32)
    dot[15, 15] = 1.0
    for seed in range(10):
        out = ph.motion_blur(dot, np.random.default_rng(seed))
        assert out.sum() == pytest.approx(1.0, abs=1e-5)
        support = np.argwhere(out > 1e-7) - 15
        assert len(support) <= 7
        # Horizontal, vertical or diagonal: the support is collinear through the centre.
        d = support[np.abs(support).sum(axis=1) > 0]
        if len(d):
            assert np.all(d[:, 0] * d[0, 1] == d[:, 1] * d[0, 0])


def test_switches():
    img = _ramp()
    assert ph.photometric_augment(img, np.random.default_rng(0), photometric=False) is img
    # Noise only: no brightness or contrast change, so the mean stays and the ramp survives.
    out = ph.photometric_augment(img, np.random.default_rng(1), photometric=False, add_noise=True)
    assert out.mean() == pytest.approx(img.mean(), abs=0.01)
    assert not np.array_equal(out, img)
    # Everything except the noise: deterministic-looking (no isolated 0/1 speckles in mid-grey).
    out = ph.photometric_augment(img, np.random.default_rng(2), photometric=True, add_noise=False)
    rough = np.abs(np.diff(out, axis=1)).max()
    assert rough < 0.05


def test_reproducible():
    img = _ramp()
    a = ph.photometric_augment(img, np.random.default_rng(3))
    b = ph.photometric_augment(img, np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32 and a.shape == img.shape and 0 <= a.min() and a.max() <= 1
