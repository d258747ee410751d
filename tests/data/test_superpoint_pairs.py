"""SuperPointPairs: points and images warped by the item's H, resampling/skip counts, label files."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

import pixelwise.data.superpoint_pairs as sp
from pixelwise.data.superpoint_pairs import SuperPointPairs
from pixelwise.geometry.homography import warp_images, warp_points


class PointSource(torch.utils.data.Dataset):
    """A gradient image with given points."""

    def __init__(self, points, size=(48, 64)) -> None:
        self.points = torch.tensor(points, dtype=torch.float32)
        ys, xs = torch.meshgrid(torch.arange(size[0]), torch.arange(size[1]), indexing="ij")
        self.image = ((xs + 2 * ys).float() / (size[1] + 2 * size[0]))[None]

    def __len__(self) -> int:
        return 3

    def __getitem__(self, i):
        return {"image": self.image, "keypoints": self.points}


def test_points_and_image_follow_the_homography():
    pts = [[22.0, 18.0], [30.0, 20.0], [40.0, 30.0], [34.0, 25.0], [0.0, 47.0]]
    ds = SuperPointPairs(source=PointSource(pts), photometric=False, deterministic=True)
    item = ds[1]
    h = item["homography"].double()
    warped = warp_points(torch.tensor(pts, dtype=torch.float64), h)
    # Naive filter: rounded pixel inside the image and valid in B.
    keep = []
    for x, y in warped.tolist():
        c, r = round(x), round(y)
        if 0 <= c < 64 and 0 <= r < 48 and bool(item["valid_mask_b"][r, c]):
            keep.append([x, y])
    assert torch.allclose(
        item["keypoints_b"].double(),
        torch.tensor(keep, dtype=torch.float64).reshape(-1, 2),
        atol=1e-4,
    )
    assert len(keep) >= 2
    assert torch.equal(item["keypoints_a"], torch.tensor(pts))
    ref = warp_images(PointSource(pts).image[None], item["homography"])[0]
    assert torch.allclose(item["image_b"], ref, atol=1e-6)
    assert item["image_a"].shape == (1, 48, 64) and item["kind"] == "v"
    # Deterministic pairs: the same index gives the same pair.
    assert torch.equal(ds[1]["homography"], item["homography"])


def test_photometric_augmentation_is_independent():
    ds = SuperPointPairs(source=PointSource([[5.0, 5.0]]), deterministic=True, seed=3)
    item = ds[0]
    ref = warp_images(PointSource([[5.0, 5.0]]).image[None], item["homography"])[0]
    assert not torch.allclose(item["image_b"], ref, atol=1e-3)
    assert not torch.allclose(item["image_a"], PointSource([[5.0, 5.0]]).image, atol=1e-3)


def test_singular_homographies_fall_back_to_identity_with_a_count(monkeypatch):
    monkeypatch.setattr(sp, "sample_homography", lambda n, shape, **kw: torch.zeros(n, 3, 3))
    ds = SuperPointPairs(source=PointSource([[5.0, 5.0]]), photometric=False, max_tries=3)
    item = ds[0]
    assert torch.equal(item["homography"], torch.eye(3)) and ds.skipped == 1
    assert item["valid_mask_b"].all()


def test_out_of_view_homographies_are_resampled_with_a_count(monkeypatch):
    far = torch.tensor([[1.0, 0.0, 1000.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    near = torch.tensor([[1.0, 0.0, 2.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    draws = iter([far, far, near])
    monkeypatch.setattr(sp, "sample_homography", lambda n, shape, **kw: next(draws)[None])
    ds = SuperPointPairs(source=PointSource([[5.0, 5.0]]), photometric=False)
    item = ds[0]
    assert torch.equal(item["homography"], near) and ds.resampled == 2 and ds.skipped == 0
    assert item["keypoints_b"].tolist() == [[7.0, 5.0]]


def _write_images(root, labels, names_with_labels, names_without):
    root.mkdir()
    labels.mkdir()
    rng = np.random.default_rng(0)
    for n in [*names_with_labels, *names_without]:
        cv2.imwrite(str(root / f"{n}.png"), rng.integers(0, 255, (40, 48), dtype=np.uint8))
    for n in names_with_labels:
        np.savez(
            labels / f"{n}.npz",
            keypoints=np.array([[10.0, 12.0]], np.float32),
            scores=np.ones(1, np.float32),
        )


def test_root_with_pseudo_labels(tmp_path):
    _write_images(tmp_path / "img", tmp_path / "lab", ["a", "b"], [])
    ds = SuperPointPairs(
        root=tmp_path / "img", labels=tmp_path / "lab", size=(32, 40), photometric=False
    )
    assert len(ds) == 2
    assert ds[0]["image_a"].shape == (1, 32, 40)


def test_missing_label_file_is_an_error_naming_it_or_skipped(tmp_path):
    _write_images(tmp_path / "img", tmp_path / "lab", ["a"], ["b"])
    with pytest.raises(FileNotFoundError, match=r"lab/b\.npz.*skip_missing_labels"):
        SuperPointPairs(root=tmp_path / "img", labels=tmp_path / "lab", size=(32, 40))
    ds = SuperPointPairs(
        root=tmp_path / "img", labels=tmp_path / "lab", size=(32, 40), skip_missing_labels=True
    )
    assert len(ds) == 1


def test_bad_arguments():
    with pytest.raises(ValueError, match="exactly one of source"):
        SuperPointPairs()
    with pytest.raises(ValueError, match="homography.shear is unknown"):
        SuperPointPairs(source=PointSource([[1.0, 1.0]]), homography={"shear": 1})


class UnlabelledSource(PointSource):
    def __getitem__(self, i):
        return {"image": self.image}


def test_unlabelled_source_makes_pairs_without_keypoints():
    ds = SuperPointPairs(source=UnlabelledSource([]), photometric=False, deterministic=True)
    item = ds[0]
    assert "keypoints_a" not in item and "keypoints_b" not in item
    # The pair itself is complete: B is A seen through H, on B's valid region.
    expected = warp_images(item["image_a"][None], item["homography"])[0]
    valid = item["valid_mask_b"]
    assert valid.any()
    assert torch.allclose(item["image_b"][0][valid], expected[0][valid], atol=1e-5)
