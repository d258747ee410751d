"""The shipped weights/superpoint_photos.pt: it fits its recipe's model config and recovers a known
homography on a held-out photograph (one it was not trained on)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from pixelwise.data.hpatches_offline import photo
from pixelwise.data.images import fit_to_size, to_gray_float
from pixelwise.geometry.homography import warp_points
from pixelwise.geometry.matching import match_descriptors, ransac_inliers
from pixelwise.metrics.homography_accuracy import corner_error
from pixelwise.nets.superpoint import superpoint_from_file
from pixelwise.tasks.superpoint import SuperPointTask

REPO = Path(__file__).resolve().parents[2]
WEIGHTS = REPO / "weights" / "superpoint_photos.pt"
SIZE = (240, 320)


def _recipe_net(weights: Path):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=superpoint_photos"])
    return instantiate(cfg.model, pretrained=str(weights)), cfg.task.detection_threshold


def test_shipped_weights_fit_the_recipe_model_config():
    net, _ = _recipe_net(WEIGHTS)
    reference = superpoint_from_file(WEIGHTS)
    state = torch.load(WEIGHTS, map_location="cpu", weights_only=True)
    assert net.state_dict().keys() == state.keys()
    for key, value in net.state_dict().items():
        assert torch.equal(value, state[key]), key
        assert torch.equal(value, reference.state_dict()[key]), key


def test_shipped_weights_recover_a_homography_on_a_held_out_photograph():
    net, threshold = _recipe_net(WEIGHTS)
    task = SuperPointTask(net).eval()
    image = fit_to_size(to_gray_float(photo("coffee")), SIZE, "crop", "upscale")
    # 12 degrees and 1.15x zoom about the centre: a moderate view change. (Under added perspective
    # its localization, ~1.5 px against ORB's ~0.9, puts the corner error near 5 px: the
    # viewpoint weakness the README reports.)
    h, w = SIZE
    angle, zoom = np.radians(12.0), 1.15
    centre = np.array([(w - 1) / 2, (h - 1) / 2])
    rot = zoom * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    truth = np.eye(3)
    truth[:2, :2] = rot
    truth[:2, 2] = centre - rot @ centre
    warped = cv2.warpPerspective(image, truth, (w, h), flags=cv2.INTER_LINEAR)

    with torch.inference_mode():
        feats = [
            task.extract(torch.from_numpy(im)[None], max_keypoints=1000, threshold=threshold)[0]
            for im in (image, warped)
        ]
    assert min(len(f["keypoints"]) for f in feats) >= 200
    matches = match_descriptors(feats[0]["descriptors"], feats[1]["descriptors"])
    estimate, inliers = ransac_inliers(feats[0]["keypoints"], feats[1]["keypoints"], matches)
    assert estimate is not None and inliers.sum() >= 40
    truth = torch.from_numpy(truth)
    assert corner_error(torch.from_numpy(estimate), truth, SIZE) <= 3.0

    # Matches agree with the true homography far beyond chance.
    projected = warp_points(feats[0]["keypoints"][matches[:, 0]].double(), truth)
    correct = (projected - feats[1]["keypoints"][matches[:, 1]].double()).norm(dim=1) <= 3.0
    assert correct.float().mean() >= 0.5


@pytest.mark.slow
def test_shift_averaged_detection_is_more_repeatable_on_the_val_photographs():
    """The README's 4-shift result in small: 8 seeded pairs of the val photographs coffee and rocket.

    Measured when written: repeatability (top 300, 3 px) 0.580 in one pass, 0.638 with shift_step=4.
    """
    from pixelwise import SuperPoint
    from pixelwise.geometry.homography import sample_homography, warp_images, warp_valid_mask
    from pixelwise.metrics.repeatability import Repeatability

    net = SuperPoint.from_pretrained(WEIGHTS)
    images = torch.stack(
        [
            torch.from_numpy(fit_to_size(to_gray_float(photo(name)), SIZE, "crop", "upscale"))
            for name in ("coffee", "rocket")
        ]
    )[:, None].repeat_interleave(4, 0)
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["task=homographic_adaptation"])
    evaluation = OmegaConf.to_container(cfg.task.eval_homography, resolve=True)
    homographies = sample_homography(
        len(images), SIZE, generator=torch.Generator().manual_seed(0), **evaluation
    )
    warped = warp_images(images, homographies)
    valid = warp_valid_mask(SIZE, homographies, border_margin=3)
    scores = {}
    for step in (8, 4):
        metric = Repeatability(distance=3.0, top_k=300)
        features_a = net.extract(images, max_keypoints=None, shift_step=step)
        features_b = net.extract(warped, max_keypoints=None, shift_step=step)
        kept = []
        for features, mask in zip(features_b, valid):
            pixel = features["keypoints"].round().long()
            kept.append(mask[pixel[:, 1], pixel[:, 0]])
        metric.update(
            [f["keypoints"] for f in features_a],
            [f["scores"] for f in features_a],
            [f["keypoints"][k] for f, k in zip(features_b, kept)],
            [f["scores"][k] for f, k in zip(features_b, kept)],
            homographies,
            SIZE,
        )
        scores[step] = float(metric.compute())
    assert 0.5 < scores[8] < 0.66
    assert scores[4] >= scores[8] + 0.03
