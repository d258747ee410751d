"""Tests for pixelwise.geometry.adaptation."""

import pytest
import torch
import torch.nn.functional as F

from pixelwise.geometry.adaptation import (
    aggregate_warped_heatmaps,
    homographic_adaptation,
    shift_averaged_heatmap,
)
from pixelwise.geometry.homography import sample_homography, warp_images, warp_valid_mask

SHAPE = (20, 28)


def images(batch: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 1, *SHAPE, generator=torch.Generator().manual_seed(seed))


def identity_detector(x: torch.Tensor) -> torch.Tensor:
    return x


def smooth_detector(x: torch.Tensor) -> torch.Tensor:
    """A fixed nonlinear local detector: sigmoid of a 3x3 filter response."""
    kernel = torch.tensor([[0.0, -1.0, 0.0], [-1.0, 4.0, -1.0], [0.0, -1.0, 0.0]])[None, None]
    return torch.sigmoid(3.0 * F.conv2d(x, kernel, padding=1))


def border_sensitive_detector(x: torch.Tensor) -> torch.Tensor:
    """Zero on a constant image (replicate padding), large at a step such as the black warp border."""
    return (x - F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)).abs()


def integer_warps(batch: int) -> torch.Tensor:
    """[B, 3, 3, 3]: integer translations and a 180 degree turn about the centre (exact on the pixel grid)."""
    height, width = SHAPE
    shift = torch.tensor([[1.0, 0.0, 3.0], [0.0, 1.0, -2.0], [0.0, 0.0, 1.0]])
    shift2 = torch.tensor([[1.0, 0.0, -5.0], [0.0, 1.0, 4.0], [0.0, 0.0, 1.0]])
    turn = torch.tensor([[-1.0, 0.0, width - 1.0], [0.0, -1.0, height - 1.0], [0.0, 0.0, 1.0]])
    return torch.stack([shift, shift2, turn]).expand(batch, 3, 3, 3)


def naive_reference(detector, imgs, homographies, margin, aggregation):
    """One image and one homography at a time, straight from the definition."""
    out = []
    for b in range(imgs.shape[0]):
        img = imgs[b : b + 1]
        heat0 = detector(img)
        heats, weights = [heat0], [torch.ones_like(heat0)]
        for h in homographies[b]:
            warped = warp_images(img, h)
            mask = warp_valid_mask(SHAPE, h, border_margin=margin)[:, None].float()
            inv = torch.linalg.inv(h)
            heats.append(warp_images(detector(warped) * mask, inv))
            weights.append(warp_images(mask, inv))
        if aggregation == "mean":
            out.append(sum(heats) / sum(weights))
        else:
            values = [
                torch.where(w > 1e-6, hm / w.clamp_min(1e-6), torch.full_like(hm, -torch.inf))
                for hm, w in zip(heats, weights, strict=True)
            ]
            out.append(torch.stack(values).amax(dim=0))
    return torch.cat(out)


class TestAggregateWarpedHeatmaps:
    def test_equivariant_detector_gives_its_own_output(self):
        imgs = images(2)
        result = aggregate_warped_heatmaps(
            identity_detector, imgs, integer_warps(2), valid_border_margin=1
        )
        assert torch.allclose(result, imgs, atol=1e-5)

    def test_equivariant_detector_max(self):
        imgs = images(2)
        result = aggregate_warped_heatmaps(
            identity_detector, imgs, integer_warps(2), valid_border_margin=0, aggregation="max"
        )
        assert torch.allclose(result, imgs, atol=1e-5)

    @pytest.mark.parametrize("aggregation", ["mean", "max"])
    def test_vs_naive_loop(self, aggregation):
        imgs = images(2, seed=1)
        h = sample_homography(2 * 4, SHAPE, generator=torch.Generator().manual_seed(2)).reshape(
            2, 4, 3, 3
        )
        expected = naive_reference(smooth_detector, imgs, h, margin=2, aggregation=aggregation)
        result = aggregate_warped_heatmaps(
            smooth_detector, imgs, h, valid_border_margin=2, aggregation=aggregation, chunk_size=3
        )
        assert torch.allclose(result, expected, atol=1e-5)

    def test_count_normalisation_with_artifacts(self):
        imgs = images(1, seed=3)
        h = sample_homography(
            5,
            SHAPE,
            allow_artifacts=True,
            translation_overflow=0.3,
            generator=torch.Generator().manual_seed(4),
        )[None]
        expected = naive_reference(smooth_detector, imgs, h, margin=3, aggregation="mean")
        result = aggregate_warped_heatmaps(smooth_detector, imgs, h, valid_border_margin=3)
        assert torch.allclose(result, expected, atol=1e-5)
        # With artifacts a plain average (divide by N + 1) would be different.
        assert not torch.allclose(result, expected * 0 + expected.mean(), atol=1e-3)

    def test_border_margin_hides_the_artificial_border(self):
        flat = torch.full((1, 1, *SHAPE), 0.5)
        h = sample_homography(
            6,
            SHAPE,
            allow_artifacts=True,
            translation_overflow=0.3,
            generator=torch.Generator().manual_seed(5),
        )[None]
        # Valid warped pixels are exact; the 3x3 detector reaches sqrt(2) px: margin 2 covers it.
        with_margin = aggregate_warped_heatmaps(
            border_sensitive_detector, flat, h, valid_border_margin=2
        )
        without = aggregate_warped_heatmaps(
            border_sensitive_detector, flat, h, valid_border_margin=0
        )
        assert with_margin.abs().max() < 1e-6
        assert without.max() > 0.01


