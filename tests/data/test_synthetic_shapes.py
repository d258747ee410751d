"""SyntheticShapes dataset: determinism, item contract, homographic warping conventions, mix, bad input."""

import math

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from pixelwise.data.synthetic_shapes import (
    HOMOGRAPHY_PARAMS,
    PRIMITIVE_WEIGHTS,
    PRIMITIVES,
    SyntheticShapes,
    warp_image_and_points,
)
from pixelwise.geometry.homography import sample_homography_np

H, W = 120, 160


def _same(a: dict, b: dict) -> bool:
    return (
        torch.equal(a["image"], b["image"])
        and torch.equal(a["keypoints"], b["keypoints"])
        and torch.equal(a["valid_mask"], b["valid_mask"])
        and a["primitive"] == b["primitive"]
    )


class TestItems:
    def test_item_contract(self):
        ds = SyntheticShapes(length=30, seed=3)
        for i in range(len(ds)):
            item = ds[i]
            img, kp, valid = item["image"], item["keypoints"], item["valid_mask"]
            assert img.shape == (1, H, W) and img.dtype == torch.float32
            assert 0.0 <= img.min() and img.max() <= 1.0
            assert kp.ndim == 2 and kp.shape[1] == 2 and kp.dtype == torch.float32
            assert valid.shape == (H, W) and valid.dtype == torch.bool
            assert item["primitive"] in PRIMITIVES

    def test_points_in_bounds_and_on_valid_pixels(self):
        ds = SyntheticShapes(
            length=80, seed=5, primitives=["draw_checkerboard", "draw_cube", "draw_lines"]
        )
        n_points = n_partial = 0
        for i in range(len(ds)):
            item = ds[i]
            kp, valid = item["keypoints"].numpy(), item["valid_mask"].numpy()
            assert np.all(
                (kp[:, 0] >= 0) & (kp[:, 0] <= W - 1) & (kp[:, 1] >= 0) & (kp[:, 1] <= H - 1)
            )
            assert valid[np.rint(kp[:, 1]).astype(int), np.rint(kp[:, 0]).astype(int)].all()
            n_points += len(kp)
            n_partial += not valid.all()
        assert n_points > 300
        assert n_partial > len(ds) // 2  # patch ratio 0.8 with artifacts: most warps show a border

    def test_without_homography_the_mask_is_full_and_points_match_the_clean_item(self):
        clean = SyntheticShapes(length=20, seed=1, photometric=False, homographic=False)
        photo = SyntheticShapes(length=20, seed=1, photometric=True, homographic=False)
        for i in range(len(clean)):
            a, b = clean[i], photo[i]
            assert a["valid_mask"].all() and b["valid_mask"].all()
            # Same shape (drawn first), photometric changes only the pixels.
            assert torch.equal(a["keypoints"], b["keypoints"]) and a["primitive"] == b["primitive"]
        assert not torch.equal(clean[0]["image"], photo[0]["image"])

    def test_homography_does_not_depend_on_photometric(self):
        # Random draws: shape, then homography, then photometric. A bright-pixel probe is not
        # possible here, so compare the warped keypoints.
        a = SyntheticShapes(length=10, seed=2, photometric=False, primitives=["draw_checkerboard"])
        b = SyntheticShapes(length=10, seed=2, photometric=True, primitives=["draw_checkerboard"])
        for i in range(len(a)):
            item_a, item_b = a[i], b[i]
            assert torch.equal(item_a["keypoints"], item_b["keypoints"])
            assert torch.equal(item_a["valid_mask"], item_b["valid_mask"])

    def test_add_noise_override(self):
        clean = SyntheticShapes(length=5, photometric=False, homographic=False)
        forced = SyntheticShapes(length=5, photometric=False, homographic=False, add_noise=True)
        off = SyntheticShapes(length=5, photometric=False, homographic=False, add_noise=False)
        img_clean, img_forced = clean[0]["image"], forced[0]["image"]
        assert torch.equal(off[0]["image"], img_clean)
        diff = (img_forced - img_clean).flatten()
        # Only the noise operations: zero-mean Gaussian noise (+ rare speckles), no brightness shift.
        assert diff.abs().max() > 0
        assert abs(float(diff.median())) < 2 / 255
        assert float(diff.std()) <= 15 / 255 * 1.2 + 0.05  # sigma <= 15/255 plus speckles

    def test_negative_index_and_out_of_range(self):
        ds = SyntheticShapes(length=4)
        assert _same(ds[-1], ds[3])
        with pytest.raises(IndexError, match="out of range"):
            ds[4]


