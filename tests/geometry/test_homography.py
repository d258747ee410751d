"""Tests for pixelwise.geometry.homography."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from kornia.geometry.transform import warp_perspective

from pixelwise.geometry.homography import (
    SAMPLER_PARAMS,
    merge_homography_params,
    sample_homography,
    sample_homography_np,
    warp_images,
    warp_images_with_mask,
    warp_points,
    warp_valid_mask,
)

SHAPE = (24, 32)


def translation(tx: float, ty: float) -> torch.Tensor:
    return torch.tensor([[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]])


def frame_corners(shape):
    h, w = shape
    return torch.tensor([[0.0, 0.0], [0.0, h - 1.0], [w - 1.0, h - 1.0], [w - 1.0, 0.0]])


def mild_homographies(n: int, seed: int = 0) -> torch.Tensor:
    return sample_homography(n, SHAPE, generator=torch.Generator().manual_seed(seed))


class TestSampleHomography:
    def test_all_off_full_patch_is_identity(self):
        h = sample_homography(
            3,
            SHAPE,
            perspective=False,
            scaling=False,
            rotation=False,
            translation=False,
            patch_ratio=1.0,
        )
        assert torch.allclose(h, torch.eye(3).expand(3, 3, 3), atol=1e-5)

    def test_all_off_is_centred_zoom(self):
        # patch_ratio 0.5: the centred half-size patch fills B, x' = 2x - (W - 1) / 2 (hand-derived).
        height, width = SHAPE
        h = sample_homography(
            1,
            SHAPE,
            perspective=False,
            scaling=False,
            rotation=False,
            translation=False,
            patch_ratio=0.5,
        )[0]
        expected = torch.tensor(
            [[2.0, 0.0, -(width - 1) / 2], [0.0, 2.0, -(height - 1) / 2], [0.0, 0.0, 1.0]]
        )
        assert torch.allclose(h, expected, atol=1e-5)

    def test_patch_inside_image_without_artifacts(self):
        h = sample_homography(500, SHAPE, generator=torch.Generator().manual_seed(1))
        patch = warp_points(frame_corners(SHAPE), torch.linalg.inv(h.double()).float())
        height, width = SHAPE
        assert (patch[..., 0] >= -1e-3).all() and (patch[..., 0] <= width - 1 + 1e-3).all()
        assert (patch[..., 1] >= -1e-3).all() and (patch[..., 1] <= height - 1 + 1e-3).all()
        # ... so every pixel of the warped image comes from inside A.
        assert warp_valid_mask(SHAPE, h).all()

    def test_artifacts_allowed_leave_the_image(self):
        h = sample_homography(
            200,
            SHAPE,
            allow_artifacts=True,
            translation_overflow=0.2,
            patch_ratio=0.9,
            generator=torch.Generator().manual_seed(1),
        )
        assert not warp_valid_mask(SHAPE, h).all(dim=(1, 2)).all()

    def test_rotation_only_angles_from_the_grid(self):
        n_angles, max_angle = 9, math.pi / 4
        h = sample_homography(
            200,
            SHAPE,
            perspective=False,
            scaling=False,
            translation=False,
            n_angles=n_angles,
            max_angle=max_angle,
            patch_ratio=0.5,
            generator=torch.Generator().manual_seed(2),
        ).double()
        angles = torch.atan2(h[:, 1, 0], h[:, 0, 0])
        grid = torch.cat([torch.zeros(1), torch.linspace(-max_angle, max_angle, n_angles)]).double()
        assert (angles[:, None] - grid[None]).abs().min(dim=1).values.max() < 1e-4
        # A similarity of scale 1 / patch_ratio: no perspective, no shear.
        assert torch.allclose(h[:, 2, :2], torch.zeros(200, 2, dtype=torch.float64), atol=1e-9)
        assert torch.allclose(
            torch.linalg.det(h[:, :2, :2]), torch.full((200,), 4.0, dtype=torch.float64)
        )
        assert len(torch.unique(angles.round(decimals=4))) > 3

    def test_scaling_only_within_truncation(self):
        amp, ratio = 0.2, 0.5
        h = sample_homography(
            300,
            SHAPE,
            perspective=False,
            rotation=False,
            translation=False,
            scaling_amplitude=amp,
            patch_ratio=ratio,
            generator=torch.Generator().manual_seed(3),
        )
        scale = 1.0 / (h[:, 0, 0] * ratio)  # the patch's scale factor
        assert (scale >= 1 - amp - 1e-4).all() and (scale <= 1 + amp + 1e-4).all()
        assert scale.std() > 0.02
        assert torch.allclose(h[:, 0, 0], h[:, 1, 1])

    def test_translation_only_spans_the_margin(self):
        height, width = SHAPE
        ratio = 0.5
        h = sample_homography(
            400,
            SHAPE,
            perspective=False,
            scaling=False,
            rotation=False,
            patch_ratio=ratio,
            generator=torch.Generator().manual_seed(4),
        )
        # Patch top-left corner in A, in normalised units: uniform in [0, 1 - ratio].
        top_left = warp_points(frame_corners(SHAPE)[:1], torch.linalg.inv(h))[:, 0] / torch.tensor(
            [width - 1, height - 1]
        )
        assert (top_left >= -1e-4).all() and (top_left <= 1 - ratio + 1e-4).all()
        assert top_left.min() < 0.05 and top_left.max() > 1 - ratio - 0.05

    def test_generator_makes_it_deterministic(self):
        a = sample_homography(4, SHAPE, generator=torch.Generator().manual_seed(7))
        b = sample_homography(4, SHAPE, generator=torch.Generator().manual_seed(7))
        c = sample_homography(4, SHAPE, generator=torch.Generator().manual_seed(8))
        assert torch.equal(a, b)
        assert not torch.allclose(a, c)

    def test_batch_shape_and_dtype(self):
        h = sample_homography(5, SHAPE)
        assert h.shape == (5, 3, 3) and h.dtype == torch.float32
        assert torch.allclose(h[:, 2, 2], torch.ones(5))

    @pytest.mark.parametrize(
        ("kwargs", "name"),
        [
            ({"batch_size": 0}, "batch_size"),
            ({"shape": (0, 5)}, "shape"),
            ({"patch_ratio": 1.5}, "patch_ratio"),
            ({"scaling_amplitude": -0.1}, "scaling_amplitude"),
            ({"n_angles": 0}, "n_angles"),
        ],
    )
    def test_bad_input(self, kwargs, name):
        args = {"batch_size": 2, "shape": SHAPE, **kwargs}
        with pytest.raises(ValueError, match=name):
            sample_homography(**args)


class TorchDraws:
    """A numpy ``Generator`` stand-in whose ``random(size)`` returns a seeded torch generator's draws."""

    def __init__(self, seed: int) -> None:
        self.generator = torch.Generator().manual_seed(seed)

    def random(self, size):
        return torch.rand(size, generator=self.generator, dtype=torch.float64).numpy()


