"""HPatches loader on HPatches-format trees written to disk: photographs, blob patterns, broken layouts."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pixelwise.data.datamodule import DataModule
from pixelwise.data.hpatches import HPatches, read_hpatches_homography, resize_matrix
from pixelwise.data.label_io import DatasetLayoutError
from pixelwise.geometry.homography import warp_images_with_mask, warp_points
from tests.data.hpatches_fixture import write_hpatches_fixture


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    """2 i_ + 2 v_ sequences, image 1 of 132x176 (views up to 10% larger or smaller)."""
    return write_hpatches_fixture(tmp_path_factory.mktemp("hp"), 2, 2, size=(132, 176), seed=1)


def copy_release(release: Path, tmp_path: Path) -> Path:
    target = tmp_path / "hpatches-sequences-release"
    shutil.copytree(release, target)
    return target


class TestFixtureRoundTrip:
    def test_pairs_splits_and_items(self, release):
        ds = HPatches(release.parent, size=(120, 160))
        assert len(ds) == 20
        assert len(HPatches(release.parent, split="illumination", size=None)) == 10
        assert len(HPatches(release.parent, split="v", size=None)) == 10
        item = ds[7]
        assert item["sequence"].startswith("i_") and item["kind"] == "i" and item["index_b"] == 4
        for key in ("image_a", "image_b"):
            assert item[key].shape == (1, 120, 160) and item[key].dtype == torch.float32
            assert 0.0 <= float(item[key].min()) and float(item[key].max()) <= 1.0
        # illumination: identity in the files, still the identity after the same resize
        assert torch.allclose(item["homography"], torch.eye(3), atol=1e-6)
        assert [ds[i]["index_b"] for i in range(5)] == [2, 3, 4, 5, 6]

    def test_native_size_reads_the_files_and_the_matrix_unchanged(self, release):
        ds = HPatches(release.parent, split="viewpoint", size=None, gray=False)
        item = ds[3]
        seq = release / item["sequence"]
        with Image.open(seq / "5.ppm") as im:
            expected = np.array(im.convert("RGB"))
        assert item["image_b"].shape == (3, *expected.shape[:2])
        assert torch.equal(
            (item["image_b"] * 255).round().byte(), torch.from_numpy(expected).permute(2, 0, 1)
        )
        h = np.loadtxt(seq / "H_1_5")
        assert np.allclose(item["homography"].double().numpy(), h / h[2, 2], rtol=1e-6, atol=1e-6)

    def test_root_may_be_the_release_folder_itself_and_sequences_can_be_excluded(self, release):
        ds = HPatches(release, size=None)
        assert len(ds) == 20
        name = ds[0]["sequence"]
        assert len(HPatches(release, size=None, exclude=[name])) == 15

    @pytest.mark.parametrize("resize", ["stretch", "crop"])
    def test_resized_homography_aligns_the_photographs(self, release, resize):
        """Warping image a by the adjusted H reproduces image b where b sees a (viewpoint pairs)."""
        ds = HPatches(release.parent, split="viewpoint", size=(96, 144), resize=resize)
        for i in range(len(ds)):
            item = ds[i]
            warped, valid = warp_images_with_mask(
                item["image_a"][None], item["homography"], border_margin=2
            )
            diff = (warped[0, 0] - item["image_b"][0])[valid[0]].abs()
            assert valid.float().mean() > 0.4
            assert float(diff.mean()) < 0.03, (
                item["sequence"],
                item["index_b"],
                float(diff.mean()),
            )


def gaussian_image(shape, centres, sigma, linear=None) -> np.ndarray:
    """uint8 [H, W] image of Gaussian blobs at centres (x, y); `linear` [2,2] shapes them as an affine warp would."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    inv = np.linalg.inv(linear) if linear is not None else np.eye(2)
    out = np.zeros(shape)
    for cx, cy in centres:
        dx, dy = xx - cx, yy - cy
        u = inv[0, 0] * dx + inv[0, 1] * dy
        v = inv[1, 0] * dx + inv[1, 1] * dy
        out += np.exp(-(u**2 + v**2) / (2 * sigma**2))
    return (np.clip(out, 0, 1) * 250).round().astype(np.uint8)


def centroid(image: torch.Tensor, near: np.ndarray, radius: int = 10) -> np.ndarray:
    """Intensity-weighted centroid (x, y) of image [H, W] in a window around `near`."""
    img = image.double().numpy()
    x0, y0 = int(round(near[0])), int(round(near[1]))
    ys, xs = np.mgrid[y0 - radius : y0 + radius + 1, x0 - radius : x0 + radius + 1]
    win = img[ys, xs]
    return np.array([(win * xs).sum() / win.sum(), (win * ys).sum() / win.sum()])