class TestDeterminism:
    def test_same_seed_split_index_same_item(self):
        a = SyntheticShapes(length=12, seed=7)
        b = SyntheticShapes(length=12, seed=7)
        for i in [0, 5, 11, 5]:
            assert _same(a[i], b[i])

    def test_order_does_not_matter(self):
        ds = SyntheticShapes(length=6, seed=1)
        forward = [ds[i] for i in range(6)]
        backward = [ds[i] for i in reversed(range(6))][::-1]
        assert all(_same(x, y) for x, y in zip(forward, backward, strict=True))

    def test_splits_and_seeds_are_different_streams(self):
        train, val = (
            SyntheticShapes(length=3, split="train"),
            SyntheticShapes(length=3, split="val"),
        )
        test, other = (
            SyntheticShapes(length=3, split="test"),
            SyntheticShapes(length=3, split="train", seed=1),
        )
        imgs = [d[0]["image"] for d in (train, val, test, other)]
        for i in range(4):
            for j in range(i + 1, 4):
                assert not torch.equal(imgs[i], imgs[j])

    def test_dataloader_workers_give_the_same_items(self):
        ds = SyntheticShapes(length=8, seed=4)
        loaders = [DataLoader(ds, batch_size=None, num_workers=n) for n in (0, 2)]
        a, b = (list(loader) for loader in loaders)
        assert len(a) == len(b) == 8
        assert all(_same(x, y) for x, y in zip(a, b, strict=True))


class TestMix:
    def test_primitive_of_matches_items(self):
        ds = SyntheticShapes(length=20, seed=9)
        for i in range(0, 20, 3):
            assert ds.primitive_of(i) == ds[i]["primitive"]

    def test_reference_mix_frequencies(self):
        n = 2000
        ds = SyntheticShapes(length=n, seed=0)
        names = [ds.primitive_of(i) for i in range(n)]
        total = sum(PRIMITIVE_WEIGHTS.values())
        for name in PRIMITIVES:
            p = PRIMITIVE_WEIGHTS[name] / total  # 1/6.6 for most, 0.3/6.6 ellipses, ...
            count = names.count(name)
            assert abs(count - n * p) <= 4 * math.sqrt(n * p * (1 - p)) + 1, (name, count, n * p)
        # The rare ones are rarer than the others.
        assert (
            names.count("gaussian_noise")
            < names.count("draw_stripes")
            < names.count("draw_ellipses")
        )
        assert names.count("draw_ellipses") < min(
            names.count(p) for p in ["draw_lines", "draw_cube"]
        )

    def test_restricted_primitives(self):
        ds = SyntheticShapes(length=200, primitives=["draw_star", "gaussian_noise"])
        names = {ds.primitive_of(i) for i in range(200)}
        assert names == {"draw_star", "gaussian_noise"}
        single = SyntheticShapes(length=20, primitives="draw_cube")
        assert {single.primitive_of(i) for i in range(20)} == {"draw_cube"}


class TestBadArguments:
    def test_unknown_primitive_lists_the_valid_ones(self):
        with pytest.raises(ValueError, match="draw_circles") as info:
            SyntheticShapes(primitives=["draw_lines", "draw_circles"])
        assert "draw_checkerboard" in str(info.value) and "gaussian_noise" in str(info.value)
        with pytest.raises(ValueError, match="non-empty"):
            SyntheticShapes(primitives=[])

    @pytest.mark.parametrize("size", [(10, 160), (120,), "120x160", (120.5, 160), (0, 0), None])
    def test_bad_size(self, size):
        with pytest.raises(ValueError, match="size"):
            SyntheticShapes(size=size)

    def test_other_bad_arguments(self):
        with pytest.raises(ValueError, match="split"):
            SyntheticShapes(split="training")
        with pytest.raises(ValueError, match="length"):
            SyntheticShapes(length=-1)
        with pytest.raises(ValueError, match="add_noise"):
            SyntheticShapes(add_noise="yes")
        with pytest.raises(ValueError, match="homography_params.*rotate"):
            SyntheticShapes(homography_params={"rotate": True})

    def test_other_sizes_work(self):
        ds = SyntheticShapes(size=(64, 100), length=10)
        for i in range(10):
            item = ds[i]
            assert item["image"].shape == (1, 64, 100)
            kp = item["keypoints"]
            assert (kp[:, 0] <= 99).all() and (kp[:, 1] <= 63).all()


def _bilinear(img: np.ndarray, x: float, y: float) -> float:
    """Naive bilinear sample of img at (x, y), 0 outside."""
    x0, y0 = math.floor(x), math.floor(y)
    total = 0.0
    for dy in (0, 1):
        for dx in (0, 1):
            xi, yi = x0 + dx, y0 + dy
            w = (1 - abs(x - xi)) * (1 - abs(y - yi))
            if 0 <= xi < img.shape[1] and 0 <= yi < img.shape[0]:
                total += w * img[yi, xi]
    return total


