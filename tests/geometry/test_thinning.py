"""Tests of pixelwise.geometry.thinning: bwmorph-thin against skimage (its replica), edge NMS against a loop rewrite of edgesNmsMex."""

import math

import numpy as np
import pytest
import torch
from skimage.morphology import thin as sk_thin
from skimage.morphology._skeletonize import G123_LUT, G123P_LUT

from pixelwise.geometry.thinning import (
    edge_nms,
    edge_orientation,
    thin,
    thin_levels,
    thinning_tables,
)


class TestThin:
    def test_tables_are_skimage_tables(self):
        t1, t2 = thinning_tables()
        np.testing.assert_array_equal(t1, G123_LUT)
        np.testing.assert_array_equal(t2, G123P_LUT)

    def test_published_example(self):
        # scikit-image's documented example of thin(): a 5x3 block with a one-pixel tail.
        square = np.zeros((7, 7), dtype=bool)
        square[1:-1, 2:-2] = True
        square[0, 1] = True
        expected = np.zeros((7, 7), dtype=bool)
        expected[[0, 1, 2, 3, 4], [1, 2, 3, 3, 3]] = True
        np.testing.assert_array_equal(thin(torch.from_numpy(square)).numpy(), expected)

    def test_ring_keeps_its_hole(self):
        ring = np.zeros((9, 9), dtype=bool)
        ring[1:8, 1:8] = True
        ring[4, 4] = False
        out = thin(torch.from_numpy(ring)).numpy()
        # Euler number kept: the thinnest closed curve around the hole, its four 4-neighbours
        expected = np.zeros((9, 9), dtype=bool)
        expected[[3, 4, 4, 5], [4, 3, 5, 4]] = True
        np.testing.assert_array_equal(out, expected)
        np.testing.assert_array_equal(out, sk_thin(ring))

    @pytest.mark.parametrize("seed", range(6))
    def test_random_maps_equal_skimage(self, seed):
        rng = np.random.default_rng(seed)
        for _ in range(40):
            h, w = rng.integers(1, 40, size=2)
            m = rng.random((h, w)) < rng.uniform(0.1, 0.95)
            np.testing.assert_array_equal(thin(torch.from_numpy(m)).numpy(), sk_thin(m))

    def test_batch_shape_and_idempotence(self):
        rng = np.random.default_rng(7)
        m = torch.from_numpy(rng.random((2, 3, 15, 17)) < 0.6)
        out = thin(m)
        assert out.shape == m.shape and out.dtype == torch.bool
        np.testing.assert_array_equal(out[1, 2].numpy(), sk_thin(m[1, 2].numpy()))
        assert torch.equal(thin(out), out)

    def test_bad_input(self):
        with pytest.raises(TypeError, match="bool"):
            thin(torch.zeros(4, 4))
        with pytest.raises(ValueError, match=r"\[\.\.\., H, W\]"):
            thin(torch.zeros(4, dtype=torch.bool))


class TestThinLevels:
    def test_every_level_equals_skimage(self):
        rng = np.random.default_rng(3)
        soft = np.clip(
            rng.random((30, 41)) * 0.6 + np.sin(np.arange(41) / 3.0)[None] ** 2 * 0.5, 0, 1
        )
        thr = np.linspace(0.05, 0.95, 19)
        levels = np.searchsorted(thr, soft, side="right")
        ptr, pix = thin_levels(levels, len(thr))
        for i, t in enumerate(thr):
            np.testing.assert_array_equal(
                np.sort(pix[ptr[i] : ptr[i + 1]]), np.flatnonzero(sk_thin(soft >= t))
            )
        ptr0, pix0 = thin_levels(levels, len(thr), do_thin=False)
        for i, t in enumerate(thr):
            np.testing.assert_array_equal(
                np.sort(pix0[ptr0[i] : ptr0[i + 1]]), np.flatnonzero(soft >= t)
            )

    def test_many_levels_and_threads(self):
        # 130 levels span three 64-bit words, thinned in two threads.
        rng = np.random.default_rng(4)
        soft = np.clip(rng.normal(0.4, 0.3, (25, 33)), 0, 1)
        thr = np.linspace(0.005, 0.995, 130)
        levels = np.searchsorted(thr, soft, side="right")
        ptr1, pix1 = thin_levels(levels, 130)
        ptr2, pix2 = thin_levels(levels, 130, num_threads=2)
        np.testing.assert_array_equal(ptr1, ptr2)
        np.testing.assert_array_equal(pix1, pix2)
        for i in (0, 63, 64, 100, 127, 129):
            np.testing.assert_array_equal(
                np.sort(pix1[ptr1[i] : ptr1[i + 1]]), np.flatnonzero(sk_thin(soft >= thr[i]))
            )

    def test_empty_and_full(self):
        ptr, pix = thin_levels(np.zeros((5, 6), np.int32), 3)
        assert ptr.tolist() == [0, 0, 0, 0] and pix.size == 0
        ptr, pix = thin_levels(np.full((5, 6), 3, np.int32), 3)
        for i in range(3):
            np.testing.assert_array_equal(
                np.sort(pix[ptr[i] : ptr[i + 1]]), np.flatnonzero(sk_thin(np.ones((5, 6), bool)))
            )

    def test_bad_input(self):
        with pytest.raises(ValueError, match=r"levels \[H, W\]"):
            thin_levels(np.zeros(5, np.int32), 2)