@pytest.fixture(scope="module")
def blobs(tmp_path_factory):
    """One v_ sequence of Gaussian blobs: image 1 is 300x400, image k 330x420 rendered at H_1_k p (affine H)."""
    root = tmp_path_factory.mktemp("blobs")
    seq = root / "hpatches-sequences-release" / "v_blobs"
    seq.mkdir(parents=True)
    centres = np.array(
        [[110.3, 100.7], [290.6, 100.2], [200.1, 150.4], [260.8, 210.9], [140.2, 200.5]]
    )
    sigma = 7.0
    Image.fromarray(gaussian_image((300, 400), centres, sigma)).convert("RGB").save(seq / "1.ppm")
    homographies = {}
    for k in range(2, 7):
        # rotation about the centre growing to 60 degrees, slight anisotropic scale, shift
        theta = np.radians(15.0 * (k - 2))
        rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
        linear = rot @ np.diag([1.0 + 0.01 * k, 1.0 - 0.01 * k])
        h = np.eye(3)
        h[:2, :2] = linear
        h[:2, 2] = np.array([210.0, 165.0]) - linear @ np.array([200.0, 150.0])
        homographies[k] = h
        moved = warp_points(torch.from_numpy(centres), torch.from_numpy(h)).numpy()
        image = gaussian_image((330, 420), moved, sigma, linear)
        Image.fromarray(image).convert("RGB").save(seq / f"{k}.ppm")
        np.savetxt(seq / f"H_1_{k}", h)
    return root, centres, homographies


class TestResizedHomography:
    @pytest.mark.parametrize("resize", ["stretch", "crop"])
    def test_blob_centres_map_through_the_adjusted_homography(self, blobs, resize):
        root, centres, _ = blobs
        size = (120, 160)
        ds = HPatches(root, size=size, resize=resize)
        for i in range(len(ds)):
            item = ds[i]
            s_a = resize_matrix((300, 400), size, resize)
            in_a = warp_points(torch.from_numpy(centres), torch.from_numpy(s_a)).numpy()
            found_a = np.stack([centroid(item["image_a"][0], c) for c in in_a])
            # the resize convention itself: a blob at x lands at s (x + 0.5) - 0.5
            assert np.abs(found_a - in_a).max() < 0.06
            expected_b = warp_points(torch.from_numpy(found_a), item["homography"].double()).numpy()
            found_b = np.stack([centroid(item["image_b"][0], c) for c in expected_b])
            assert np.abs(found_b - expected_b).max() < 0.08, np.abs(found_b - expected_b).max()

    def test_scaling_without_the_half_pixel_offset_would_be_visibly_wrong(self, blobs):
        """Control: H scaled by plain diag(s) (no half-pixel terms) misplaces the blobs of the 60-degree view by > 0.25 px."""
        root, centres, homographies = blobs
        size = (120, 160)
        item = HPatches(root, size=size)[4]  # k = 6, image b is 330x420
        sa = np.diag([160 / 400, 120 / 300, 1.0])
        sb = np.diag([160 / 420, 120 / 330, 1.0])
        naive = torch.from_numpy(sb @ homographies[6] @ np.linalg.inv(sa))
        in_a = warp_points(
            torch.from_numpy(centres), torch.from_numpy(resize_matrix((300, 400), size))
        ).numpy()
        predicted = warp_points(torch.from_numpy(in_a), naive).numpy()
        found_b = np.stack([centroid(item["image_b"][0], c) for c in predicted])
        assert np.abs(found_b - predicted).max() > 0.25

    def test_resize_matrix_hand_values(self):
        m = resize_matrix((100, 200), (50, 100))
        assert np.allclose(m, [[0.5, 0, -0.25], [0, 0.5, -0.25], [0, 0, 1]])
        # pixels 0 and 1 average into output pixel 0: their midpoint 0.5 maps to 0
        assert np.allclose(m @ [0.5, 0.5, 1], [0, 0, 1])
        up = resize_matrix((10, 10), (20, 30))
        assert np.allclose(up, [[3, 0, 1], [0, 2, 0.5], [0, 0, 1]])
        # crop: 100x200 -> 50x50 scales by 0.5 to 50x100 and drops 25 columns on the left
        crop = resize_matrix((100, 200), (50, 50), "crop")
        assert np.allclose(crop, [[0.5, 0, -25.25], [0, 0.5, -0.25], [0, 0, 1]])


class TestDataModule:
    def test_batches_keep_names_as_lists(self, release):
        dm = DataModule(test=lambda: HPatches(release.parent, size=(64, 96)), batch_size=2)
        dm.setup("test")
        batch = next(iter(dm.test_dataloader()))
        assert batch["image_a"].shape == (2, 1, 64, 96) and batch["homography"].shape == (2, 3, 3)
        assert batch["kind"] == ["i", "i"] and len(batch["sequence"]) == 2

    def test_config_composes_and_builds_both_resolutions(self, release):
        hydra = pytest.importorskip("hydra")
        from hydra import compose, initialize_config_dir
        from hydra.utils import instantiate

        from pixelwise.cli import CONFIG_DIR

        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            cfg = compose("train", overrides=["data=hpatches", f"data.test.root={release.parent}"])
        assert hydra is not None
        dm = instantiate(cfg.data, _convert_="all")
        assert dm.dataset("test")[0]["image_a"].shape == (1, 480, 640)
        assert dm.dataset("detector_test")[0]["image_a"].shape == (1, 240, 320)
        assert dm.info.protocol["top_k"] == 1000 and dm.info.protocol["repeatability_top_k"] == 300
        # one test loader: the test pairs, then the detector pairs, each tagged with its split
        loader = dm.test_dataloader()
        n_test = len(dm.dataset("test"))
        assert len(loader) == n_test + len(dm.dataset("detector_test"))
        items = list(loader)
        assert items[0]["split"] == ["test"] and items[0]["image_a"].shape[-2:] == (480, 640)
        assert items[n_test]["split"] == ["detector_test"]
        assert items[n_test]["image_a"].shape[-2:] == (240, 320)


