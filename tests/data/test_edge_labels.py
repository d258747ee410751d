import albumentations as A
import numpy as np
import pytest
import torch

from pixelwise.data.edge_labels import annotator_mean, edge_item, edge_targets, targets_from_mean


def four_annotators() -> np.ndarray:
    """Five pixels in a row marked by 0, 1, 2, 3 and 4 of four annotators: bool [4,1,5]."""
    a = np.zeros((4, 1, 5), dtype=bool)
    for x in range(5):
        a[:x, 0, x] = True
    return a


class TestEdgeTargets:
    def test_each_keeps_every_annotation(self):
        a = four_annotators()
        targets, weights = edge_targets(a, "each")
        assert targets.dtype == np.float32 and np.array_equal(targets, a.astype(np.float32))
        assert np.all(weights == 1)

    @pytest.mark.parametrize(
        "threshold, expected",
        [(0.5, [0, 0, 1, 1, 1]), (0.75, [0, 0, 0, 1, 1]), (0.25, [0, 1, 1, 1, 1])],
    )
    def test_mean_thresholds_the_annotator_fraction(self, threshold, expected):
        targets, weights = edge_targets(four_annotators(), "mean", threshold)
        assert targets.shape == (1, 1, 5) and targets[0, 0].tolist() == expected
        assert np.all(weights == 1)

    def test_consensus_ignores_pixels_marked_by_too_few(self):
        targets, weights = edge_targets(four_annotators(), "consensus", 0.5)
        assert targets[0, 0].tolist() == [0, 0, 1, 1, 1]
        assert weights[0, 0].tolist() == [1, 0, 1, 1, 1]  # marked by 1 of 4: ignored

    def test_two_of_three_pass_a_two_thirds_threshold(self):
        a = np.array([[[1]], [[1]], [[0]]], dtype=bool)
        assert edge_targets(a, "mean", 2 / 3)[0].item() == 1.0

    def test_from_mean_each_is_the_soft_mean(self):
        mean = annotator_mean(four_annotators())[0]
        assert mean.tolist() == [0, 0.25, 0.5, 0.75, 1.0]
        targets, weights = targets_from_mean(mean[None], "each")
        assert targets[0, 0].tolist() == [0, 0.25, 0.5, 0.75, 1.0] and np.all(weights == 1)

    def test_errors_name_the_option(self):
        with pytest.raises(
            ValueError, match=r"label_mode='vote': expected one of \('each', 'mean', 'consensus'\)"
        ):
            edge_targets(four_annotators(), "vote")
        with pytest.raises(ValueError, match=r"label_threshold=1.5 must be in \(0, 1\]"):
            edge_targets(four_annotators(), "mean", 1.5)
        with pytest.raises(ValueError, match=r"expected annotations \[K>=1,H,W\], got \(0, 2, 2\)"):
            edge_targets(np.zeros((0, 2, 2), bool), "each")


class TestEdgeItem:
    def test_keys_types_and_values(self):
        image = np.arange(2 * 5 * 3, dtype=np.uint8).reshape(2, 5, 3)
        a = np.zeros((3, 2, 5), dtype=bool)
        a[0, 0, 1] = a[1, 0, 1] = a[2, 1, 4] = True
        item = edge_item(image, "consensus", 0.5, annotations=a, name="x")
        assert item["image"].shape == (3, 2, 5) and item["image"].dtype == torch.float32
        assert item["image"][2, 1, 4].item() == pytest.approx(29 / 255)
        assert item["edges"].dtype == torch.bool and torch.equal(item["edges"], torch.from_numpy(a))
        assert item["targets"].shape == (1, 2, 5) and item["targets"][0, 0, 1] == 1
        assert item["weights"][0, 1, 4] == 0 and item["weights"].sum() == 9
        assert item["name"] == "x"

    def test_transform_moves_image_and_annotations_together(self):
        image = np.zeros((4, 6, 3), dtype=np.uint8)
        image[:, 0] = 255
        a = np.zeros((2, 4, 6), dtype=bool)
        a[:, :, 0] = True
        item = edge_item(image, "each", annotations=a, transform=A.Compose([A.HorizontalFlip(p=1)]))
        assert torch.all(item["image"][:, :, 5] == 1) and torch.all(item["image"][:, :, 0] == 0)
        assert torch.all(item["edges"][:, :, 5]) and not item["edges"][:, :, 0].any()
        assert torch.equal(item["targets"], item["edges"].float())

    def test_from_a_mean_map(self):
        mean = np.array([[0.0, 0.2, 0.6]], dtype=np.float32)
        item = edge_item(np.zeros((1, 3, 3), np.uint8), "consensus", 0.5, mean=mean)
        assert item["edges"].tolist() == [[[False, False, True]]]
        assert item["targets"].tolist() == [[[0, 0, 1]]] and item["weights"].tolist() == [
            [[1, 0, 1]]
        ]
        with pytest.raises(ValueError, match="exactly one of annotations"):
            edge_item(np.zeros((1, 3, 3), np.uint8), "each")