class TestHomographicAdaptation:
    def test_identity_only_is_the_plain_detector(self):
        imgs = images(3)
        result = homographic_adaptation(smooth_detector, imgs, num_homographies=1)
        assert torch.equal(result, smooth_detector(imgs))

    def test_chunking_does_not_change_the_result(self):
        imgs = images(2, seed=6)
        kwargs = {"num_homographies": 6, "valid_border_margin": 2, "allow_artifacts": True}
        full = homographic_adaptation(
            smooth_detector, imgs, generator=torch.Generator().manual_seed(0), **kwargs
        )
        for chunk in (1, 4, 7):
            chunked = homographic_adaptation(
                smooth_detector,
                imgs,
                chunk_size=chunk,
                generator=torch.Generator().manual_seed(0),
                **kwargs,
            )
            assert torch.allclose(chunked, full, atol=1e-6)

    def test_chunk_size_bounds_detector_batch(self):
        seen = []

        def recording_detector(x):
            seen.append(x.shape[0])
            return smooth_detector(x)

        homographic_adaptation(recording_detector, images(3), num_homographies=5, chunk_size=4)
        assert max(seen) <= 4 and sum(seen) == 3 * 5

    def test_matches_reference_with_same_homographies(self):
        imgs = images(2, seed=7)
        params = {"perspective": True, "rotation": False, "patch_ratio": 0.8}
        result = homographic_adaptation(
            smooth_detector,
            imgs,
            num_homographies=4,
            generator=torch.Generator().manual_seed(1),
            **params,
        )
        h = sample_homography(
            2 * 3, SHAPE, generator=torch.Generator().manual_seed(1), **params
        ).reshape(2, 3, 3, 3)
        expected = naive_reference(smooth_detector, imgs, h, margin=3, aggregation="mean")
        assert torch.allclose(result, expected, atol=1e-5)

    def test_no_gradient(self):
        imgs = images(1).requires_grad_(True)
        out = homographic_adaptation(smooth_detector, imgs, num_homographies=2)
        assert not out.requires_grad

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"aggregation": "median"}, "aggregation"),
            ({"num_homographies": 0}, "num_homographies"),
            ({"chunk_size": 0}, "chunk_size"),
            ({"rotate": True}, "rotate"),
        ],
    )
    def test_bad_arguments(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            homographic_adaptation(smooth_detector, images(1), **{"num_homographies": 2, **kwargs})

    def test_bad_images_and_detector(self):
        with pytest.raises(ValueError, match=r"images.*\[B, C, H, W\]"):
            homographic_adaptation(smooth_detector, torch.rand(1, *SHAPE))
        with pytest.raises(ValueError, match=r"detector.*\[b, 1, h, w\]"):
            homographic_adaptation(lambda x: x[:, 0], images(1), num_homographies=2)


# -- shift averaging ----------------------------------------------------------------------------


def _grid_detector(images: torch.Tensor) -> torch.Tensor:
    """A detector that only fires on the 8x8 grid's (0, 0) pixels: the extreme of a cell-grid head."""
    heat = torch.zeros_like(images[:, :1])
    heat[..., ::8, ::8] = images[:, :1, ::8, ::8]
    return heat


def test_shift_averaging_over_all_phases_is_shift_equivariant():
    """step=1: brute force over the 64 phases; the grid detector becomes (value / 64) everywhere."""
    g = torch.Generator().manual_seed(0)
    image = torch.rand(2, 1, 40, 56, generator=g)
    heat = shift_averaged_heatmap(_grid_detector, image, step=1)
    # Each pixel (y, x) lies on the grid for exactly one shift ((x + sx) and (y + sy) = 0 mod 8),
    # and the padding adds rows/columns before the image, so that shift samples the pixel itself.
    expected = torch.zeros_like(image)
    for sy in range(8):
        for sx in range(8):
            padded = F.pad(image, (sx, 0, sy, 0), mode="replicate")
            expected += _grid_detector(padded)[..., sy : sy + 40, sx : sx + 56]
    assert torch.allclose(heat, expected / 64)
    assert torch.allclose(heat, image / 64)
    # and so it moves with the image under any integer shift
    shifted = shift_averaged_heatmap(_grid_detector, image[..., 3:, 5:], step=1)
    assert torch.allclose(shifted, heat[..., 3:, 5:])


def test_shift_averaging_with_step_4_is_equivariant_to_multiples_of_4_only():
    image = torch.rand(1, 1, 32, 48, generator=torch.Generator().manual_seed(1))
    heat = shift_averaged_heatmap(_grid_detector, image, step=4)
    assert torch.allclose(heat[..., ::4, ::4], image[..., ::4, ::4] / 4)
    assert torch.count_nonzero(heat[..., 1::4, :]) == 0
    moved = shift_averaged_heatmap(_grid_detector, image[..., 4:, 8:], step=4)
    assert torch.allclose(moved, heat[..., 4:, 8:])
    assert not torch.allclose(
        shift_averaged_heatmap(_grid_detector, image[..., 1:, :], step=4), heat[..., 1:, :]
    )


def test_shift_averaging_with_step_8_is_the_detector():
    image = torch.rand(2, 1, 20, 30, generator=torch.Generator().manual_seed(2))
    assert torch.equal(shift_averaged_heatmap(_grid_detector, image, step=8), _grid_detector(image))


def test_shift_averaging_of_an_equivariant_detector_changes_it_only_near_the_top_left_border():
    weight = torch.rand(1, 1, 3, 3, generator=torch.Generator().manual_seed(3))

    def conv(x):
        return F.conv2d(x, weight, padding=1)

    image = torch.rand(1, 1, 24, 32, generator=torch.Generator().manual_seed(4))
    heat = shift_averaged_heatmap(conv, image, step=2)
    assert torch.allclose(heat[..., 1:-1, 1:-1], conv(image)[..., 1:-1, 1:-1], atol=1e-6)


@pytest.mark.parametrize("step", [0, 9, 2.0])
def test_shift_averaging_rejects_a_bad_step(step):
    with pytest.raises(
        ValueError, match=r"shift_averaged_heatmap: step=.*: expected an int in \[1, 8\]"
    ):
        shift_averaged_heatmap(_grid_detector, torch.rand(1, 1, 8, 8), step=step)


def test_shift_averaging_reuses_a_given_unshifted_heatmap():
    image = torch.rand(1, 1, 16, 24, generator=torch.Generator().manual_seed(5))
    calls = []

    def counted(x):
        calls.append(tuple(x.shape))
        return _grid_detector(x)

    expected = shift_averaged_heatmap(counted, image, step=4)
    assert len(calls) == 4
    calls.clear()
    got = shift_averaged_heatmap(counted, image, step=4, unshifted=_grid_detector(image))
    assert len(calls) == 3 and (1, 1, 16, 24) not in calls
    assert torch.equal(got, expected)


def test_homographic_adaptation_reuses_a_given_identity_heatmap():
    imgs = images(2, seed=8)
    calls = []

    def counted(x):
        calls.append(x.shape[0])
        return smooth_detector(x)

    kwargs = {"num_homographies": 4, "chunk_size": 3}
    expected = homographic_adaptation(
        counted, imgs, generator=torch.Generator().manual_seed(2), **kwargs
    )
    assert sum(calls) == 2 * 4
    calls.clear()
    identity = smooth_detector(imgs)
    got = homographic_adaptation(
        counted, imgs, generator=torch.Generator().manual_seed(2), identity=identity, **kwargs
    )
    assert sum(calls) == 2 * 3  # the warped images only
    assert torch.equal(got, expected)
    assert torch.equal(identity, smooth_detector(imgs))  # not written to
    with pytest.raises(
        ValueError, match=r"identity must be the detector's heatmap.*\[2, 1, 20, 28\]"
    ):
        homographic_adaptation(counted, imgs, identity=identity[:1], **kwargs)


def test_adaptation_homography_is_the_export_config():
    from pathlib import Path

    from omegaconf import OmegaConf

    import pixelwise
    from pixelwise.geometry import ADAPTATION_HOMOGRAPHY

    conf = Path(pixelwise.__file__).parent / "conf" / "task" / "homographic_adaptation.yaml"
    homography = OmegaConf.to_container(OmegaConf.load(conf).task.homography)
    assert homography == ADAPTATION_HOMOGRAPHY