# ---- loop rewrite of Dollar's edgesNmsMex.cpp (column-major x = column, y = row) ----
def ref_interp(img, h, w, x, y):
    x = np.float32(0 if x < 0 else (w - 1.001 if x > w - 1.001 else x))
    y = np.float32(0 if y < 0 else (h - 1.001 if y > h - 1.001 else y))
    x0, y0 = int(x), int(y)
    dx0, dy0 = np.float32(x - x0), np.float32(y - y0)
    dx1, dy1 = np.float32(1) - dx0, np.float32(1) - dy0
    return (
        img[y0, x0] * dx1 * dy1
        + img[y0, x0 + 1] * dx0 * dy1
        + img[y0 + 1, x0] * dx1 * dy0
        + img[y0 + 1, x0 + 1] * dx0 * dy0
    )


def ref_nms(e0, o, r, s, m):
    h, w = e0.shape
    e = e0.copy()
    for x in range(w):
        for y in range(h):
            v = e0[y, x]
            if not v:
                continue
            v = v * np.float32(m)
            c, sn = np.float32(math.cos(o[y, x])), np.float32(math.sin(o[y, x]))
            for d in range(-r, r + 1):
                if d and v < ref_interp(e0, h, w, np.float32(x + d * c), np.float32(y + d * sn)):
                    e[y, x] = 0
                    break
    s = min(s, w // 2, h // 2)
    for x in range(s):
        e[:, x] *= np.float32(x / s)
        e[:, w - 1 - x] *= np.float32(x / s)
    for y in range(s):
        e[y, :] *= np.float32(y / s)
        e[h - 1 - y, :] *= np.float32(y / s)
    return e


def conv_tri_ref(img, r):
    f = np.array(list(range(1, r + 2)) + list(range(r, 0, -1)), np.float64) / (r + 1) ** 2
    p = np.pad(img.astype(np.float64), r, mode="symmetric")
    rows = np.stack([np.convolve(row, f, mode="valid") for row in p])
    return np.stack([np.convolve(col, f, mode="valid") for col in rows.T]).T


class TestEdgeNms:
    def test_matches_loop_reference(self):
        rng = np.random.default_rng(0)
        yy, xx = np.mgrid[0:24, 0:31]
        soft = np.exp(-((xx - 0.6 * yy - 6) ** 2) / 6.0) + 0.15 * rng.random((24, 31))
        soft = (soft / soft.max()).astype(np.float32)
        e = conv_tri_ref(soft, 1).astype(np.float32)
        expected = ref_nms(e, edge_orientation(e), 1, 5, 1.01)
        expected = np.floor(np.clip(expected, 0, 1) * 255 + 0.5) / 255
        got = edge_nms(torch.from_numpy(soft)).numpy()
        np.testing.assert_allclose(got, expected, atol=1.5 / 255)
        assert np.mean(np.abs(got - expected) > 0.5 / 255) < 0.01

    def test_vertical_ridge_becomes_one_pixel_wide(self):
        x = np.arange(40)
        soft = np.tile(np.exp(-((x - 20.3) ** 2) / 4.0), (30, 1)).astype(np.float32)
        out = edge_nms(torch.from_numpy(soft), quantize=False).numpy()
        inner = out[6:-6]
        assert (inner[:, 20] > 0.5).all()
        assert (inner[:, [18, 19, 21, 22]] == 0).all()
        # border fade: row y < 5 is scaled by y / 5
        np.testing.assert_allclose(out[2, 20], out[15, 20] * 2 / 5, rtol=1e-5)

    def test_orientation_of_diagonal_ridge(self):
        yy, xx = np.mgrid[0:41, 0:41]
        soft = np.exp(-((xx - yy) ** 2) / 8.0).astype(np.float32)
        o = edge_orientation(soft)
        # ridge along (1, 1): normal along (1, -1), i.e. 3*pi/4 in [0, pi)
        assert abs(float(o[20, 20]) - 3 * math.pi / 4) < 0.05

    def test_conv_tri_symmetric_padding(self):
        from pixelwise.geometry.thinning import _conv_tri

        img = np.random.default_rng(1).random((9, 12)).astype(np.float32)
        np.testing.assert_allclose(_conv_tri(img, 4), conv_tri_ref(img, 4), atol=1e-6)

    def test_bad_input(self):
        with pytest.raises(ValueError, match="float tensor"):
            edge_nms(torch.zeros(5, 5, dtype=torch.uint8))


def test_numpy_cores_match_the_tensor_api_for_any_memory_layout():
    from pixelwise.geometry.thinning import edge_nms, edge_nms_maps, thin, thin_maps

    rng = np.random.default_rng(3)
    masks = rng.random((2, 20, 24)) > 0.4
    soft = rng.random((2, 20, 24)).astype(np.float32)
    fortran_masks = np.asfortranarray(masks)
    assert not fortran_masks.flags.c_contiguous
    np.testing.assert_array_equal(thin_maps(fortran_masks), thin(torch.from_numpy(masks)).numpy())
    np.testing.assert_array_equal(
        edge_nms_maps(np.asfortranarray(soft)), edge_nms(torch.from_numpy(soft)).numpy()
    )
    assert not np.array_equal(thin_maps(masks), masks)  # it thinned something
