"""The Python API: `from pixelwise import SuperPoint, MagicPoint`, from_pretrained, extract()."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from skimage import data as skdata
from torch import nn

import pixelwise
from pixelwise import MagicPoint, SuperPoint
from pixelwise.geometry.cells import logits_to_heatmap
from pixelwise.geometry.keypoints import extract_keypoints
from pixelwise.nets.superpoint import SuperPointNet, superpoint_from_file
from pixelwise.pretrained import WEIGHTS_DIR, shipped_weights, weights_path
from pixelwise.tasks.superpoint import SuperPointTask


@pytest.fixture(scope="module")
def camera() -> torch.Tensor:
    """skimage's camera photograph at 240x320 (HPatches' detector size), [1,1,H,W] in [0, 1]."""
    image = torch.from_numpy(skdata.camera()).float()[None, None] / 255.0
    return F.interpolate(image, size=(240, 320), mode="area")


@pytest.fixture(scope="module")
def superpoint() -> SuperPoint:
    return SuperPoint.from_pretrained("superpoint_photos")


@pytest.fixture(scope="module")
def magicpoint() -> MagicPoint:
    return MagicPoint.from_pretrained("magicpoint_shapes")


def test_from_pretrained_is_an_eval_mode_module_with_the_shipped_weights(superpoint, magicpoint):
    for net, name in ((superpoint, "superpoint_photos"), (magicpoint, "magicpoint_shapes")):
        assert isinstance(net, nn.Module) and isinstance(net, SuperPointNet)
        assert not net.training
        assert net.pretrained == str(WEIGHTS_DIR / f"{name}.pt")
        reference = torch.load(WEIGHTS_DIR / f"{name}.pt", weights_only=True)
        assert net.state_dict().keys() == reference.keys()
        assert all(torch.equal(net.state_dict()[k], v) for k, v in reference.items())
    assert superpoint.descriptor and not magicpoint.descriptor
    assert shipped_weights() == [
        "fcos_synthetic",
        "magicpoint_photos",
        "magicpoint_shapes",
        "superpoint_photos",
    ]


def test_superpoint_extract_names_shapes_and_order(superpoint, camera):
    (features,) = superpoint.extract(camera, max_keypoints=1000)
    n = features["keypoints"].shape[0]
    assert set(features) == {"keypoints", "scores", "descriptors", "image_size"}
    assert 50 < n <= 1000  # a photograph has corners
    assert features["keypoints"].shape == (n, 2) and features["keypoints"].dtype == torch.float32
    assert features["scores"].shape == (n,)
    assert features["descriptors"].shape == (n, 256)
    assert features["image_size"].tolist() == [320.0, 240.0]  # (W, H) as LightGlue takes it
    x, y = features["keypoints"].T
    assert x.min() >= 4 and x.max() < 320 - 4 and y.min() >= 4 and y.max() < 240 - 4  # border 4
    assert torch.all(features["scores"][:-1] >= features["scores"][1:])  # best first
    assert torch.all(features["scores"] >= 0.005)  # the threshold in superpoint_photos.json
    torch.testing.assert_close(features["descriptors"].norm(dim=1), torch.ones(n))
    top = superpoint.extract(camera, max_keypoints=10)[0]
    assert torch.equal(top["keypoints"], features["keypoints"][:10])


def test_superpoint_extract_equals_the_task_level_extraction(superpoint, camera):
    # The task's defaults are the demo's 0.015 / 4 / 4; the shipped file's own threshold is 0.005.
    task = SuperPointTask(
        superpoint_from_file(weights_path("superpoint_photos")),
        channels_last=False,
        detection_threshold=0.005,
    )
    for kwargs in ({}, {"threshold": 0.05, "nms_radius": 2, "border": 8}):
        ours = superpoint.extract(camera, max_keypoints=300, **kwargs)[0]
        theirs = task.extract(camera, max_keypoints=300, **kwargs)[0]
        assert torch.equal(ours["keypoints"], theirs["keypoints"])
        torch.testing.assert_close(ours["scores"], theirs["scores"], atol=0, rtol=0)
        torch.testing.assert_close(ours["descriptors"], theirs["descriptors"], atol=0, rtol=0)


def test_magicpoint_extract_equals_the_geometry_pipeline(magicpoint, camera):
    net = superpoint_from_file(weights_path("magicpoint_shapes")).eval()
    with torch.no_grad():
        heat = logits_to_heatmap(net(camera)["logits"], image_size=(240, 320))
    expected = extract_keypoints(heat, threshold=0.015, nms_radius=4, border=4, top_k=1000)[0]
    (features,) = magicpoint.extract(camera)
    assert set(features) == {"keypoints", "scores", "image_size"}
    assert len(expected["keypoints"]) > 10
    assert torch.equal(features["keypoints"], expected["keypoints"])
    assert torch.equal(features["scores"], expected["scores"])


def test_shift_step_detects_on_the_shift_averaged_heatmap(superpoint, magicpoint, camera):
    from pixelwise.geometry.adaptation import shift_averaged_heatmap
    from pixelwise.nets.superpoint import sample_descriptors

    net = superpoint_from_file(weights_path("superpoint_photos")).eval()
    with torch.no_grad():
        out = net(camera)
        heat = shift_averaged_heatmap(
            lambda x: logits_to_heatmap(net(x)["logits"], image_size=x.shape[-2:]), camera, step=4
        )
    expected = extract_keypoints(heat, threshold=0.005, nms_radius=4, border=4, top_k=300)[0]
    (got,) = superpoint.extract(camera, max_keypoints=300, shift_step=4)
    assert len(expected["keypoints"]) == 300
    assert torch.equal(got["keypoints"], expected["keypoints"])
    torch.testing.assert_close(got["scores"], expected["scores"])
    descriptors = sample_descriptors(out["descriptors"][0], expected["keypoints"])
    torch.testing.assert_close(got["descriptors"], descriptors)
    plain = superpoint.extract(camera, max_keypoints=300)[0]
    assert not torch.equal(got["keypoints"], plain["keypoints"])
    # MagicPoint too; shift_step=8 is the single pass.
    assert torch.equal(
        magicpoint.extract(camera, shift_step=8)[0]["keypoints"],
        magicpoint.extract(camera)[0]["keypoints"],
    )
    assert len(magicpoint.extract(camera, shift_step=2)[0]["keypoints"]) > 10
    with pytest.raises(ValueError, match=r"extract: shift_step=0: expected an int in \[1, 8\]"):
        superpoint.extract(camera, shift_step=0)


def test_num_homographies_detects_on_the_homographic_adaptation(superpoint, magicpoint, camera):
    from pixelwise.geometry import ADAPTATION_HOMOGRAPHY, homographic_adaptation
    from pixelwise.nets.superpoint import sample_descriptors

    small = F.interpolate(camera, size=(120, 160), mode="area")
    net = superpoint_from_file(weights_path("superpoint_photos")).eval()

    def heatmap(x):
        return logits_to_heatmap(net(x)["logits"], image_size=x.shape[-2:])

    with torch.no_grad():
        out = net(small)
        heat = homographic_adaptation(
            heatmap, small, 6, generator=torch.Generator().manual_seed(3), **ADAPTATION_HOMOGRAPHY
        )
    expected = extract_keypoints(heat, threshold=0.005, nms_radius=4, border=4, top_k=100)[0]
    (got,) = superpoint.extract(small, max_keypoints=100, num_homographies=6, seed=3)
    assert len(expected["keypoints"]) > 20
    assert torch.equal(got["keypoints"], expected["keypoints"])
    torch.testing.assert_close(got["scores"], expected["scores"])
    # Descriptors of the adapted points come from the plain pass.
    torch.testing.assert_close(
        got["descriptors"], sample_descriptors(out["descriptors"][0], expected["keypoints"])
    )
    # Reproducible by seed; another seed draws other homographies; 1 is the plain pass.
    again = superpoint.extract(small, max_keypoints=100, num_homographies=6, seed=3)[0]
    assert torch.equal(again["keypoints"], got["keypoints"])
    other = superpoint.extract(small, max_keypoints=100, num_homographies=6, seed=4)[0]
    assert not torch.equal(other["scores"], got["scores"])
    assert torch.equal(
        magicpoint.extract(small, num_homographies=1)[0]["keypoints"],
        magicpoint.extract(small)[0]["keypoints"],
    )
    # With shifts: each warped image is shift-averaged too; the identity runs once per shift.
    calls = []
    counting = MagicPoint.from_pretrained("magicpoint_shapes")
    counting.register_forward_hook(lambda module, args, output: calls.append(args[0].shape[0]))
    counting.extract(small, num_homographies=6, shift_step=4)
    assert sum(calls) == 6 * 4  # not one more for the identity
    # Homography parameters are the sampler's; a rotation-free draw differs.
    upright = magicpoint.extract(
        small, num_homographies=6, homography={**ADAPTATION_HOMOGRAPHY, "rotation": False}
    )[0]
    assert not torch.equal(
        upright["scores"], magicpoint.extract(small, num_homographies=6)[0]["scores"]
    )


def test_num_homographies_errors_say_what_was_expected(magicpoint, camera):
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match=r"extract: num_homographies=.*expected an int >= 1"):
            magicpoint.extract(camera, num_homographies=bad)
    with pytest.raises(ValueError, match=r"unknown homography parameter\(s\) \['angle'\]"):
        magicpoint.extract(camera, num_homographies=2, homography={"angle": 1.0})


def test_input_forms_agree(superpoint, camera):
    reference = superpoint.extract(camera)[0]
    as_uint8 = (camera * 255).round().to(torch.uint8)
    forms = {
        "[1,H,W]": camera[0],
        "[H,W]": camera[0, 0],
        "rgb": camera.expand(-1, 3, -1, -1),  # grey RGB: BT.601 weights sum to 1
    }
    for name, images in forms.items():
        got = superpoint.extract(images)[0]
        assert torch.equal(got["keypoints"], reference["keypoints"]), name
    quantised = superpoint.extract(as_uint8.float() / 255)[0]
    assert torch.equal(superpoint.extract(as_uint8)[0]["keypoints"], quantised["keypoints"])
    batch = superpoint.extract(torch.cat([camera, camera.flip(-1)]))
    assert len(batch) == 2 and torch.equal(batch[0]["keypoints"], reference["keypoints"])
    mixed = superpoint.extract([camera[0], camera[0, :, :100, :90]])
    assert [f["image_size"].tolist() for f in mixed] == [[320.0, 240.0], [90.0, 100.0]]
    assert torch.equal(mixed[0]["keypoints"], reference["keypoints"])


def test_extract_keeps_the_mode_and_needs_no_grad(superpoint, camera):
    superpoint.train()
    try:
        features = superpoint.extract(camera)[0]
        assert superpoint.training
    finally:
        superpoint.eval()
    assert not features["descriptors"].requires_grad


def test_bad_inputs_say_what_was_expected(superpoint, camera):
    with pytest.raises(ValueError, match=r"got shape \[1, 2, 240, 320\]"):
        superpoint.extract(camera.expand(-1, 2, -1, -1))
    with pytest.raises(TypeError, match="float in \\[0, 1\\] or uint8"):
        superpoint.extract(camera.to(torch.int32))
    with pytest.raises(TypeError, match="non-empty list"):
        superpoint.extract([])
    with pytest.raises(ValueError, match="extract.max_keypoints=0"):
        superpoint.extract(camera, max_keypoints=0)
    with pytest.raises(ValueError, match="extract.threshold=2"):
        superpoint.extract(camera, threshold=2)


def test_names_paths_and_wrong_weights(tmp_path):
    assert weights_path("superpoint_photos.pt") == WEIGHTS_DIR / "superpoint_photos.pt"
    path = tmp_path / "mine.pt"
    torch.save(
        SuperPointNet(channels=(4, 4, 8, 8), head_channels=8, descriptor_dim=6).state_dict(), path
    )
    mine = SuperPoint.from_pretrained(str(path))
    assert mine.descriptor_dim == 6 and mine.pretrained == str(path)
    # A SuperPoint file gives MagicPoint its detector.
    detector = MagicPoint.from_pretrained(path)
    assert not detector.descriptor
    assert torch.equal(detector.convPb.weight, mine.convPb.weight)
    with pytest.raises(ValueError, match="no descriptor head.*MagicPoint.from_pretrained"):
        SuperPoint.from_pretrained("magicpoint_shapes")
    with pytest.raises(
        FileNotFoundError,
        match="shipped: fcos_synthetic, magicpoint_photos, magicpoint_shapes, superpoint_photos",
    ):
        SuperPoint.from_pretrained("superpoint_nothing")


def test_import_needs_neither_lightning_nor_hydra():
    code = (
        "import os, sys\n"
        "from pixelwise import SuperPoint, MagicPoint\n"
        "import pixelwise.metrics\n"
        "SuperPoint.from_pretrained('superpoint_photos')\n"
        "print(sorted(m for m in ('lightning', 'hydra', 'omegaconf') if m in sys.modules))\n"
        "print(os.environ['NO_ALBUMENTATIONS_UPDATE'])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["[]", "1"]


def test_metrics_exports():
    from pixelwise import metrics

    assert {"BoundaryF", "InstanceIoU", "CategoryIoU", "KeypointAP", "Repeatability"} <= set(
        metrics.__all__
    )
    assert all(hasattr(metrics, name) for name in metrics.__all__)
    assert pixelwise.__version__
