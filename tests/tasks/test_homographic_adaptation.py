"""HomographicAdaptationTask: teacher loading, soft/hard targets, export determinism, evaluation pairs."""

from __future__ import annotations

import functools

import pytest
import torch

from pixelwise.geometry.adaptation import homographic_adaptation
from pixelwise.geometry.cells import (
    heatmap_to_cell_distribution,
    keypoints_to_cell_labels,
    logits_to_heatmap,
)
from pixelwise.geometry.keypoints import extract_keypoints
from pixelwise.losses.cell_cross_entropy import cell_cross_entropy
from pixelwise.nets.superpoint import SuperPointNet, magicpoint
from pixelwise.tasks.homographic_adaptation import HomographicAdaptationTask

IDENTITY = dict(
    translation=False, rotation=False, scaling=False, perspective=False, patch_ratio=1.0
)
OPT = functools.partial(torch.optim.SGD, lr=0.1)


def tiny_net(seed: int = 0):
    torch.manual_seed(seed)
    return magicpoint(channels=(4, 4, 8, 8), head_channels=16, batch_norm=True)


def make(teacher=None, **kw):
    kw.setdefault("train_homography", None)
    kw.setdefault("channels_last", False)
    with pytest.warns(UserWarning, match="RANDOM") if teacher is None else _nullcontext():
        return HomographicAdaptationTask(tiny_net(), OPT, teacher=teacher, **kw)


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def shift_by_one_cell(monkeypatch):
    """Make the training warp a translation by (+8, +8) pixels."""
    import pixelwise.tasks.homographic_adaptation as mod

    shift = torch.tensor([[1.0, 0.0, 8.0], [0.0, 1.0, 8.0], [0.0, 0.0, 1.0]])
    monkeypatch.setattr(
        mod, "sample_homography", lambda b, shape, **kw: shift.expand(b, 3, 3).clone()
    )


def images(b=2, h=32, w=48, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 1, h, w, generator=g)


class TestTeacher:
    def test_student_and_frozen_teacher_start_from_the_weights_file(self, tmp_path):
        source = tiny_net(seed=7)
        path = tmp_path / "teacher.pt"
        torch.save(source.state_dict(), path)
        task = make(teacher=str(path))
        for name, value in source.state_dict().items():
            assert torch.equal(task.net.state_dict()[name], value)
            assert torch.equal(task.teacher.state_dict()[name], value)
        assert not any(p.requires_grad for p in task.teacher.parameters())
        task.train()
        assert task.net.training
        # The teacher runs in eval mode at every use (frozen batch-norm statistics), with the
        # same output as a separate eval-mode copy; its running statistics never move.
        x = images()
        stats = {k: v.clone() for k, v in task.teacher.state_dict().items()}
        heat = task.teacher_heatmap(x)
        assert not task.teacher.training
        source.eval()
        with torch.no_grad():
            expected = logits_to_heatmap(source(x)["logits"], image_size=x.shape[-2:])
        torch.testing.assert_close(heat, expected)
        for k, v in task.teacher.state_dict().items():
            assert torch.equal(v, stats[k]), k

    def test_a_superpoint_file_teaches_with_its_detector(self, tmp_path):
        torch.manual_seed(5)
        source = SuperPointNet(
            channels=(4, 4, 8, 8), head_channels=16, batch_norm=True, descriptor_dim=8
        )
        path = tmp_path / "superpoint.pt"
        torch.save(source.state_dict(), path)
        task = make(teacher=str(path))
        for name, value in task.teacher.state_dict().items():
            assert torch.equal(value, source.state_dict()[name]), name

    def test_fallback_teacher_used_if_present(self, tmp_path):
        path = tmp_path / "fallback.pt"
        torch.save(tiny_net(seed=3).state_dict(), path)
        task = HomographicAdaptationTask(tiny_net(), OPT, fallback_teacher=str(path))
        assert task.teacher_path == str(path)
        assert torch.equal(task.net.conv1a.weight, tiny_net(seed=3).conv1a.weight)

    def test_a_fallback_of_other_widths_is_an_error_naming_the_way_out(self, tmp_path):
        path = tmp_path / "fallback.pt"
        torch.save(tiny_net(seed=3).state_dict(), path)
        other = magicpoint(channels=[2, 2, 4, 4], head_channels=4)
        with pytest.raises(ValueError, match="teacher=null uses the shipped .*teacher=PATH"):
            HomographicAdaptationTask(other, OPT, fallback_teacher=str(path))

    def test_missing_teacher_is_an_error_missing_fallback_a_warning(self, tmp_path):
        with pytest.raises(FileNotFoundError, match=r"teacher=.*nope.pt: no such weights file"):
            HomographicAdaptationTask(tiny_net(), OPT, teacher=str(tmp_path / "nope.pt"))
        with pytest.warns(UserWarning, match="same RANDOM weights"):
            task = HomographicAdaptationTask(
                tiny_net(), OPT, fallback_teacher=str(tmp_path / "nope.pt")
            )
        assert task.teacher_path is None
        assert torch.equal(task.net.conv1a.weight, task.teacher.conv1a.weight)


