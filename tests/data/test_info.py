"""DatasetInfo: the typed facts a dataset declares; config keys, merging, checks."""

from __future__ import annotations

import numpy as np
import pytest

from pixelwise.data.info import DatasetInfo


def test_config_keys_and_aliases():
    info = DatasetInfo.from_config(
        {"num_classes": 2, "class_names": ["a", "b"], "labels": "/l", "size": [4, 6]}
    )
    assert info.labels_path == "/l" and info.image_size == (4, 6)
    assert info.class_names == ("a", "b")
    assert DatasetInfo(image_size=5).image_size == (5, 5)
    with pytest.raises(ValueError, match=r"data.protocl: not a dataset fact; expected one of"):
        DatasetInfo.from_config({"protocl": {}})


def test_lengths_must_match_num_classes():
    with pytest.raises(ValueError, match="data.class_names has 1 names but data.num_classes=2"):
        DatasetInfo(num_classes=2, class_names=["a"])
    with pytest.raises(ValueError, match="data.category_ids has 3 entries"):
        DatasetInfo(num_classes=2, category_ids=[1, 2, 3])


def test_merged_keeps_own_facts_and_fills_the_rest():
    config = DatasetInfo(num_classes=3, category_names=["x"])
    dataset = DatasetInfo(
        num_classes=5, palette=[[1, 2, 3]], instance_classes=[1], ignore_index=0, labels_path="d"
    )
    merged = config.merged(dataset)
    assert merged.num_classes == 3 and merged.category_names == ("x",)
    assert merged.instance_classes == (1,) and merged.labels_path == "d"
    assert merged.ignore_index == 0  # the config kept the default 255
    assert merged.palette.dtype == np.uint8 and merged.palette.tolist() == [[1, 2, 3]]
    assert config.merged(None) is config
    assert merged.get("labels") == "d" and merged.get("protocol", {}) == {}
