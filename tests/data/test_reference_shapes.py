"""The reference-recipe Synthetic Shapes renderer, its cache, and SyntheticShapes(renderer="reference")."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pixelwise.data import reference_shapes as ref
from pixelwise.data import shape_primitives as sp
from pixelwise.data.shape_cache import ShapeCache
from pixelwise.data.synthetic_shapes import SyntheticShapes
from pixelwise.errors import UnreadableFileError


def test_points_follow_the_resize_onto_pixel_centres(monkeypatch):
    """A white quadrant from canvas pixel (x0, y0): its corner point maps to (p + 0.5) / 8 - 0.5
    and the image's half-intensity edge to the canvas edge x0 - 0.5 mapped the same way."""
    x0, y0 = 533, 301

    def quadrant(img, rng):
        img[:] = 0
        img[y0:, x0:] = 255
        return np.array([[x0, y0]])

    monkeypatch.setitem(ref.REFERENCE_DRAW_FUNCTIONS, "draw_polygon", quadrant)
    image, points = ref.render_reference_shape(np.random.default_rng(0), "draw_polygon")
    assert image.dtype == np.uint8 and image.shape == (120, 160)
    np.testing.assert_allclose(points, [[(x0 + 0.5) / 8 - 0.5, (y0 + 0.5) / 8 - 0.5]])
    row = image[100].astype(np.float64)
    k = int(np.argmax(row >= 127.5))  # first pixel at or above half intensity
    crossing = k - 1 + (127.5 - row[k - 1]) / (row[k] - row[k - 1])
    # Linear interpolation across a ~1-px-wide blurred edge is good to < 0.1 px; the other
    # convention (points * s) would be 0.44 px off.
    assert crossing == pytest.approx(x0 / 8 - 0.5, abs=0.1)


def test_texture_on_the_padded_box_equals_the_full_canvas_texture():
    """_custom_texture draws only what reaches the polygon's box; inside the box it must equal
    the reference's full-canvas texture made from the same random draws."""
    canvas = np.zeros((960, 1280), np.uint8)
    box = (700, 200, 900, 420)
    texture, tx, ty = ref._custom_texture(np.random.default_rng(5), canvas, 90, box)
    # The same draws, in the same order, on the whole canvas (the reference's way).
    rng = np.random.default_rng(5)
    full = np.full(canvas.shape, ref._random_color(rng, 90), np.uint8)
    xs, ys = rng.integers(0, 1280, 3000), rng.integers(0, 960, 3000)
    colors = ref._random_colors(rng, 90, 3000)
    radii = rng.integers(20, size=3000)
    kernel = int(rng.integers(50, 100))
    for x, y, c, r in zip(xs.tolist(), ys.tolist(), colors.tolist(), radii.tolist(), strict=True):
        cv2.circle(full, (x, y), r, c, -1)
    full = cv2.blur(full, (kernel, kernel))
    x0, y0, x1, y1 = box
    np.testing.assert_array_equal(texture[y0 - ty : y1 - ty, x0 - tx : x1 - tx], full[y0:y1, x0:x1])


@pytest.mark.parametrize("primitive", list(ref.REFERENCE_DRAW_FUNCTIONS))
def test_each_primitive_gives_points_inside_and_in_its_count_range(primitive):
    counts = []
    for seed in range(6):
        image, points = ref.render_reference_shape(np.random.default_rng(seed), primitive)
        assert image.shape == (120, 160) and points.shape[1] == 2
        assert (points >= 0).all() and (points[:, 0] <= 159).all() and (points[:, 1] <= 119).all()
        counts.append(len(points))
    low, high = {
        "draw_lines": (2, 18),
        "draw_polygon": (3, 7),
        "draw_multiple_polygons": (3, 30 * 7),
        "draw_ellipses": (0, 0),
        "draw_star": (1, 6),
        "draw_checkerboard": (1, 49),
        "draw_stripes": (0, 26),  # the board is larger than the image: corners may all be outside
        "draw_cube": (1, 7),
        "gaussian_noise": (0, 0),
    }[primitive]
    assert all(low <= c <= high for c in counts), counts


def _segments_cross(p1, p2, q1, q2) -> bool:
    def orient(a, b, c):
        return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])

    d1, d2 = orient(q1, q2, p1), orient(q1, q2, p2)
    d3, d4 = orient(p1, p2, q1), orient(p1, p2, q2)
    return d1 * d2 < 0 and d3 * d4 < 0


@pytest.mark.parametrize("seed", range(10))
def test_lines_never_cross_and_star_starts_at_its_centre(seed):
    img = ref.generate_reference_background(np.random.default_rng(seed))
    ends = ref.draw_lines(img, np.random.default_rng(seed)).reshape(-1, 2, 2)
    for i in range(len(ends)):
        for j in range(i):
            assert not _segments_cross(*ends[i], *ends[j])
    star = ref.draw_star(img, np.random.default_rng(seed))
    centre = star[0]
    assert 4 <= len(star) <= 6 and all(np.hypot(*(p - centre)) > 0 for p in star[1:])


