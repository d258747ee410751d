"""SuperPointTask: extraction on a known heatmap, bilinear descriptors, loss glue, checkpoints without a net."""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F

from pixelwise.geometry.cells import keypoints_to_cell_labels, logits_to_heatmap
from pixelwise.losses.cell_cross_entropy import cell_cross_entropy
from pixelwise.losses.descriptor_hinge import descriptor_hinge_loss
from pixelwise.nets.superpoint import SuperPointNet, sample_descriptors, superpoint_net_config
from pixelwise.tasks.superpoint import SuperPointTask
from tests.checkpoints import save_lightning_checkpoint

TINY = {"channels": [4, 4, 8, 8], "head_channels": 8, "descriptor_dim": 6}


class FixedNet(SuperPointNet):
    """A SuperPointNet whose outputs are given tensors (logits [1,65,Hc,Wc], descriptors [1,D,Hc,Wc])."""

    def __init__(self, logits: torch.Tensor, descriptors: torch.Tensor) -> None:
        super().__init__(**{**TINY, "descriptor_dim": descriptors.shape[1]})
        self.fixed = {"logits": logits, "descriptors": descriptors}

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return {k: v.expand(images.shape[0], -1, -1, -1) for k, v in self.fixed.items()}


def make_task(net=None, **kwargs) -> SuperPointTask:
    net = net if net is not None else SuperPointNet(**TINY)
    task = SuperPointTask(
        net, functools.partial(torch.optim.Adam, lr=1e-3), channels_last=False, **kwargs
    )
    task.log = lambda *a, **k: None  # no trainer attached
    return task


class TestExtract:
    def test_points_scores_and_descriptors_of_a_known_heatmap(self):
        torch.manual_seed(0)
        hc, wc, d = 4, 5, 6
        logits = torch.zeros(1, 65, hc, wc)
        logits[0, 64] = 20.0  # every cell: "no point"
        # Cell (h=2, w=3), position dy=1, dx=5 -> pixel (x, y) = (29, 17), probability ~1.
        logits[0, 1 * 8 + 5, 2, 3] = 40.0
        # Cell (h=1, w=1), position dy=4, dx=4 -> (12, 12); logit 20 = dustbin: probability 1/2.
        logits[0, 4 * 8 + 4, 1, 1] = 20.0
        # Cell (0, 0) position (0, 0) -> (0, 0): a strong point inside the 4-px border, dropped.
        logits[0, 0, 0, 0] = 40.0
        desc = torch.randn(1, d, hc, wc)
        task = make_task(FixedNet(logits, desc))
        (feats,) = task.extract(torch.zeros(1, 1, 8 * hc, 8 * wc))
        assert feats["keypoints"].tolist() == [[29.0, 17.0], [12.0, 12.0]]
        assert feats["scores"][0] == pytest.approx(1.0, abs=1e-6)
        assert feats["scores"][1] == pytest.approx(0.5, abs=1e-6)
        # Descriptor at (29, 17): coarse (x, y) = ((29 - 3.5) / 8, (17 - 3.5) / 8) = (3.1875, 1.6875).
        dense = F.normalize(desc[0], dim=0)
        fx, fy = 3.1875 - 3, 1.6875 - 1
        ref = (
            dense[:, 1, 3] * (1 - fx) * (1 - fy)
            + dense[:, 1, 4] * fx * (1 - fy)
            + dense[:, 2, 3] * (1 - fx) * fy
            + dense[:, 2, 4] * fx * fy
        )
        assert torch.allclose(feats["descriptors"][0], F.normalize(ref, dim=0), atol=1e-5)
        assert torch.allclose(feats["descriptors"].norm(dim=1), torch.ones(2), atol=1e-5)

    def test_max_keypoints_and_threshold(self):
        logits = torch.zeros(1, 65, 4, 5)
        logits[0, 64] = 20.0
        logits[0, 1 * 8 + 5, 2, 3] = 40.0
        logits[0, 4 * 8 + 4, 1, 1] = 20.0
        task = make_task(FixedNet(logits, torch.randn(1, 6, 4, 5)))
        (top1,) = task.extract(torch.zeros(1, 1, 32, 40), max_keypoints=1)
        assert top1["keypoints"].tolist() == [[29.0, 17.0]]
        (high,) = task.extract(torch.zeros(1, 1, 32, 40), threshold=0.6)
        assert high["keypoints"].tolist() == [[29.0, 17.0]]

    def test_any_image_size_and_batch(self):
        task = make_task()
        feats = task.extract(
            torch.rand(2, 1, 37, 45), threshold=0.0, max_keypoints=50, nms_radius=0
        )
        assert len(feats) == 2
        for f in feats:
            n = len(f["keypoints"])
            assert n == 50 and f["descriptors"].shape == (n, 6)
            assert bool(
                (f["keypoints"][:, 0] < 45 - 4).all() and (f["keypoints"][:, 1] < 37 - 4).all()
            )


