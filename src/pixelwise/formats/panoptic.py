"""The COCO / Cityscapes panoptic format: segment ids in RGB PNGs + ``segments_info`` in a JSON.

A panoptic map is int64 [H, W] of segment ids (0 = void); a PNG stores an id as
R + 256·G + 256²·B. Each image's ``segments_info`` lists its segments as
``{"id", "category_id", "iscrowd", "area", "bbox"}`` (``bbox`` as COCO ``[x, y, w, h]``).
Inside pixelwise a segment table is a long tensor / array ``[N, 3]`` of
``(segment id, class index, iscrowd)``, class indices being the contiguous 0..K-1 of the data
config; category ids (the file's ids) appear only at the file boundary.

Cityscapes ids (``createPanopticImgs``): a stuff segment's id is its category id, a thing
instance's ``category_id * 1000 + n``, a thing region without instances (a group: crowd) has
the category id and ``iscrowd = 1``. :func:`panoptic_from_labels` follows that convention.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pixelwise.errors import DataFormatError

__all__ = [
    "LABEL_DIVISOR",
    "PanopticFormatError",
    "id_to_rgb",
    "panoptic_from_labels",
    "labels_from_panoptic",
    "read_panoptic_png",
    "rgb_to_id",
    "segments_from_info",
    "segments_info",
    "write_panoptic_json",
    "write_panoptic_png",
]

LABEL_DIVISOR = 1000  # Cityscapes: thing id = category id * 1000 + instance number
VOID = 0


class PanopticFormatError(DataFormatError):
    """A panoptic PNG and its ``segments_info`` disagree; the message names file, segment id and expectation."""


def rgb_to_id(rgb: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 3] -> segment ids int64 [H, W] (R + 256·G + 256²·B)."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise ValueError(f"rgb_to_id: expected an [H, W, 3] array, got shape {rgb.shape}")
    c = rgb.astype(np.int64)
    return c[..., 0] + 256 * c[..., 1] + 256 * 256 * c[..., 2]


def id_to_rgb(ids: np.ndarray) -> np.ndarray:
    """segment ids [H, W] (0 <= id < 256³) -> uint8 [H, W, 3]."""
    ids = np.asarray(ids).astype(np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= 256**3):
        raise ValueError(
            f"id_to_rgb: ids in [{ids.min()}, {ids.max()}]; expected 0 <= id < {256**3}"
        )
    return np.stack([ids % 256, ids // 256 % 256, ids // 65536], axis=-1).astype(np.uint8)


def read_panoptic_png(path: str | Path) -> np.ndarray:
    """A panoptic PNG (RGB) -> segment ids int64 [H, W]."""
    with Image.open(path) as im:
        if im.mode != "RGB":
            raise PanopticFormatError(
                f"{path}: panoptic PNG has mode {im.mode!r}; expected 'RGB' (ids as R + 256·G + 256²·B)"
            )
        return rgb_to_id(np.asarray(im))


def write_panoptic_png(path: str | Path, ids: np.ndarray) -> Path:
    """Write segment ids [H, W] as an RGB PNG (R + 256·G + 256²·B)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(id_to_rgb(ids)).save(path)
    return path


