"""Images / COCO folders: listing, resizing, grey conversion, bad files, pseudo-labels."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest
import torch

from pixelwise.data.images import (
    COCO,
    Images,
    UnusableImage,
    fit_to_size,
    list_images,
    read_pseudo_labels,
    to_gray_float,
)


def _png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)
    return path


class TestFitToSize:
    def test_crop_scales_to_cover_then_cuts_the_centre(self):
        # 10x20 image whose value is its column; to 5x5: scale 0.5 -> 5x10 (2x2 block means,
        # column c -> 2c + 0.5), centre columns 2..6.
        image = np.tile(np.arange(20, dtype=np.float32), (10, 1))
        out = fit_to_size(image, (5, 5), "crop")
        assert out.shape == (5, 5)
        np.testing.assert_allclose(out[0], [4.5, 6.5, 8.5, 10.5, 12.5], atol=1e-5)
        np.testing.assert_allclose(out, np.tile(out[0], (5, 1)))

    def test_crop_of_the_exact_size_is_the_image(self):
        image = np.random.default_rng(0).random((24, 32), dtype=np.float32)
        np.testing.assert_array_equal(fit_to_size(image, (24, 32)), image)

    def test_stretch_ignores_the_aspect_ratio(self):
        # Rows 0..7 of value = row, 8 columns -> 4x2: 2x4 block means of rows (2r, 2r+1).
        image = np.tile(np.arange(8, dtype=np.float32)[:, None], (1, 8))
        out = fit_to_size(image, (4, 2), "stretch")
        np.testing.assert_allclose(out, [[0.5, 0.5], [2.5, 2.5], [4.5, 4.5], [6.5, 6.5]])

    def test_small_images_are_upscaled_or_rejected(self):
        image = np.ones((6, 20), np.float32)  # too short for 8 rows
        assert fit_to_size(image, (8, 8), small="upscale").shape == (8, 8)
        with pytest.raises(UnusableImage, match=r"6x20 is smaller than data size 8x8"):
            fit_to_size(image, (8, 8), small="reject")


def test_to_gray_float_uses_bt601_and_scales_to_unit_range():
    rgb = np.zeros((1, 3, 3), np.uint8)
    rgb[0, 0] = (255, 0, 0)
    rgb[0, 1] = (0, 255, 0)
    rgb[0, 2] = (0, 0, 255)
    # cv2 rounds 255 * (0.299, 0.587, 0.114) to (76, 150, 29).
    np.testing.assert_allclose(to_gray_float(rgb)[0], np.array([76, 150, 29]) / 255, atol=1e-6)
    assert to_gray_float(np.full((2, 2), 65535, np.uint16)).max() == pytest.approx(1.0)
    assert to_gray_float(np.array([[True, False]])).tolist() == [[1.0, 0.0]]


def test_list_images_is_recursive_sorted_and_skips_hidden_and_other_files(tmp_path):
    for rel in [
        "b.png",
        "a/c.JPG",
        "a/d/e.ppm",
        "a/notes.txt",
        ".hidden/x.png",
        "a/.y.png",
        "z.jpeg",
    ]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    assert list_images(tmp_path) == ["a/c.JPG", "a/d/e.ppm", "b.png", "z.jpeg"]


@pytest.fixture
def tree(tmp_path):
    """root/ with a good 24x32 png, a nested good jpg, a corrupt jpg, an empty png, a tiny png."""
    root = tmp_path / "images"
    rng = np.random.default_rng(0)
    good = (rng.random((24, 32)) * 255).astype(np.uint8)
    _png(root / "good.png", good)
    _png(root / "sub" / "deeper" / "photo.jpg", np.full((48, 64, 3), 128, np.uint8))
    (root / "sub" / "corrupt.jpg").write_bytes(b"\xff\xd8 this is not a jpeg at all" * 10)
    (root / "empty.png").write_bytes(b"")
    _png(root / "tiny.png", np.zeros((4, 4), np.uint8))
    return root, good


class TestImages:
    def test_names_mirror_the_tree_and_good_images_are_exact(self, tree):
        root, good = tree
        ds = Images(root, size=(24, 32))
        assert ds.names == ["empty", "good", "sub/corrupt", "sub/deeper/photo", "tiny"]
        item = ds[1]
        assert item["ok"] and item["name"] == "good" and item["path"] == str(root / "good.png")
        assert item["image"].shape == (1, 24, 32) and item["image"].dtype == torch.float32
        np.testing.assert_allclose(item["image"][0].numpy(), good / 255.0, atol=1e-7)
        photo = ds[3]["image"]  # 48x64 grey 128 -> 24x32, still 128
        np.testing.assert_allclose(photo.numpy(), 128 / 255, atol=1e-6)

    def test_bad_files_are_skipped_with_a_warning_naming_them(self, tree, caplog):
        root, _ = tree
        ds = Images(root, size=(24, 32), small="reject")
        with caplog.at_level(logging.WARNING, logger="pixelwise"):
            items = [ds[i] for i in range(len(ds))]
        assert [it["ok"] for it in items] == [False, True, False, True, False]
        for bad in ("empty.png", "corrupt.jpg", "tiny.png"):
            assert any(bad in r.getMessage() for r in caplog.records), bad
        assert "4x4 is smaller than data size 24x32" in caplog.text
        assert all(float(it["image"].abs().sum()) == 0 for it in items if not it["ok"])
        # small=upscale keeps the tiny image
        assert Images(root, size=(24, 32))[4]["ok"]

    def test_photometric_augments_image_and_keeps_clean_image(self, tree):
        root, good = tree
        torch.manual_seed(0)
        item = Images(root, size=(24, 32), photometric=True)[1]
        np.testing.assert_allclose(item["clean_image"][0].numpy(), good / 255.0, atol=1e-7)
        assert not torch.equal(item["image"], item["clean_image"])
        assert 0 <= float(item["image"].min()) and float(item["image"].max()) <= 1

    def test_repeats_and_negative_indices(self, tree):
        root, _ = tree
        ds = Images(root, size=(24, 32), repeats=3)
        assert len(ds) == 15
        assert ds[6]["name"] == "good" and ds[6]["index"] == 6
        assert ds[-1]["name"] == "tiny"
        with pytest.raises(IndexError):
            ds[15]

    def test_limit(self, tree):
        assert Images(tree[0], size=(24, 32), limit=2).names == ["empty", "good"]

    def test_pseudo_labels_are_read_and_images_without_them_left_out(self, tree, tmp_path, caplog):
        root, _ = tree
        labels = tmp_path / "labels"
        (labels / "sub" / "deeper").mkdir(parents=True)
        np.savez(
            labels / "good.npz", keypoints=np.array([[1.0, 2.0], [3.5, 4.0]]), scores=np.ones(2)
        )
        np.savez(
            labels / "sub" / "deeper" / "photo.npz", keypoints=np.zeros((0, 2)), scores=np.zeros(0)
        )
        with caplog.at_level(logging.WARNING, logger="pixelwise"):
            ds = Images(root, size=(24, 32), labels=labels)
        assert ds.names == ["good", "sub/deeper/photo"]
        assert "3 of 5 images have no pseudo-label file" in caplog.text
        kps = ds[0]["keypoints"]
        assert kps.dtype == torch.float32 and kps.tolist() == [[1.0, 2.0], [3.5, 4.0]]
        assert ds[1]["keypoints"].shape == (0, 2)
        assert read_pseudo_labels(labels / "good.npz")["scores"].tolist() == [1.0, 1.0]

    def test_label_heatmaps_are_read_as_float32_and_must_fit(self, tree, tmp_path):
        # PseudoLabelWriter's layout with save_heatmap=true: compressed, heatmap float16 [H,W].
        root, _ = tree
        labels = tmp_path / "labels"
        labels.mkdir()
        heat = np.random.default_rng(0).random((24, 32)).astype(np.float16)
        np.savez_compressed(
            labels / "good.npz",
            keypoints=np.array([[1.0, 2.0]], np.float32),
            scores=np.ones(1, np.float32),
            image_size=np.array([24, 32]),
            heatmap=heat,
        )
        item = Images(root, size=(24, 32), labels=labels, label_heatmaps=True)[0]
        assert item["heatmap"].dtype == torch.float32 and item["heatmap"].shape == (1, 24, 32)
        np.testing.assert_array_equal(item["heatmap"][0].numpy(), heat.astype(np.float32))
        assert "heatmap" not in Images(root, size=(24, 32), labels=labels)[0]
        with pytest.raises(ValueError, match=r"heatmap of shape \(24, 32\), expected \(48, 64\)"):
            Images(root, size=(48, 64), labels=labels, label_heatmaps=True)[0]
        np.savez(labels / "good.npz", keypoints=np.zeros((0, 2)), scores=np.zeros(0))
        with pytest.raises(ValueError, match="no 'heatmap'.*save_heatmap=true"):
            Images(root, size=(24, 32), labels=labels, label_heatmaps=True)[0]
        with pytest.raises(ValueError, match="label_heatmaps=true .* set data.labels=DIR"):
            Images(root, label_heatmaps=True)

    def test_bad_arguments_and_layouts_are_clear_errors(self, tree, tmp_path):
        root, _ = tree
        with pytest.raises(FileNotFoundError, match="no such directory of images"):
            Images(tmp_path / "nope")
        (tmp_path / "blank").mkdir()
        with pytest.raises(FileNotFoundError, match="no image files"):
            Images(tmp_path / "blank")
        with pytest.raises(ValueError, match="resize='fit'"):
            Images(root, resize="fit")
        with pytest.raises(ValueError, match="small='shrink'"):
            Images(root, small="shrink")
        with pytest.raises(FileNotFoundError, match="none of the 5 images has a pseudo-label"):
            Images(root, labels=tmp_path / "blank")
        with pytest.raises(FileNotFoundError, match="labels=.*no such directory"):
            Images(root, labels=tmp_path / "missing")
        _png(root / "good.jpg", np.zeros((8, 8), np.uint8))
        with pytest.raises(
            ValueError, match=r"good.jpg and good.png would share the output name good.npz"
        ):
            Images(root)


def test_coco_layout_names_and_errors(tmp_path):
    _png(tmp_path / "train2014" / "COCO_train2014_000000000009.jpg", np.zeros((30, 40), np.uint8))
    ds = COCO(tmp_path, "train2014", size=(24, 32))
    assert ds.names == ["train2014/COCO_train2014_000000000009"]
    assert ds[0]["image"].shape == (1, 24, 32)
    with pytest.raises(FileNotFoundError, match=r"val2014 not found; expected the COCO layout"):
        COCO(tmp_path, "val2014")
    with pytest.raises(ValueError, match="split='train'"):
        COCO(tmp_path, "train")