class TestSampleDescriptors:
    def test_cell_centres_give_the_normalised_map(self):
        torch.manual_seed(1)
        desc = torch.randn(5, 3, 4)
        hs, ws = torch.meshgrid(torch.arange(3), torch.arange(4), indexing="ij")
        points = torch.stack([ws.flatten() * 8 + 3.5, hs.flatten() * 8 + 3.5], dim=1)
        got = sample_descriptors(desc, points)
        ref = F.normalize(desc, dim=0).reshape(5, -1).T
        assert torch.allclose(got, ref, atol=1e-6)

    def test_midpoint_is_the_normalised_mean_and_border_clamps(self):
        desc = torch.randn(5, 2, 2)
        dense = F.normalize(desc, dim=0)
        got = sample_descriptors(desc, torch.tensor([[7.5, 3.5], [0.0, 0.0]]))
        mean = (dense[:, 0, 0] + dense[:, 0, 1]) / 2
        assert torch.allclose(got[0], F.normalize(mean, dim=0), atol=1e-6)
        assert torch.allclose(got[1], dense[:, 0, 0], atol=1e-6)  # before the first centre: border

    def test_no_points(self):
        assert sample_descriptors(torch.randn(5, 2, 2), torch.zeros(0, 2)).shape == (0, 5)