def panoptic_from_labels(
    mask: np.ndarray,
    instances: np.ndarray,
    thing_classes: Sequence[int],
    category_ids: Sequence[int],
    ignore_index: int = 255,
) -> tuple[np.ndarray, np.ndarray]:
    """Semantic classes [H, W] + instance ids [H, W] -> (panoptic ids int64 [H, W], segments int64 [N, 3]).

    Cityscapes ids: stuff class c -> ``category_ids[c]``; a thing pixel with instance k > 0 ->
    ``category_ids[c] * 1000 + n`` (n = 1, 2, ... numbering the instances of class c in the order
    of k); a thing pixel without instance -> ``category_ids[c]`` with ``iscrowd = 1``; ignore -> 0.
    Segments are ``(id, class, iscrowd)`` sorted by id.
    """
    mask = np.asarray(mask).astype(np.int64)
    instances = np.asarray(instances).astype(np.int64)
    if mask.shape != instances.shape:
        raise ValueError(
            f"panoptic_from_labels: mask {mask.shape} and instances {instances.shape} differ"
        )
    cats = np.asarray(category_ids, dtype=np.int64)
    k = len(cats)
    valid = mask != ignore_index
    if valid.any() and (mask[valid].min() < 0 or mask[valid].max() >= k):
        raise ValueError(
            f"panoptic_from_labels: class {int(mask[valid].max())} outside [0, {k}) and not {ignore_index}"
        )
    if (cats <= 0).any() or cats.max(initial=0) * LABEL_DIVISOR >= 256**3:
        raise ValueError(
            f"panoptic_from_labels: category ids {cats.tolist()} must be in [1, 16777)"
        )
    is_thing = np.zeros(k, dtype=bool)
    is_thing[list(thing_classes)] = True
    cls = np.where(valid, mask, 0)
    thing = valid & is_thing[cls] & (instances > 0)
    pan = np.where(valid, cats[cls], VOID)
    if thing.any():
        # (class, instance) pairs in sorted order, numbered 1.. within their class.
        keys = cls[thing] * (instances.max() + 1) + instances[thing]
        uniq, inverse = np.unique(keys, return_inverse=True)
        ucls = uniq // (instances.max() + 1)
        first = np.searchsorted(ucls, ucls, side="left")
        number = np.arange(len(uniq)) - first + 1
        pan[thing] = cats[ucls][inverse] * LABEL_DIVISOR + number[inverse]
    ids = np.unique(pan)
    ids = ids[ids != VOID]
    segments = np.zeros((len(ids), 3), dtype=np.int64)
    if len(ids):
        flat = pan.reshape(-1)
        order = np.argsort(flat, kind="stable")
        pos = np.searchsorted(flat[order], ids)
        first_pixel = order[pos]
        seg_cls = cls.reshape(-1)[first_pixel]
        segments[:, 0] = ids
        segments[:, 1] = seg_cls
        segments[:, 2] = (ids < LABEL_DIVISOR) & is_thing[seg_cls]
    return pan, segments


def labels_from_panoptic(
    panoptic: np.ndarray,
    segments: np.ndarray,
    thing_classes: Sequence[int],
    ignore_index: int = 255,
) -> tuple[np.ndarray, np.ndarray]:
    """Panoptic ids [H, W] + segments [N, 3] -> (semantic classes int64 [H, W], instance ids int64 [H, W]).

    Void (id 0, or an id not in ``segments``) -> ``ignore_index``; crowd segments keep their
    class and get no instance; the non-crowd segments of ``thing_classes`` are numbered 1..M
    in the order of ``segments``, every other pixel has instance 0.
    """
    panoptic = np.asarray(panoptic, dtype=np.int64)
    segments = np.asarray(segments, dtype=np.int64).reshape(-1, 3)
    semantic = np.full(panoptic.shape, ignore_index, dtype=np.int64)
    instances = np.zeros(panoptic.shape, dtype=np.int64)
    if not len(segments):
        return semantic, instances
    ids = segments[:, 0]
    order = np.argsort(ids)
    sorted_ids = ids[order]
    pos = np.clip(np.searchsorted(sorted_ids, panoptic), 0, len(ids) - 1)
    known = (sorted_ids[pos] == panoptic) & (panoptic != VOID)
    row = order[pos]
    semantic = np.where(known, segments[row, 1], ignore_index)
    things = np.isin(segments[:, 1], np.asarray(list(thing_classes), dtype=np.int64))
    is_instance = things & (segments[:, 2] == 0)
    number = np.cumsum(is_instance) * is_instance
    instances = np.where(known, number[row], 0)
    return semantic.astype(np.int64), instances.astype(np.int64)


