"""What a dataset declares about itself for tasks and callbacks: one typed object, one path.

Tasks and callbacks read these facts as ``trainer.datamodule.info`` (a :class:`DatasetInfo`),
never from a DataModule's private state. The facts come from the data config
(``data.num_classes``, ``data.class_names``, ... , the keys users already write) and, for
fields the config leaves unset, from a dataset's own ``info`` attribute (a ``DatasetInfo``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["CONFIG_ALIASES", "DatasetInfo", "info_of"]

# Config keys that name a DatasetInfo field differently (data.labels is the users' key).
CONFIG_ALIASES = {"labels": "labels_path", "size": "image_size"}


@dataclass(frozen=True)
class DatasetInfo:
    """The facts a dataset declares (None: not declared).

    - ``num_classes``, ``class_names`` [K], ``ignore_index``: the classes of the labels;
    - ``palette``: uint8 colours [K,3] for pictures;
    - ``instance_classes``: class indices that have instances (iIoU, panoptic "things");
    - ``class_to_category`` [K] -> index into ``category_names``: category IoU;
    - ``category_ids`` [K]: the dataset's own id of each contiguous class index (COCO ids);
    - ``mean_instance_size``: {class name: mean pixels} or "observed" (iIoU weights);
    - ``labels_path``: where the (pseudo-)labels of the images are (``data.labels``);
    - ``image_size`` (H, W): the size items come in (``data.size``);
    - ``protocol``: evaluation-protocol options (e.g. HPatches, ``HPatchesEvaluator`` kwargs).
    """

    num_classes: int | None = None
    class_names: tuple[str, ...] | None = None
    ignore_index: int = 255
    palette: np.ndarray | None = field(default=None, compare=False)
    instance_classes: tuple[int, ...] | None = None
    class_to_category: tuple[int, ...] | None = None
    category_names: tuple[str, ...] | None = None
    category_ids: tuple[int, ...] | None = None
    mean_instance_size: Any = None
    labels_path: str | None = None
    image_size: tuple[int, int] | None = None
    protocol: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        def tupled(name: str, kind: type) -> None:
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(kind(v) for v in value))

        tupled("class_names", str)
        tupled("instance_classes", int)
        tupled("class_to_category", int)
        tupled("category_names", str)
        tupled("category_ids", int)
        if isinstance(self.image_size, int):
            object.__setattr__(self, "image_size", (self.image_size, self.image_size))
        elif self.image_size is not None:
            tupled("image_size", int)
        if self.palette is not None:
            object.__setattr__(self, "palette", np.asarray(self.palette, dtype=np.uint8))
        if self.labels_path is not None:
            object.__setattr__(self, "labels_path", str(self.labels_path))
        if self.protocol is not None:
            object.__setattr__(self, "protocol", dict(self.protocol))
        k = self.num_classes
        for name in ("class_names", "class_to_category", "category_ids"):
            value = getattr(self, name)
            if k is not None and value is not None and len(value) != k:
                raise ValueError(
                    f"data.{name} has {len(value)} "
                    f"{'names' if name == 'class_names' else 'entries'} but data.num_classes={k}"
                )

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def config_keys(cls) -> tuple[str, ...]:
        """The data-config keys that are facts: the field names and their aliases (labels, size)."""
        return (*cls.field_names(), *CONFIG_ALIASES)

    @classmethod
    def from_config(cls, values: Mapping[str, Any], where: str = "data") -> DatasetInfo:
        """From config keys (``labels`` -> ``labels_path``, ``size`` -> ``image_size``); an unknown key is an error."""
        known = set(cls.field_names())
        kwargs = {}
        for key, value in values.items():
            name = CONFIG_ALIASES.get(key, key)
            if name not in known:
                raise ValueError(
                    f"{where}.{key}: not a dataset fact; expected one of "
                    f"{sorted(known | set(CONFIG_ALIASES))}"
                )
            kwargs[name] = value
        return cls(**kwargs)

    def declared(self) -> dict[str, Any]:
        """The fields that are set (not None; ignore_index always)."""
        return {
            name: getattr(self, name)
            for name in self.field_names()
            if getattr(self, name) is not None
        }

    def merged(self, fallback: DatasetInfo | None) -> DatasetInfo:
        """These facts, with the unset ones taken from ``fallback``."""
        if fallback is None:
            return self
        values = {**fallback.declared(), **self.declared()}
        if self.ignore_index == 255:  # the default: a dataset's own value wins
            values["ignore_index"] = fallback.ignore_index
        return DatasetInfo(**values)

    def get(self, name: str, default: Any = None) -> Any:
        """A fact by name (config alias accepted), ``default`` when unset."""
        value = getattr(self, CONFIG_ALIASES.get(name, name), None)
        return default if value is None else value


def info_of(dataset: Any) -> DatasetInfo | None:
    """A dataset's declared ``info`` (a :class:`DatasetInfo`), None when it declares none."""
    info = getattr(dataset, "info", None)
    return info if isinstance(info, DatasetInfo) else None
