import functools

import pytest
import torch
from torch.utils.data import Dataset

from pixelwise.data.datamodule import DataModule
from pixelwise.data.info import DatasetInfo


class Labels(Dataset):
    def __init__(self, n=10, k=3, bad=False):
        self.n, self.k, self.bad = n, k, bad

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        mask = torch.full((2, 2), i % self.k)
        mask[0, 0] = 255
        if self.bad and i == 4:
            mask[1, 1] = 7
        return {"image": torch.zeros(3, 2, 2), "mask": mask}


class TestDataModule:
    def test_setup_builds_only_the_stage_splits(self):
        calls = []

        def factory(split):
            calls.append(split)
            return Labels()

        dm = DataModule(
            train=functools.partial(factory, "train"),
            val=functools.partial(factory, "val"),
            test=functools.partial(factory, "test"),
        )
        dm.setup("fit")
        assert calls == ["train", "val"]
        dm.setup("test")
        assert calls == ["train", "val", "test"]

    def test_class_pixel_counts_against_hand_count(self):
        dm = DataModule(train=lambda: Labels(n=6, k=3), num_classes=3)
        # items 0..5 -> labels 0,1,2,0,1,2, each with 3 labelled pixels
        assert dm.class_pixel_counts(max_items=100).tolist() == [6, 6, 6]

    def test_out_of_range_label_names_item_and_value(self):
        dm = DataModule(train=lambda: Labels(n=6, bad=True), num_classes=3)
        with pytest.raises(ValueError, match=r"item 4: label value 7 outside \[0, 3\)"):
            dm.class_pixel_counts()

    def test_missing_split_is_a_clear_error(self):
        with pytest.raises(ValueError, match="data.test is not set"):
            DataModule(train=Labels).test_dataloader()

    def test_bad_values(self):
        with pytest.raises(ValueError, match="data.batch_size=0"):
            DataModule(batch_size=0)
        with pytest.raises(ValueError, match="2 names but data.num_classes=3"):
            DataModule(num_classes=3, class_names=["a", "b"])

    def test_eval_loader_keeps_every_sample_once(self):
        dm = DataModule(val=lambda: Labels(n=7), batch_size=4, eval_batch_size=3)
        sizes = [b["image"].shape[0] for b in dm.val_dataloader()]
        assert sizes == [3, 3, 1]


def test_info_comes_from_config_then_from_datasets():
    class WithFacts(Labels):
        info = DatasetInfo(instance_classes=[2], category_names=["x"], ignore_index=0)

    dm = DataModule(val=WithFacts, category_names=["from config"], labels="pseudo/dir")
    assert dm.info.instance_classes is None  # datasets are not built yet
    dm.setup("validate")
    assert dm.info.category_names == ("from config",)
    assert dm.info.instance_classes == (2,)
    assert dm.info.ignore_index == 0  # the config left the default: the dataset's own value
    assert dm.info.labels_path == "pseudo/dir"  # data.labels
    assert dm.info.mean_instance_size is None


def test_info_fields_as_attributes_and_unknown_keys():
    dm = DataModule(num_classes=2, class_names=["bg", "car"], category_ids=[0, 3], root="/x")
    assert (
        dm.info.num_classes == 2
        and dm.info.class_names == ("bg", "car")
        and dm.info.category_ids == (0, 3)
    )
    assert dm.info == DatasetInfo(num_classes=2, class_names=("bg", "car"), category_ids=(0, 3))
    with pytest.raises(ValueError, match=r"data.num_clases: unknown key; .*num_classes"):
        DataModule(num_clases=2)
    with pytest.raises(ValueError, match="data.category_ids has 1 entries but data.num_classes=2"):
        DataModule(num_classes=2, category_ids=[1])


def test_restrict_keeps_the_given_items_and_unknown_split_is_named():
    dm = DataModule(predict=lambda: Labels(n=5))
    dm.restrict("predict", [1, 3])
    assert len(dm.dataset("predict")) == 2 and dm.has_split("predict")
    assert not dm.has_split("detector_test")
    with pytest.raises(ValueError, match="no split 'tset'"):
        dm.dataset("tset")


def test_detector_test_pairs_follow_the_test_pairs_tagged_with_their_split():
    dm = DataModule(test=lambda: Labels(n=2), detector_test=lambda: Labels(n=3), batch_size=1)
    splits = [b["split"] for b in dm.test_dataloader()]
    assert splits == [["test"]] * 2 + [["detector_test"]] * 3
    with pytest.raises(ValueError, match="data.eval_batch_size=4 must be 1"):
        DataModule(test=Labels, detector_test=Labels, batch_size=4)


def test_every_shipped_data_config_uses_known_keys():
    """A new data config's top-level key must be a DataModule argument, a DatasetInfo fact or a
    declared config variable (otherwise instantiating it fails with the list of the three)."""
    import inspect

    from omegaconf import OmegaConf

    from pixelwise.cli import CONFIG_DIR
    from pixelwise.data.datamodule import CONFIG_VARIABLES

    arguments = set(inspect.signature(DataModule).parameters) - {"facts"}
    known = arguments | set(DatasetInfo.config_keys()) | set(CONFIG_VARIABLES)
    known |= {"_target_", "defaults"}
    from pathlib import Path

    for path in sorted(Path(CONFIG_DIR, "data").glob("*.yaml")):
        keys = set(OmegaConf.load(path).keys())
        assert keys <= known, f"{path.name}: unknown keys {sorted(keys - known)}"
