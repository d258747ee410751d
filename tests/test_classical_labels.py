"""pixelwise.classical_labels: Harris/FAST points written as pseudo-labels the training data reads back."""

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from pixelwise.classical_labels import main
from pixelwise.data.images import Images
from pixelwise.geometry.keypoints import extract_keypoints
from pixelwise.nets.classical_detectors import ClassicalDetector


@pytest.fixture
def image_root(tmp_path):
    """Three PNGs of random triangles (corners at all angles), one in a subfolder."""
    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    (root / "sub").mkdir(parents=True)
    for name in ("a.png", "b.png", "sub/c.png"):
        image = np.full((96, 128), 128, np.uint8)
        for _ in range(12):
            corners = rng.integers(0, (128, 96), (3, 2)).astype(np.int32)
            cv2.fillPoly(image, [corners], int(rng.integers(0, 256)))
        Image.fromarray(image).save(root / name)
    return root


@pytest.mark.parametrize("method", ["harris", "fast"])
def test_labels_are_the_detectors_extraction_and_load_as_training_labels(
    image_root, tmp_path, method
):
    out = tmp_path / "labels"
    count = main(
        [str(image_root), str(out), "--method", method, "--top-k", "50", "--size", "96", "128"]
    )
    assert count == 3
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.npz")) == [
        "a.npz",
        "b.npz",
        "sub/c.npz",
    ]
    train = Images(root=str(image_root), size=[96, 128], labels=str(out))
    plain = Images(root=str(image_root), size=[96, 128])
    for i in range(len(train)):
        item = train[i]
        heat = ClassicalDetector(method)(torch.as_tensor(plain[i]["image"])[None])
        expected = extract_keypoints(heat, threshold=0.001, nms_radius=4, border=4, top_k=50)[0]
        assert 0 < len(expected["keypoints"]) <= 50
        np.testing.assert_array_equal(np.asarray(item["keypoints"]), expected["keypoints"].numpy())
    with np.load(out / "a.npz") as z:
        assert z["image_size"].tolist() == [96, 128]
        assert z["scores"].shape == (len(z["keypoints"]),)


def test_a_bad_method_is_refused(image_root, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main([str(image_root), str(tmp_path / "out"), "--method", "sift"])
    assert "invalid choice: 'sift'" in capsys.readouterr().err