# The synthetic-shapes recipe (artifacts, overflow), the superpoint-pairs one, no artifacts, and
# single transforms: every branch of the sampler.
PARAM_SETS = [
    {},
    {"patch_ratio": 0.8, "max_angle": 1.57, "allow_artifacts": True, "translation_overflow": 0.05},
    {"scaling_amplitude": 0.5, "max_angle": 0.785, "allow_artifacts": True},
    {"perspective": False, "translation": False, "n_angles": 9, "patch_ratio": 0.5},
    {"rotation": False, "scaling_amplitude": 0.4, "n_scales": 3},
    {"perspective_amplitude_x": 0.0, "patch_ratio": 1.0},
]


class TestSampleHomographyNumpy:
    """The numpy path (data workers) is the same sampler: same draws and parameters, same matrix."""

    @pytest.mark.parametrize("params", PARAM_SETS)
    @pytest.mark.parametrize("shape", [SHAPE, (120, 160), (50, 50)])
    def test_same_draws_and_params_give_the_same_matrix(self, params, shape):
        for seed in range(20):
            torch_h = sample_homography(
                1, shape, generator=torch.Generator().manual_seed(seed), **params
            )[0]
            numpy_h = sample_homography_np(TorchDraws(seed), shape, **params)
            assert numpy_h.shape == (3, 3) and numpy_h.dtype == np.float64
            np.testing.assert_allclose(torch_h.numpy(), numpy_h, rtol=1e-6, atol=1e-6)

    def test_numpy_generator_makes_it_deterministic(self):
        for params in PARAM_SETS:
            a = sample_homography_np(np.random.default_rng(5), SHAPE, **params)
            b = sample_homography_np(np.random.default_rng(5), SHAPE, **params)
            np.testing.assert_array_equal(a, b)

    def test_all_off_is_centred_zoom_in_the_project_convention(self):
        # Pixel centres at integers; unit-square u is pixel u * (W - 1): the centred half-size
        # patch [(W-1)/4, 3(W-1)/4] fills B's frame [0, W-1], as in the torch path.
        height, width = SHAPE
        off = dict(perspective=False, scaling=False, rotation=False, translation=False)
        h = sample_homography_np(np.random.default_rng(0), SHAPE, patch_ratio=0.5, **off)
        expected = [[2.0, 0.0, -(width - 1) / 2], [0.0, 2.0, -(height - 1) / 2], [0.0, 0.0, 1.0]]
        np.testing.assert_allclose(h, expected, atol=1e-9)
        corners = np.array(
            [[(width - 1) / 4, (height - 1) / 4, 1], [3 * (width - 1) / 4, 3 * (height - 1) / 4, 1]]
        )
        np.testing.assert_allclose(
            corners @ h.T, [[0, 0, 1], [width - 1, height - 1, 1]], atol=1e-9
        )
        identity = sample_homography_np(np.random.default_rng(0), SHAPE, patch_ratio=1.0, **off)
        np.testing.assert_allclose(identity, np.eye(3), atol=1e-12)

    def test_without_artifacts_every_pixel_of_b_comes_from_a(self):
        rng = np.random.default_rng(1)
        h = torch.from_numpy(np.stack([sample_homography_np(rng, SHAPE) for _ in range(200)]))
        assert warp_valid_mask(SHAPE, h.float()).all()

    def test_defaults_and_parameters_are_the_torch_paths(self):
        # One declaration: SAMPLER_PARAMS are sample_homography's keywords and defaults.
        assert SAMPLER_PARAMS["patch_ratio"] == 0.85 and SAMPLER_PARAMS["max_angle"] == math.pi
        assert "generator" not in SAMPLER_PARAMS and "batch_size" not in SAMPLER_PARAMS
        np.testing.assert_allclose(
            sample_homography_np(TorchDraws(3), SHAPE),
            sample_homography(1, SHAPE, generator=torch.Generator().manual_seed(3))[0].numpy(),
            rtol=1e-6,
            atol=1e-6,
        )

    def test_bad_input(self):
        rng = np.random.default_rng(0)
        with pytest.raises(ValueError, match=r"sample_homography_np\.rotate is unknown"):
            sample_homography_np(rng, SHAPE, rotate=True)
        with pytest.raises(ValueError, match="shape"):
            sample_homography_np(rng, (0, 5))
        with pytest.raises(ValueError, match="patch_ratio"):
            sample_homography_np(rng, SHAPE, patch_ratio=0.0)

    def test_merge_homography_params(self):
        base = {"patch_ratio": 0.8, "allow_artifacts": True}
        merged = merge_homography_params(base, {"patch_ratio": 0.5}, "data.homography")
        assert merged == {"patch_ratio": 0.5, "allow_artifacts": True}
        assert merge_homography_params(base, None, "x") == base
        with pytest.raises(
            ValueError, match=r"data\.homography\.shear is unknown; expected keys from"
        ):
            merge_homography_params(base, {"shear": 0.1}, "data.homography")