class TestHomographicWarp:
    @pytest.mark.parametrize(
        "hmat",
        [
            np.array([[1, 0, 7], [0, 1, -4], [0, 0, 1]], float),  # integer translation
            np.array([[0, -1, 100], [1, 0, 10], [0, 0, 1]], float),  # 90 degree rotation
            np.array([[-1, 0, W - 1], [0, 1, 0], [0, 0, 1]], float),  # horizontal flip
            np.array([[2, 0, -30], [0, 2, -20], [0, 0, 1]], float),  # 2x zoom
        ],
    )
    def test_single_bright_pixel_lands_on_the_warped_point(self, hmat):
        # B(H p) = A(p): the bright pixel p of A shows up at H p in B, exactly.
        img = np.zeros((H, W), np.float32)
        p = np.array([[40.0, 50.0]])
        img[50, 40] = 1.0
        warped, pts, _ = warp_image_and_points(img, p, hmat, border_margin=0)
        assert len(pts) == 1
        q = pts[0]
        assert q == pytest.approx(np.round(q))
        assert np.unravel_index(np.argmax(warped), warped.shape) == (int(q[1]), int(q[0]))
        assert warped[int(q[1]), int(q[0])] == pytest.approx(1.0, abs=1e-3)

    def test_warp_matches_naive_inverse_mapping(self):
        rng = np.random.default_rng(0)
        img = cv2.GaussianBlur(rng.random((H, W)).astype(np.float32), (0, 0), 2.0)
        hmat = sample_homography_np(rng, (H, W), **HOMOGRAPHY_PARAMS)
        warped, _, valid = warp_image_and_points(img, np.empty((0, 2)), hmat, border_margin=0)
        inv = np.linalg.inv(hmat)
        for y, x in rng.integers(0, [H, W], size=(300, 2)):
            sx, sy, sw = inv @ [x, y, 1.0]
            sx, sy = sx / sw, sy / sw
            # cv2 quantises source positions to 1/32 px: compare to the naive bilinear sample.
            assert warped[y, x] == pytest.approx(_bilinear(img, sx, sy), abs=0.02)
            inside = -0.5 <= sx < W - 0.5 and -0.5 <= sy < H - 0.5
            near_edge = (
                min(abs(sx + 0.5), abs(sx - W + 0.5), abs(sy + 0.5), abs(sy - H + 0.5)) < 0.05
            )
            if not near_edge:
                assert valid[y, x] == inside

    def test_valid_mask_erosion_is_a_disk(self):
        hmat = np.array(
            [[1, 0, 20], [0, 1, 0], [0, 0, 1]], float
        )  # columns 0..19 come from outside
        _, _, valid0 = warp_image_and_points(np.ones((H, W), np.float32), np.empty((0, 2)), hmat, 0)
        _, _, valid3 = warp_image_and_points(np.ones((H, W), np.float32), np.empty((0, 2)), hmat, 3)
        assert valid0[:, :20].sum() == 0 and valid0[:, 20:].all()
        # Naive erosion: a pixel stays valid iff every pixel within distance 3 inside the image is
        # valid (columns 0-39 by loop; the erosion cannot reach further).
        naive = np.ones((H, W), bool)
        for y in range(H):
            for x in range(40):
                for dy in range(-3, 4):
                    for dx in range(-3, 4):
                        yy, xx = y + dy, x + dx
                        if (
                            dx * dx + dy * dy <= 9
                            and 0 <= yy < H
                            and 0 <= xx < W
                            and not valid0[yy, xx]
                        ):
                            naive[y, x] = False
        np.testing.assert_array_equal(valid3, naive)
        assert valid3[:, 23].all() and not valid3[:, 22].any()

    def test_points_leaving_the_valid_region_are_dropped(self):
        hmat = np.array([[1, 0, 20], [0, 1, 0], [0, 0, 1]], float)
        pts = np.array(
            [[0.0, 10.0], [1.0, 10.0], [3.0, 10.0], [139.0, 10.0], [140.0, 10.0], [10.0, 119.0]]
        )
        _, out, _ = warp_image_and_points(np.zeros((H, W), np.float32), pts, hmat, 3)
        # x + 20: 20 and 21 fall in the eroded margin (x < 23), 160 leaves the image.
        np.testing.assert_allclose(out, [[23.0, 10.0], [159.0, 10.0], [30.0, 119.0]])


class TestHomographyOfItems:
    def test_items_are_warped_by_the_project_sampler(self, monkeypatch):
        # One sampler: an item's H is pixelwise.geometry.homography.sample_homography_np's with
        # HOMOGRAPHY_PARAMS, and its points are the clean item's points warped by that H.
        import pixelwise.data.synthetic_shapes as module

        drawn = []

        def recording(rng, shape, **params):
            drawn.append((shape, params, sample_homography_np(rng, shape, **params)))
            return drawn[-1][2]

        monkeypatch.setattr(module, "sample_homography_np", recording)
        kwargs = dict(length=6, seed=11, photometric=False, primitives=["draw_checkerboard"])
        warped = SyntheticShapes(**kwargs)
        clean = SyntheticShapes(homographic=False, **kwargs)
        kept = 0
        for i in range(len(warped)):
            points = warped[i]["keypoints"].numpy()
            shape, params, hmat = drawn[-1]
            assert shape == (H, W) and params == HOMOGRAPHY_PARAMS
            source = clean[i]["keypoints"].numpy().astype(np.float64)
            proj = np.c_[source, np.ones(len(source))] @ hmat.T
            expected = proj[:, :2] / proj[:, 2:]
            for q in points:
                assert np.abs(expected - q).max(axis=1).min() < 1e-3
            kept += len(points)
        assert kept > 0