class TestLayoutErrors:
    def test_missing_root_shows_the_expected_tree(self, tmp_path):
        with pytest.raises(DatasetLayoutError, match="hpatches-sequences-release") as err:
            HPatches(tmp_path / "nowhere")
        assert "H_1_2" in str(err.value)

    def test_root_without_sequences(self, tmp_path):
        (tmp_path / "hpatches-sequences-release" / "other").mkdir(parents=True)
        with pytest.raises(DatasetLayoutError, match=r"no i_\*/v_\* sequence folders"):
            HPatches(tmp_path)

    def test_split_without_its_sequences(self, release, tmp_path):
        copy = copy_release(release, tmp_path)
        for seq in copy.glob("v_*"):
            shutil.rmtree(seq)
        with pytest.raises(DatasetLayoutError, match=r"no v_\* sequence folders"):
            HPatches(tmp_path, split="viewpoint")

    def test_missing_image_is_named(self, release, tmp_path):
        copy = copy_release(release, tmp_path)
        victim = sorted(copy.glob("v_*"))[0] / "4.ppm"
        victim.unlink()
        with pytest.raises(DatasetLayoutError, match="4.ppm is missing"):
            HPatches(tmp_path)

    def test_missing_homography_is_named(self, release, tmp_path):
        copy = copy_release(release, tmp_path)
        (sorted(copy.glob("i_*"))[1] / "H_1_3").unlink()
        with pytest.raises(DatasetLayoutError, match="H_1_3 is missing"):
            HPatches(tmp_path)

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("1 0 0\n0 1 0\n", "expected 3 lines of 3 numbers"),
            ("1 0 0\n0 1 x\n0 0 1\n", "cannot parse"),
            ("1 2 3\n2 4 6\n0 0 1\n", "singular"),
            ("1 0 nan\n0 1 0\n0 0 1\n", "non-finite"),
        ],
    )
    def test_bad_homography_file(self, release, tmp_path, text, message):
        copy = copy_release(release, tmp_path)
        path = sorted(copy.glob("v_*"))[0] / "H_1_2"
        path.write_text(text)
        with pytest.raises(ValueError, match=message) as err:
            HPatches(tmp_path)
        assert "H_1_2" in str(err.value)

    def test_homography_reader_accepts_the_release_format(self, tmp_path):
        path = tmp_path / "H_1_2"
        path.write_text(
            "  0.79208   0.010314   26.019 \n -0.023778  0.92337 43.513\n\n-0.00013 1.2e-05 1.0\n"
        )
        h = read_hpatches_homography(path)
        assert (
            h.shape == (3, 3)
            and h[0, 2] == pytest.approx(26.019)
            and h[2, 1] == pytest.approx(1.2e-05)
        )

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"split": "train"}, "split='train' is invalid"),
            ({"size": (240,)}, r"HPatches: size .*\(height, width\) of ints >= 2, got \(240,\)"),
            (
                {"size": (1, 320)},
                r"HPatches: size .*\(height, width\) of ints >= 2, got \(1, 320\)",
            ),
            ({"resize": "pad"}, "resize='pad' is invalid"),
        ],
    )
    def test_bad_arguments(self, release, kwargs, message):
        with pytest.raises(ValueError, match=message):
            HPatches(release.parent, **kwargs)


def test_offline_set_follows_the_photograph_splits(tmp_path):
    from pixelwise.data.hpatches_offline import PHOTO_SPLITS, photo

    # The README's SuperPoint / ORB / SIFT numbers come from photographs no weights trained on.
    assert set(PHOTO_SPLITS["test"]).isdisjoint(PHOTO_SPLITS["train"])
    assert set(PHOTO_SPLITS["val"]).isdisjoint(PHOTO_SPLITS["train"])
    assert set(PHOTO_SPLITS["test"]).isdisjoint(PHOTO_SPLITS["val"])
    assert PHOTO_SPLITS["val"] == ("coffee", "motorcycle", "rocket")
    with pytest.raises(ValueError, match="unknown photograph 'grace_hopper'"):
        photo("grace_hopper")  # matplotlib's sample photograph is reserved
    root = write_hpatches_fixture(
        tmp_path, 2, 3, size=(48, 64), photos=("chelsea", "rocket"), difficulty=3.0
    )
    assert sorted(p.name for p in root.iterdir()) == [
        "i_chelsea",
        "i_rocket",
        "v_chelsea_1",
        "v_chelsea_2",
        "v_rocket_1",
    ]
    ds = HPatches(tmp_path, size=(48, 64))
    assert len(ds) == 25