class TestWarpPoints:
    def test_translation_hand_case(self):
        pts = torch.tensor([[0.0, 0.0], [5.0, 4.0]])
        assert torch.equal(
            warp_points(pts, translation(2, 3)), torch.tensor([[2.0, 3.0], [7.0, 7.0]])
        )

    def test_projective_hand_case(self):
        h = torch.tensor([[2.0, 0.0, 1.0], [0.0, 1.0, 0.0], [0.5, 0.0, 1.0]])
        # (2, 3) -> (2*2+1, 3, 0.5*2+1) = (5, 3, 2) -> (2.5, 1.5)
        assert torch.allclose(
            warp_points(torch.tensor([[2.0, 3.0]]), h), torch.tensor([[2.5, 1.5]])
        )

    def loop_reference(self, pts, h):
        out = torch.empty_like(pts)
        for b in range(pts.shape[0]):
            for n in range(pts.shape[1]):
                x, y = pts[b, n].tolist()
                v = h[b] @ torch.tensor([x, y, 1.0], dtype=h.dtype)
                out[b, n] = v[:2] / v[2]
        return out

    def test_batched_vs_loop(self):
        g = torch.Generator().manual_seed(0)
        h = mild_homographies(3)
        pts = torch.rand(3, 7, 2, generator=g) * 30
        expected = self.loop_reference(pts, h)
        assert torch.allclose(warp_points(pts, h), expected, atol=1e-4)
        # unbatched points, batched H
        assert torch.allclose(
            warp_points(pts[0], h), self.loop_reference(pts[0].expand(3, 7, 2), h), atol=1e-4
        )
        # batched points, one H
        assert torch.allclose(
            warp_points(pts, h[1]), self.loop_reference(pts, h[1].expand(3, 3, 3)), atol=1e-4
        )
        assert warp_points(pts[0], h[0]).shape == (7, 2)

    def test_inverse_round_trip(self):
        h = mild_homographies(4).double()
        pts = torch.rand(4, 20, 2, dtype=torch.float64) * 30
        back = warp_points(warp_points(pts, h), torch.linalg.inv(h))
        assert torch.allclose(back, pts, atol=1e-9)

    def test_gradcheck(self):
        h = mild_homographies(2).double().requires_grad_(True)
        pts = (torch.rand(2, 5, 2, dtype=torch.float64) * 20).requires_grad_(True)
        assert torch.autograd.gradcheck(warp_points, (pts, h))

    def test_bad_shapes(self):
        with pytest.raises(ValueError, match=r"points.*\[N, 2\]"):
            warp_points(torch.zeros(5, 3), torch.eye(3))
        with pytest.raises(ValueError, match=r"homography.*\[3, 3\]"):
            warp_points(torch.zeros(5, 2), torch.eye(4))
        with pytest.raises(ValueError, match="share B"):
            warp_points(torch.zeros(2, 5, 2), torch.eye(3).expand(3, 3, 3))


