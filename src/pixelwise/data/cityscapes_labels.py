"""The Cityscapes label table (also used by KITTI semantics): label ids, trainIds, categories."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch


class CityscapesLabel(NamedTuple):
    """One row of the official Cityscapes label table (cityscapesscripts/helpers/labels.py)."""

    name: str
    id: int
    train_id: int
    category: str
    category_id: int
    has_instances: bool
    ignore_in_eval: bool
    color: tuple[int, int, int]


# The official table, row for row; `license plate` (id -1) never appears in label PNGs.
CITYSCAPES_LABELS: tuple[CityscapesLabel, ...] = tuple(
    CityscapesLabel(*row)
    for row in [
        ("unlabeled", 0, 255, "void", 0, False, True, (0, 0, 0)),
        ("ego vehicle", 1, 255, "void", 0, False, True, (0, 0, 0)),
        ("rectification border", 2, 255, "void", 0, False, True, (0, 0, 0)),
        ("out of roi", 3, 255, "void", 0, False, True, (0, 0, 0)),
        ("static", 4, 255, "void", 0, False, True, (0, 0, 0)),
        ("dynamic", 5, 255, "void", 0, False, True, (111, 74, 0)),
        ("ground", 6, 255, "void", 0, False, True, (81, 0, 81)),
        ("road", 7, 0, "flat", 1, False, False, (128, 64, 128)),
        ("sidewalk", 8, 1, "flat", 1, False, False, (244, 35, 232)),
        ("parking", 9, 255, "flat", 1, False, True, (250, 170, 160)),
        ("rail track", 10, 255, "flat", 1, False, True, (230, 150, 140)),
        ("building", 11, 2, "construction", 2, False, False, (70, 70, 70)),
        ("wall", 12, 3, "construction", 2, False, False, (102, 102, 156)),
        ("fence", 13, 4, "construction", 2, False, False, (190, 153, 153)),
        ("guard rail", 14, 255, "construction", 2, False, True, (180, 165, 180)),
        ("bridge", 15, 255, "construction", 2, False, True, (150, 100, 100)),
        ("tunnel", 16, 255, "construction", 2, False, True, (150, 120, 90)),
        ("pole", 17, 5, "object", 3, False, False, (153, 153, 153)),
        ("polegroup", 18, 255, "object", 3, False, True, (153, 153, 153)),
        ("traffic light", 19, 6, "object", 3, False, False, (250, 170, 30)),
        ("traffic sign", 20, 7, "object", 3, False, False, (220, 220, 0)),
        ("vegetation", 21, 8, "nature", 4, False, False, (107, 142, 35)),
        ("terrain", 22, 9, "nature", 4, False, False, (152, 251, 152)),
        ("sky", 23, 10, "sky", 5, False, False, (70, 130, 180)),
        ("person", 24, 11, "human", 6, True, False, (220, 20, 60)),
        ("rider", 25, 12, "human", 6, True, False, (255, 0, 0)),
        ("car", 26, 13, "vehicle", 7, True, False, (0, 0, 142)),
        ("truck", 27, 14, "vehicle", 7, True, False, (0, 0, 70)),
        ("bus", 28, 15, "vehicle", 7, True, False, (0, 60, 100)),
        ("caravan", 29, 255, "vehicle", 7, True, True, (0, 0, 90)),
        ("trailer", 30, 255, "vehicle", 7, True, True, (0, 0, 110)),
        ("train", 31, 16, "vehicle", 7, True, False, (0, 80, 100)),
        ("motorcycle", 32, 17, "vehicle", 7, True, False, (0, 0, 230)),
        ("bicycle", 33, 18, "vehicle", 7, True, False, (119, 11, 32)),
        ("license plate", -1, -1, "vehicle", 7, False, True, (0, 0, 142)),
    ]
)

IGNORE_INDEX = 255
NUM_CLASSES = 19
_TRAIN_LABELS = sorted(
    (lab for lab in CITYSCAPES_LABELS if 0 <= lab.train_id < IGNORE_INDEX), key=lambda r: r.train_id
)
CLASS_NAMES: tuple[str, ...] = tuple(lab.name for lab in _TRAIN_LABELS)
PALETTE: np.ndarray = np.array([lab.color for lab in _TRAIN_LABELS], dtype=np.uint8)  # [19, 3]

# Categories that hold at least one trainId class, numbered in the order of the table's
# categoryId (void has none): flat, construction, object, nature, sky, human, vehicle.
CATEGORY_NAMES: tuple[str, ...] = tuple(dict.fromkeys(lab.category for lab in _TRAIN_LABELS))
CLASS_TO_CATEGORY: tuple[int, ...] = tuple(
    CATEGORY_NAMES.index(lab.category) for lab in _TRAIN_LABELS
)
INSTANCE_CLASSES: tuple[int, ...] = tuple(
    lab.train_id for lab in _TRAIN_LABELS if lab.has_instances
)

# The benchmark's `avgClassSize` (evalPixelLevelSemanticLabeling.py): mean pixels per instance
# over the training set, keyed here by trainId. caravan (36771.82) and trailer (16926.98) have
# no trainId, so they are not evaluated and not listed.
CITYSCAPES_MEAN_INSTANCE_SIZE: dict[int, float] = {
    11: 3462.4756337644,  # person
    12: 3930.4788056518,  # rider
    13: 12794.0202738185,  # car
    14: 27855.1264367816,  # truck
    15: 35732.1511111111,  # bus
    16: 67583.7075812274,  # train
    17: 6298.7200839748,  # motorcycle
    18: 4672.3249222261,  # bicycle
}

# Lookup tables over the 256 values an 8-bit label PNG can hold; -1 marks ids not in the table.
LABELID_TO_TRAINID: np.ndarray = np.full(256, -1, dtype=np.int64)
LABELID_HAS_INSTANCES: np.ndarray = np.zeros(256, dtype=bool)
for _lab in CITYSCAPES_LABELS:
    if _lab.id >= 0:
        LABELID_TO_TRAINID[_lab.id] = _lab.train_id
        # Instances only where they can be evaluated: classes with instances and a trainId.
        LABELID_HAS_INSTANCES[_lab.id] = _lab.has_instances and _lab.train_id != IGNORE_INDEX

# trainId -> label id; the first table row wins (as in cityscapesscripts); 255 -> 0 (unlabeled).
TRAINID_TO_LABELID: np.ndarray = np.zeros(256, dtype=np.uint8)
for _lab in reversed(_TRAIN_LABELS):
    TRAINID_TO_LABELID[_lab.train_id] = _lab.id


def trainid_to_labelid(pred: torch.Tensor | np.ndarray) -> np.ndarray:
    """Map trainIds [H, W] (0..18, 255 = ignore) to Cityscapes label ids uint8 [H, W] for the official tools."""
    arr = pred.detach().cpu().numpy() if isinstance(pred, torch.Tensor) else np.asarray(pred)
    arr = arr.astype(np.int64, copy=False)
    bad = (arr < 0) | (arr > 255) | ((arr >= NUM_CLASSES) & (arr != IGNORE_INDEX))
    if bad.any():
        value = int(arr[bad].flat[0])
        raise ValueError(
            f"trainid_to_labelid: value {value} is not a Cityscapes trainId "
            f"(expected 0..{NUM_CLASSES - 1} or {IGNORE_INDEX})"
        )
    return TRAINID_TO_LABELID[arr]