def test_both_renderers_read_the_same_generation_parameters():
    """One parameter object drives the fast and the reference checkerboard alike."""
    small = sp.CheckerboardParams(max_rows=4, max_cols=4)  # always 3 x 3 cells: <= 4 x 4 corners
    counts: dict[str, list[int]] = {"fast": [], "reference": [], "default": []}
    for seed in range(6):
        canvas = sp.ShapeCanvas(sp.draw_background(np.random.default_rng(seed), 120, 160))
        counts["fast"].append(len(sp.draw_checkerboard(canvas, np.random.default_rng(seed), small)))
        img = ref.generate_reference_background(np.random.default_rng(seed), (240, 320))
        counts["reference"].append(
            len(ref.draw_checkerboard(img, np.random.default_rng(seed), small))
        )
        counts["default"].append(len(ref.draw_checkerboard(img, np.random.default_rng(seed))))
    assert 0 < min(counts["fast"]) and max(counts["fast"]) <= 16
    assert 0 < min(counts["reference"]) and max(counts["reference"]) <= 16
    assert max(counts["default"]) > 16  # the default (up to 6 x 6 cells) is not the small one


def test_background_is_smooth_grey():
    img = ref.generate_reference_background(np.random.default_rng(0))
    assert img.shape == (960, 1280) and img.dtype == np.uint8
    # Box blur of at least 150 px: neighbouring pixels differ by a grey level or two at most.
    assert np.abs(np.diff(img.astype(int), axis=1)).max() <= 3


def test_unknown_primitive():
    with pytest.raises(ValueError, match="primitive: expected one of"):
        ref.render_reference_shape(np.random.default_rng(0), "draw_circle")


class TestDatasetWithReferenceRenderer:
    def test_items_cycle_over_num_shapes_with_fresh_augmentation(self):
        ds = SyntheticShapes(length=12, num_shapes=4, seed=3)
        clean = SyntheticShapes(
            length=12, num_shapes=4, seed=3, photometric=False, homographic=False
        )
        a, b = clean.generate(1), clean.generate(5)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
        assert a[3] == b[3] == ds.primitive_of(9)
        # Same shape, different augmentation.
        assert not np.array_equal(ds.generate(1)[0], ds.generate(5)[0])
        # The clean shape does not depend on the augmentation switches.
        np.testing.assert_array_equal(
            SyntheticShapes(length=12, num_shapes=4, seed=3, homographic=False).generate(2)[1],
            clean.generate(2)[1],
        )

    def test_cache_gives_the_same_items_and_is_reused(self, tmp_path):
        kwargs = dict(length=10, num_shapes=5, seed=1, split="val")
        plain = SyntheticShapes(**kwargs)
        cached = SyntheticShapes(cache_dir=str(tmp_path), **kwargs)
        (directory,) = tmp_path.iterdir()
        assert sorted(p.name for p in directory.iterdir()) == [
            "images.npy",
            "offsets.npy",
            "points.npy",
            "primitives.npy",
        ]
        for i in range(10):
            x, y = plain[i], cached[i]
            assert x["primitive"] == y["primitive"] == cached.primitive_of(i)
            assert np.array_equal(x["image"].numpy(), y["image"].numpy())
            np.testing.assert_allclose(x["keypoints"].numpy(), y["keypoints"].numpy(), atol=1e-5)
        stamp = (directory / "images.npy").stat().st_mtime_ns
        SyntheticShapes(cache_dir=str(tmp_path), **kwargs)
        assert (directory / "images.npy").stat().st_mtime_ns == stamp
        # Another seed is another cache.
        SyntheticShapes(cache_dir=str(tmp_path), **{**kwargs, "seed": 2})
        assert len(list(tmp_path.iterdir())) == 2

    def test_corrupt_cache_says_what_to_delete(self, tmp_path):
        SyntheticShapes(length=3, split="val", cache_dir=str(tmp_path))
        (directory,) = tmp_path.iterdir()
        (directory / "offsets.npy").write_bytes(b"not numpy")
        with pytest.raises(UnreadableFileError, match=f"{directory}.*delete it to rebuild"):
            SyntheticShapes(length=3, split="val", cache_dir=str(tmp_path))

    def test_cache_of_the_wrong_shape_is_refused(self, tmp_path):
        ShapeCache(
            tmp_path / "c", 2, (8, 8), lambda i: (np.zeros((8, 8), np.uint8), np.zeros((1, 2)), 0)
        )
        with pytest.raises(
            UnreadableFileError, match=r"holds images \(2, 8, 8\), expected \(3, 8, 8\)"
        ):
            ShapeCache(
                tmp_path / "c",
                3,
                (8, 8),
                lambda i: (np.zeros((8, 8), np.uint8), np.zeros((1, 2)), 0),
            )

    @pytest.mark.parametrize(
        "kwargs, match",
        [
            ({"renderer": "opencv"}, r"renderer: expected one of \['reference', 'fast'\]"),
            ({"num_shapes": 0}, "num_shapes: expected a positive int"),
            ({"renderer": "fast", "num_shapes": 5}, "apply to renderer='reference' only"),
        ],
    )
    def test_bad_arguments(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            SyntheticShapes(length=4, **kwargs)