class TestWarpImages:
    def test_translation_moves_a_pixel_exactly(self):
        img = torch.zeros(1, 1, 10, 12)
        img[0, 0, 4, 5] = 1.0  # (x, y) = (5, 4)
        out = warp_images(img, translation(2, 3))
        expected = torch.zeros(1, 1, 10, 12)
        expected[0, 0, 7, 7] = 1.0  # (x, y) = (7, 7)
        assert torch.allclose(out, expected, atol=1e-5)

    def test_matches_kornia_warp_perspective(self):
        h = mild_homographies(3)
        img = torch.rand(3, 2, *SHAPE, generator=torch.Generator().manual_seed(0))
        expected = warp_perspective(img, h, SHAPE, align_corners=True)
        assert torch.allclose(warp_images(img, h), expected, atol=1e-4)

    def test_coordinate_image_gives_inverse_warp_points(self):
        # A holds its own pixel coordinates; bilinear sampling is exact on a linear image,
        # so B(q) = H^-1 q wherever q's preimage is inside A.
        height, width = SHAPE
        ys, xs = torch.meshgrid(
            torch.arange(float(height)), torch.arange(float(width)), indexing="ij"
        )
        coords = torch.stack([xs, ys])[None].double().expand(2, 2, height, width)
        h = mild_homographies(2).double()
        out = warp_images(coords, h)
        grid = torch.stack([xs, ys], dim=-1).reshape(-1, 2).double()
        expected = (
            warp_points(grid, torch.linalg.inv(h)).reshape(2, height, width, 2).permute(0, 3, 1, 2)
        )
        inside = warp_valid_mask(SHAPE, h, border_margin=1)
        assert inside.float().mean() > 0.5
        assert torch.allclose(
            out.permute(0, 2, 3, 1)[inside], expected.permute(0, 2, 3, 1)[inside], atol=1e-6
        )

    def test_blob_follows_warp_points(self):
        height, width = SHAPE
        ys, xs = torch.meshgrid(
            torch.arange(float(height)), torch.arange(float(width)), indexing="ij"
        )
        p = torch.tensor([15.0, 11.0])
        blob = torch.exp(-((xs - p[0]) ** 2 + (ys - p[1]) ** 2) / 2.0)[None, None]
        h = sample_homography(
            1, SHAPE, perspective=False, patch_ratio=0.9, generator=torch.Generator().manual_seed(5)
        )
        out = warp_images(blob, h)[0, 0]
        row, col = divmod(int(out.argmax()), width)
        target = warp_points(p[None], h[0])[0]
        assert abs(col - target[0]) <= 1.0 and abs(row - target[1]) <= 1.0

    def test_single_matrix_broadcasts_and_out_shape(self):
        img = torch.rand(3, 1, *SHAPE)
        h = mild_homographies(1)[0]
        out = warp_images(img, h, out_shape=(10, 14))
        assert out.shape == (3, 1, 10, 14)
        assert torch.allclose(out, warp_images(img, h.expand(3, 3, 3))[..., :10, :14])

    def test_bad_input(self):
        with pytest.raises(ValueError, match=r"images.*\[B, C, H, W\]"):
            warp_images(torch.zeros(1, 5, 5), torch.eye(3))
        with pytest.raises(ValueError, match="one matrix per image"):
            warp_images(torch.zeros(2, 1, 5, 5), torch.eye(3).expand(3, 3, 3))
        with pytest.raises(ValueError, match=r"homography.*\[3, 3\]"):
            warp_images(torch.zeros(2, 1, 5, 5), torch.eye(2))