class TestSoftTargets:
    def test_identity_only_target_is_the_teachers_cell_distribution(self):
        task = make(num_homographies=1)
        x = images()
        task.teacher.eval()  # the teacher runs in eval mode at every use
        with torch.no_grad():
            expected = torch.softmax(task.teacher(x)["logits"], dim=1)
        student_input, target, mask = task.targets({"image": x})
        assert torch.equal(student_input, x) and bool(mask.all())
        torch.testing.assert_close(target, expected, atol=1e-5, rtol=1e-5)

    def test_student_equal_to_teacher_gets_zero_gradient_from_its_own_targets(self):
        # Cross-entropy against one's own softmax is minimal: d/dlogits = p - q = 0.
        task = make(num_homographies=1)
        task.net.eval()  # batch norm in eval mode so student == teacher numerically
        loss = task.training_step({"image": images()}, 0)
        loss.backward()
        grads = torch.cat([p.grad.flatten() for p in task.net.parameters() if p.grad is not None])
        assert grads.abs().max() < 1e-5

    def test_target_is_the_adapted_heatmap_of_the_same_homographies(self):
        task = make(num_homographies=4, fit_num_homographies=3, chunk_size=2)
        x = images()
        torch.manual_seed(5)
        _, target, _ = task.targets({"image": x})
        torch.manual_seed(5)
        heat = homographic_adaptation(
            task.teacher_heatmap, x, num_homographies=3, valid_border_margin=3, **task.homography
        )
        torch.testing.assert_close(target, heatmap_to_cell_distribution(heat))

    def test_clean_image_goes_to_the_teacher_and_image_to_the_student(self):
        task = make(num_homographies=1)
        x, clean = images(seed=1), images(seed=2)
        student_input, target, _ = task.targets({"image": x, "clean_image": clean})
        assert torch.equal(student_input, x)
        with torch.no_grad():
            expected = torch.softmax(task.teacher(clean)["logits"], dim=1)
        torch.testing.assert_close(target, expected, atol=1e-5, rtol=1e-5)

    def test_unusable_items_and_the_warp_border_are_masked(self, monkeypatch):
        task = make(num_homographies=1, train_homography={})
        shift_by_one_cell(monkeypatch)
        x = images()
        warped, target, mask = task.targets({"image": x, "ok": torch.tensor([True, False])})
        torch.testing.assert_close(warped[:, :, 8:, 8:], x[:, :, :-8, :-8])
        assert not mask[1].any()
        # Pixels x < 8 (y < 8) are padding; the 3 px margin makes x < 11 invalid, so the first
        # two cell rows/columns touch invalid pixels.
        assert not mask[0, :2].any() and not mask[0, :, :2].any() and mask[0, 2:, 2:].all()


class TestHardTargets:
    def test_labels_from_exported_points_and_loss(self):
        task = make(targets="hard")
        x = images()
        kps = [torch.tensor([[3.0, 5.0], [20.2, 9.7]]), torch.zeros(0, 2)]
        _, target, mask = task.targets({"image": x, "keypoints": kps})
        expected = keypoints_to_cell_labels(kps, (32, 48))
        assert torch.equal(target, expected)
        assert target[0, 0, 0] == 5 * 8 + 3 and target[0, 1, 2] == 2 * 8 + 4
        logits = task(x)
        torch.testing.assert_close(
            task.training_step({"image": x, "keypoints": kps}, 0),
            cell_cross_entropy(logits, expected),
        )

    def test_points_follow_the_training_warp(self, monkeypatch):
        # A translation by one cell moves a point's label by one cell, same position inside.
        task = make(targets="hard", train_homography={})
        shift_by_one_cell(monkeypatch)
        kps = [torch.tensor([[19.0, 13.0]])]  # -> (27, 21): cell (row 2, col 3), dy 5, dx 3
        _, target, mask = task.targets({"image": images(b=1), "keypoints": kps})
        assert target[0, 2, 3] == 5 * 8 + 3 and (target == 64).sum() == target.numel() - 1
        assert mask[0, 2, 3] and not mask[0, :2].any() and not mask[0, :, :2].any()

    def test_missing_pseudo_labels_are_a_clear_error(self):
        task = make(targets="hard")
        with pytest.raises(ValueError, match="targets=hard needs batch\\['keypoints'\\]"):
            task.targets({"image": images()})