def segments_from_info(
    info: Sequence[Mapping[str, Any]],
    category_to_class: Mapping[int, int],
    where: str,
) -> np.ndarray:
    """A JSON ``segments_info`` -> segments int64 [N, 3] (id, class, iscrowd); bad entries raise naming ``where``."""
    rows = []
    seen: set[int] = set()
    for seg in info:
        for key in ("id", "category_id"):
            if key not in seg:
                raise PanopticFormatError(f"{where}: a segment has no {key!r}: {dict(seg)}")
        sid, cat = int(seg["id"]), int(seg["category_id"])
        if sid in seen:
            raise PanopticFormatError(f"{where}: segment id {sid} appears twice in segments_info")
        if sid == VOID:
            raise PanopticFormatError(
                f"{where}: segment id 0 is void; expected ids >= 1 in segments_info"
            )
        if cat not in category_to_class:
            raise PanopticFormatError(
                f"{where}: segment id {sid} has unknown category_id {cat}; "
                f"expected one of {sorted(category_to_class)}"
            )
        seen.add(sid)
        rows.append((sid, category_to_class[cat], int(seg.get("iscrowd", 0))))
    return np.asarray(rows, dtype=np.int64).reshape(-1, 3)


def check_panoptic(panoptic: np.ndarray, info: Sequence[Mapping[str, Any]], where: str) -> None:
    """Raise if the PNG's ids and the JSON's segments differ (either way) or an ``area`` is wrong."""
    ids, counts = np.unique(panoptic, return_counts=True)
    in_png = {int(i): int(c) for i, c in zip(ids, counts) if i != VOID}
    in_json = {int(s["id"]): s for s in info}
    for sid in sorted(set(in_png) - set(in_json)):
        raise PanopticFormatError(
            f"{where}: segment id {sid} ({in_png[sid]} pixels) is in the PNG but not in segments_info"
        )
    for sid in sorted(set(in_json) - set(in_png)):
        raise PanopticFormatError(
            f"{where}: segment id {sid} is in segments_info but has no pixel in the PNG"
        )
    for sid, seg in in_json.items():
        if "area" in seg and int(seg["area"]) != in_png[sid]:
            raise PanopticFormatError(
                f"{where}: segment id {sid} has area {seg['area']} in segments_info but "
                f"{in_png[sid]} pixels in the PNG; expected equal"
            )


def segments_info(
    panoptic: np.ndarray, segments: np.ndarray, category_ids: Sequence[int]
) -> list[dict[str, Any]]:
    """Segments [N, 3] (id, class, iscrowd) of a map [H, W] -> a JSON ``segments_info`` (area, bbox from the map)."""
    out = []
    panoptic = np.asarray(panoptic)
    for sid, cls, crowd in np.asarray(segments, dtype=np.int64).reshape(-1, 3):
        ys, xs = np.nonzero(panoptic == sid)
        if len(xs) == 0:
            continue
        x0, y0 = int(xs.min()), int(ys.min())
        out.append(
            {
                "id": int(sid),
                "category_id": int(category_ids[int(cls)]),
                "area": len(xs),
                "bbox": [x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1],
                "iscrowd": int(crowd),
            }
        )
    return out


def categories_json(
    class_names: Sequence[str],
    category_ids: Sequence[int],
    thing_classes: Sequence[int],
    palette: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """The ``categories`` list of a panoptic JSON (id, name, isthing, color)."""
    things = set(int(c) for c in thing_classes)
    return [
        {
            "id": int(cid),
            "name": str(name),
            "isthing": int(i in things),
            "color": [int(v) for v in palette[i]] if palette is not None else [0, 0, 0],
            "supercategory": "",
        }
        for i, (name, cid) in enumerate(zip(class_names, category_ids))
    ]


def write_panoptic_json(
    path: str | Path,
    annotations: Sequence[Mapping[str, Any]],
    categories: Sequence[Mapping[str, Any]],
    images: Sequence[Mapping[str, Any]] | None = None,
) -> Path:
    """Write ``{"images", "annotations", "categories"}`` (the panoptic JSON, sorted keys)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "images": list(images or []),
        "annotations": list(annotations),
        "categories": list(categories),
    }
    path.write_text(json.dumps(doc, sort_keys=True, indent=1))
    return path