class TestWarpValidMask:
    def test_identity_all_valid_even_with_margin(self):
        assert warp_valid_mask(SHAPE, torch.eye(3), border_margin=3).all()

    def test_translation_hand_case(self):
        h = translation(2, 3)
        ys, xs = torch.meshgrid(torch.arange(SHAPE[0]), torch.arange(SHAPE[1]), indexing="ij")
        assert torch.equal(warp_valid_mask(SHAPE, h)[0], (xs >= 2) & (ys >= 3))
        # A disk of radius 1 is the pixel and its 4 neighbours: one more column and row go.
        assert torch.equal(warp_valid_mask(SHAPE, h, border_margin=1)[0], (xs >= 3) & (ys >= 4))

    def test_matches_bilinear_warp_of_ones(self):
        # Valid = the bilinear sample uses pixels of A only = a warped all-ones image is 1 there.
        h = sample_homography(
            20, SHAPE, allow_artifacts=True, generator=torch.Generator().manual_seed(3)
        )
        ones = torch.ones(20, 1, *SHAPE, dtype=torch.float64)
        warped = warp_perspective(ones, h.double(), SHAPE, align_corners=True)[:, 0]
        mask = warp_valid_mask(SHAPE, h)
        assert (~mask).any() and mask.any()
        assert (warped[mask] > 1 - 1e-3).all()
        # Outside the mask a tap is padding, except within the 1e-3 px slack.
        assert (warped[~mask] < 1 - 1e-3).all()

    @pytest.mark.parametrize("radius", [1, 2, 3, 5])
    def test_erosion_vs_disk_convolution(self, radius):
        h = sample_homography(
            6, SHAPE, allow_artifacts=True, generator=torch.Generator().manual_seed(radius)
        )
        plain = warp_valid_mask(SHAPE, h)
        d = torch.arange(-radius, radius + 1.0)
        disk = ((d[:, None] ** 2 + d[None] ** 2) <= radius**2).float()
        hits = F.conv2d((~plain).float()[:, None], disk[None, None], padding=radius)[:, 0]
        assert torch.equal(warp_valid_mask(SHAPE, h, border_margin=radius), hits < 0.5)

    def test_with_mask_matches_separate_calls(self):
        h = sample_homography(
            3, SHAPE, allow_artifacts=True, generator=torch.Generator().manual_seed(9)
        )
        img = torch.rand(3, 1, *SHAPE)
        warped, mask = warp_images_with_mask(img, h, border_margin=2)
        assert torch.equal(warped, warp_images(img, h))
        assert torch.equal(mask, warp_valid_mask(SHAPE, h, border_margin=2))

    def test_bad_input(self):
        with pytest.raises(ValueError, match="border_margin"):
            warp_valid_mask(SHAPE, torch.eye(3), border_margin=-1)
        with pytest.raises(ValueError, match="shape"):
            warp_valid_mask((0, 4), torch.eye(3))