def pair_batch(size=(32, 40)):
    torch.manual_seed(2)
    h = torch.tensor([[1.0, 0.0, 8.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    kps = [torch.tensor([[5.0, 6.0], [20.0, 17.0]]), torch.tensor([[11.0, 9.0]])]
    return {
        "image_a": torch.rand(2, 1, *size),
        "image_b": torch.rand(2, 1, *size),
        "keypoints_a": kps,
        "keypoints_b": [k + torch.tensor([8.0, 0.0]) for k in kps],
        "valid_mask_a": torch.ones(2, *size, dtype=torch.bool),
        "valid_mask_b": torch.ones(2, *size, dtype=torch.bool),
        "homography": torch.stack([h, h]),
        "kind": ["v", "v"],
    }


class TestLoss:
    def test_loss_is_both_detector_losses_plus_weighted_descriptor_loss(self):
        task = make_task()
        batch = pair_batch()
        out_a, out_b = task._pair_forward(batch)
        got = task.losses(batch, out_a, out_b)
        size = (32, 40)
        det = cell_cross_entropy(
            out_a["logits"], keypoints_to_cell_labels(batch["keypoints_a"], size)
        ) + cell_cross_entropy(
            out_b["logits"], keypoints_to_cell_labels(batch["keypoints_b"], size)
        )
        desc = descriptor_hinge_loss(
            out_a["descriptors"], out_b["descriptors"], batch["homography"], batch["valid_mask_b"]
        )
        assert got["loss"].item() == pytest.approx((det + 1e-4 * desc).item(), rel=1e-5)
        assert got["descriptor"].item() == pytest.approx(
            (got["positive"] + got["negative"]).item(), rel=1e-5
        )
        loss = task.training_step(batch, 0)
        loss.backward()
        assert task.net.convDb.weight.grad.abs().sum() > 0

    def test_singular_homography_is_skipped_not_nan(self):
        task = make_task()
        batch = pair_batch()
        batch["homography"][0] = 0.0
        out_a, out_b = task._pair_forward(batch)
        got = task.losses(batch, out_a, out_b)
        assert torch.isfinite(got["loss"]) and got["skipped"].item() == 1


class TestCheckpoint:
    def _save(self, tmp_path, task):
        path = tmp_path / "sp.ckpt"
        save_lightning_checkpoint(task, path)
        return path

    def test_load_from_checkpoint_without_net(self, tmp_path):
        task = make_task(lambda_d=100.0)
        path = self._save(tmp_path, task)
        loaded = SuperPointTask.load_from_checkpoint(path, map_location="cpu")
        assert superpoint_net_config(loaded.net) == {
            **TINY,
            "descriptor": True,
            "batch_norm": False,
            "refine_channels": 0,
        }
        assert loaded.hparams.lambda_d == 100.0
        image = torch.rand(1, 1, 24, 32)
        a, b = task.extract(image, threshold=0.0)[0], loaded.extract(image, threshold=0.0)[0]
        assert torch.equal(a["keypoints"], b["keypoints"])
        assert torch.allclose(a["descriptors"], b["descriptors"])

    def test_descriptor_dim_mismatch_is_a_clear_error(self, tmp_path):
        path = self._save(tmp_path, make_task())
        with pytest.raises(ValueError, match=r"D=6 .*model.descriptor_dim=16"):
            SuperPointTask.load_from_checkpoint(
                path, net=SuperPointNet(**{**TINY, "descriptor_dim": 16})
            )

    def test_bad_net(self):
        with pytest.raises(ValueError, match="descriptor=True"):
            SuperPointTask(SuperPointNet(descriptor=False, channels=[4, 4, 8, 8], head_channels=8))
        with pytest.raises(ValueError, match="net_config"):
            SuperPointTask(None)


def test_detector_weights_load_encoder_and_detector_not_descriptor(tmp_path):
    torch.manual_seed(3)
    magic = SuperPointNet(
        descriptor=False, **{k: v for k, v in TINY.items() if k != "descriptor_dim"}
    )
    path = tmp_path / "magicpoint.pt"
    torch.save(magic.state_dict(), path)
    torch.manual_seed(4)
    net = SuperPointNet(**TINY)
    before = net.convDb.weight.clone()
    task = SuperPointTask(net, detector_weights=str(path))
    for key, value in magic.state_dict().items():
        assert torch.equal(task.net.state_dict()[key], value), key
    assert torch.equal(task.net.convDb.weight, before)
    # A whole pretrained SuperPoint is never silently overwritten by a MagicPoint.
    full = tmp_path / "superpoint.pt"
    torch.save(SuperPointNet(**TINY).state_dict(), full)
    with pytest.raises(ValueError, match="exclude each other: set task.detector_weights=null"):
        SuperPointTask(SuperPointNet(**TINY, pretrained=str(full)), detector_weights=str(path))


def test_training_without_keypoints_is_a_clear_error():
    task = SuperPointTask(SuperPointNet(**TINY))
    images = torch.rand(1, 1, 16, 24)
    batch = {"image_a": images, "image_b": images, "homography": torch.eye(3)[None]}
    with pytest.raises(ValueError, match="no keypoints_a.*data.train.labels"):
        task.training_step(batch, 0)


class TestPartNmsRadius:
    """HPatches-protocol parts extract with their own NMS radius (8 px at 480x640, 4 at 240x320)."""

    @staticmethod
    def two_close_points_task(**kwargs) -> SuperPointTask:
        logits = torch.zeros(1, 65, 4, 5)
        logits[0, 64] = 20.0
        logits[0, 4 * 8 + 4, 1, 1] = 40.0  # (x, y) = (12, 12), probability ~1
        logits[0, 4 * 8 + 2, 1, 2] = 20.0  # (18, 12), probability 1/2: 6 px from the first
        return make_task(FixedNet(logits, torch.randn(1, 6, 4, 5)), **kwargs)

    @staticmethod
    def batch(split: str | None) -> dict:
        batch = {
            "image_a": torch.zeros(1, 1, 32, 40),
            "image_b": torch.zeros(1, 1, 32, 40),
            "homography": torch.eye(3)[None],
        }
        if split is not None:
            batch["split"] = [split]
        return batch

    def test_each_part_uses_its_radius_and_others_nms_radius(self):
        task = self.two_close_points_task(
            nms_radius=4, part_extraction={"descriptors": {"nms_radius": 8}}
        )
        both = [[12.0, 12.0], [18.0, 12.0]]
        for split, part, expected in (
            ("test", "descriptors", [[12.0, 12.0]]),  # radius 8 suppresses the weaker point
            ("detector_test", "detector", both),  # not listed: nms_radius 4 keeps both
            (None, "both", both),
        ):
            out = task.evaluation_step(self.batch(split), "test")
            assert out.part == part
            for features in (out.features_a[0], out.features_b[0]):
                assert features["keypoints"].tolist() == expected, split

    def test_a_part_threshold_overrides_the_task_threshold(self):
        task = self.two_close_points_task(
            nms_radius=4, part_extraction={"detector": {"detection_threshold": 0.6}}
        )
        out = task.evaluation_step(self.batch("detector_test"), "test")
        assert out.features_a[0]["keypoints"].tolist() == [[12.0, 12.0]]  # 0.5 < 0.6 dropped
        out = task.evaluation_step(self.batch("test"), "test")
        assert len(out.features_a[0]["keypoints"]) == 2

    def test_bad_part_key_or_value_is_a_clear_error(self):
        with pytest.raises(ValueError, match=r"task.part_extraction.descriptor: unknown part"):
            self.two_close_points_task(part_extraction={"descriptor": {"nms_radius": 8}})
        with pytest.raises(
            ValueError, match=r"task.part_extraction.detector: unknown keys \['nms'\]"
        ):
            self.two_close_points_task(part_extraction={"detector": {"nms": 8}})
        with pytest.raises(
            ValueError, match=r"task.part_extraction.detector.nms_radius=-1: expected >= 0"
        ):
            self.two_close_points_task(part_extraction={"detector": {"nms_radius": -1}})


class TestEvalShiftStep:
    """task.eval_shift_step: detection on the shift-averaged heatmap, descriptors from the plain pass."""

    def test_detections_are_the_shift_averaged_heatmaps_and_descriptors_the_plain_ones(self):
        from pixelwise.geometry.adaptation import shift_averaged_heatmap

        torch.manual_seed(0)
        task = make_task(SuperPointNet(**TINY).eval(), eval_shift_step=4, detection_threshold=0.0)
        task.eval()
        images = torch.rand(2, 1, 32, 40)
        batch = {"image_a": images, "image_b": images.flip(-1), "homography": torch.eye(3)[None]}
        out = task.evaluation_step(batch, "val")
        with torch.no_grad():
            heat = shift_averaged_heatmap(
                lambda x: logits_to_heatmap(task(x)["logits"], image_size=x.shape[-2:]), images, 4
            )
            plain = task(images)
        expected = task.extraction(heat)
        for got, want, descriptors in zip(out.features_a, expected, plain["descriptors"]):
            assert torch.equal(got["keypoints"], want["keypoints"])
            torch.testing.assert_close(got["scores"], want["scores"])
            torch.testing.assert_close(
                got["descriptors"], sample_descriptors(descriptors, want["keypoints"])
            )
        single = make_task(task.net, detection_threshold=0.0).evaluation_step(batch, "val")
        assert not torch.equal(single.features_a[0]["keypoints"], out.features_a[0]["keypoints"])

    @pytest.mark.parametrize("step", [0, 9, 4.0])
    def test_out_of_range_is_refused(self, step):
        with pytest.raises(ValueError, match=r"task.eval_shift_step=.*expected an int in \[1, 8\]"):
            make_task(eval_shift_step=step)
