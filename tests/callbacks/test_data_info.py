from types import SimpleNamespace

from pixelwise.callbacks.data_info import data_fact
from pixelwise.data.info import DatasetInfo


def test_a_declared_fact_else_the_default():
    trainer = SimpleNamespace(datamodule=SimpleNamespace(info=DatasetInfo(num_classes=3)))
    assert data_fact(trainer, "num_classes", 9) == 3
    assert data_fact(trainer, "palette") is None  # declared by nobody
    assert data_fact(trainer, "protocol", {}) == {}
    assert data_fact(trainer, "ignore_index", 0) == 255  # DatasetInfo's own default is declared


def test_no_datamodule_or_no_info_gives_the_default():
    assert data_fact(SimpleNamespace(), "num_classes", 4) == 4
    assert data_fact(SimpleNamespace(datamodule=None), "num_classes") is None
    assert data_fact(SimpleNamespace(datamodule=SimpleNamespace()), "palette", "p") == "p"