class TestExportedTargets:
    """task.targets=exported: the exported adapted heatmap, warped along, as the soft 65-way target."""

    def test_target_is_the_cell_distribution_of_the_heatmap(self):
        task = make(targets="exported")
        x = images()
        heat = torch.zeros(2, 1, 32, 48)
        heat[0, 0, 5, 3] = 0.6  # cell (0, 0), position 5 * 8 + 3
        heat[0, 0, 9, 20] = 0.2  # cell (1, 2), position 1 * 8 + 4
        _, target, mask = task.targets({"image": x, "heatmap": heat})
        assert target.shape == (2, 65, 4, 6) and mask.all()
        assert target[0, 5 * 8 + 3, 0, 0] == pytest.approx(0.6)
        assert target[0, 64, 0, 0] == pytest.approx(0.4)  # the dustbin takes the rest
        assert target[0, 1 * 8 + 4, 1, 2] == pytest.approx(0.2)
        assert target[0, 64, 1, 2] == pytest.approx(0.8)
        assert (target[1, 64] == 1).all()  # an all-zero heatmap: every cell a dustbin
        torch.testing.assert_close(
            task.training_step({"image": x, "heatmap": heat}, 0),
            cell_cross_entropy(task(x), target),
        )

    def test_heatmap_follows_the_training_warp(self, monkeypatch):
        task = make(targets="exported", train_homography={})
        shift_by_one_cell(monkeypatch)
        heat = torch.zeros(1, 1, 32, 48)
        heat[0, 0, 13, 19] = 0.5  # -> (27, 21): cell (row 2, col 3), dy 5, dx 3
        _, target, mask = task.targets({"image": images(b=1), "heatmap": heat})
        assert target[0, 5 * 8 + 3, 2, 3] == pytest.approx(0.5)
        assert target[0, 64, 2, 3] == pytest.approx(0.5)
        assert mask[0, 2, 3] and not mask[0, :2].any()

    def test_missing_or_misfit_heatmap_is_a_clear_error(self):
        task = make(targets="exported")
        with pytest.raises(ValueError, match="targets=exported needs batch\\['heatmap'\\]"):
            task.targets({"image": images()})
        with pytest.raises(
            ValueError, match=r"has shape \(2, 1, 16, 24\), expected \(2, 1, 32, 48\)"
        ):
            task.targets({"image": images(), "heatmap": torch.zeros(2, 1, 16, 24)})


class TestExport:
    def test_identity_only_export_is_the_teachers_detections(self):
        task = make(num_homographies=1, detection_threshold=0.0, border=0)
        x = images()
        out = task.predict_step({"image": x, "name": ["a", "b"]}, 0)
        heat = logits_to_heatmap(task.teacher(x)["logits"], (32, 48))
        torch.testing.assert_close(out.heatmap, heat)
        expected = extract_keypoints(heat, threshold=0.0, nms_radius=4, border=0)
        for got, exp in zip(out.keypoints, expected):
            assert torch.equal(got, exp["keypoints"])

    def test_labels_depend_on_the_image_name_not_on_batching(self):
        task = make(num_homographies=5, chunk_size=3, detection_threshold=0.0)
        x = images(b=3)
        together = task.predict_step({"image": x, "name": ["a", "b", "c"]}, 0)
        alone = task.predict_step({"image": x[1:2], "name": ["b"]}, 0)
        torch.testing.assert_close(together.heatmap[1:2], alone.heatmap)
        renamed = task.predict_step({"image": x[1:2], "name": ["other"]}, 0)
        assert not torch.allclose(renamed.heatmap, alone.heatmap)
        homs = task.export_homographies(["b"], (32, 48))
        assert homs.shape == (1, 4, 3, 3)


