import torch

from pixelwise.data.collate import DictCollate


def test_list_keys_stay_lists_and_the_rest_is_stacked():
    items = [
        {"image": torch.zeros(1, 4, 4), "keypoints": torch.zeros(3, 2), "name": "a"},
        {"image": torch.ones(1, 4, 4), "keypoints": torch.zeros(1, 2), "name": "b"},
    ]
    batch = DictCollate(["keypoints"])(items)
    assert batch["image"].shape == (2, 1, 4, 4) and batch["image"][1].sum() == 16
    assert [k.shape[0] for k in batch["keypoints"]] == [3, 1]
    assert batch["name"] == ["a", "b"]