class TestEvaluation:
    def test_identity_pairs_are_perfectly_repeatable(self):
        task = make(eval_homography=IDENTITY, eval_threshold=0.0, border=0)
        x = images()
        out = task.validation_step({"image": x, "index": torch.tensor([0, 1])}, 0)
        torch.testing.assert_close(out.homography, torch.eye(3).expand(2, 3, 3))
        for who in ("student", "teacher"):
            for a, b in zip(out.detections[who].keypoints_a, out.detections[who].keypoints_b):
                assert len(a) > 0 and torch.equal(a, b)

    def test_eval_shift_step_scores_the_shift_averaged_heatmaps(self):
        from pixelwise.geometry.adaptation import shift_averaged_heatmap

        task = make(eval_homography=IDENTITY, eval_shift_step=4)
        x = images(b=2, h=48, w=64)
        out = task.validation_step({"image": x, "index": torch.tensor([0, 1])}, 0)
        for who, heatmap in (("student", task.student_heatmap), ("teacher", task.teacher_heatmap)):
            expected = task.eval_extraction(shift_averaged_heatmap(heatmap, x, step=4))
            plain = task.eval_extraction(heatmap(x))
            for got, want, single in zip(out.detections[who].keypoints_a, expected, plain):
                assert torch.equal(got, want["keypoints"])
                assert not torch.equal(got, single["keypoints"])

    @pytest.mark.parametrize("step", [0, 16, 3.5])
    def test_eval_shift_step_out_of_range_is_refused(self, step):
        with pytest.raises(ValueError, match=r"task.eval_shift_step=.*expected an int in \[1, 8\]"):
            HomographicAdaptationTask(tiny_net(), OPT, eval_shift_step=step)

    def test_classical_baselines_detect_on_the_same_pairs(self):
        from pixelwise.geometry.homography import warp_images
        from pixelwise.nets.classical_detectors import ClassicalDetector

        task = make(baselines=["harris", "fast"])
        x = images(b=2, h=48, w=64)
        out = task.validation_step({"image": x, "index": torch.tensor([0, 1])}, 0)
        assert set(out.detections) == {"student", "teacher", "harris", "fast"}
        # Image a: exactly the detector's own extraction of its heatmap.
        expected = task.eval_extraction(ClassicalDetector("harris")(x))
        for got, want in zip(out.detections["harris"].keypoints_a, expected):
            assert torch.equal(got, want["keypoints"])
        # Image b: on the same warped image as the student's.
        warped = warp_images(x, out.homography)
        heat_b = ClassicalDetector("fast")(warped)
        assert len(out.detections["fast"].keypoints_b[0]) <= int((heat_b[0] > 0).sum())

    def test_adapted_teacher_is_scored_on_the_same_pairs(self):
        # One homography (the identity): the adapted heatmap is the teacher's own heatmap.
        task = make(baselines=["adapted_teacher"], num_homographies=1)
        x = images(b=2, h=48, w=64)
        out = task.validation_step({"image": x, "index": torch.tensor([0, 1])}, 0)
        assert set(out.detections) == {"student", "teacher", "adapted_teacher"}
        for who in ("keypoints_a", "keypoints_b"):
            for got, want in zip(
                getattr(out.detections["adapted_teacher"], who),
                getattr(out.detections["teacher"], who),
            ):
                assert torch.equal(got, want)
        # More homographies: a different (averaged) heatmap, the same for the same batch.
        task = make(baselines=["adapted_teacher"], num_homographies=6)
        first = task.validation_step({"image": x, "index": torch.tensor([0, 1])}, 0)
        again = task.validation_step({"image": x, "index": torch.tensor([0, 1])}, 0)
        for a, b in zip(
            first.detections["adapted_teacher"].keypoints_a,
            again.detections["adapted_teacher"].keypoints_a,
        ):
            assert torch.equal(a, b)

    def test_unknown_baseline_fails_at_construction(self):
        with pytest.raises(ValueError, match="unknown method 'sift'"):
            make(baselines=["sift"])

    def test_pairs_depend_on_item_index_and_stage(self):
        task = make()
        x = images(b=1)
        v0 = task.validation_step({"image": x, "index": torch.tensor([3])}, 0).homography
        v1 = task.validation_step({"image": x, "index": torch.tensor([3])}, 5).homography
        t0 = task.test_step({"image": x, "index": torch.tensor([3])}, 0).homography
        o0 = task.validation_step({"image": x, "index": torch.tensor([4])}, 0).homography
        assert torch.equal(v0, v1)
        assert not torch.allclose(v0, t0) and not torch.allclose(v0, o0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"targets": "medium"}, "targets='medium'"),
        ({"num_homographies": 0}, "num_homographies=0"),
        ({"fit_num_homographies": 0}, "fit_num_homographies=0"),
        ({"chunk_size": 0}, "chunk_size=0"),
        ({"detection_threshold": 2.0}, "detection_threshold=2.0"),
        ({"top_k": 0}, "top_k=0"),
        ({"homography": {"rotate": True}}, "task.homography: .*rotate"),
        ({"eval_homography": {"angle": 1}}, "task.eval_homography: .*angle"),
    ],
)
def test_bad_arguments_name_the_key(kwargs, message):
    with pytest.raises(ValueError, match=message):
        HomographicAdaptationTask(tiny_net(), OPT, **kwargs)


def test_hard_targets_without_pseudo_labels_fail_at_setup():
    from types import SimpleNamespace

    from pixelwise.data.info import DatasetInfo

    task = make(targets="hard")
    data = SimpleNamespace(info=DatasetInfo())
    task._trainer = SimpleNamespace(datamodule=data)
    with pytest.raises(ValueError, match="set data.labels=DIR"):
        task.setup("fit")
    data.info = DatasetInfo(labels_path="some/dir")
    task.setup("fit")
