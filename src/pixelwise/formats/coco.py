"""COCO JSON at the file boundary: ground-truth and results files, box conversions, segment masks.

Inside pixelwise boxes are float ``[N, 4]`` ``(x1, y1, x2, y2)`` in pixels of the (letterboxed)
image; COCO files hold ``[x, y, w, h]`` in pixels of the *original* image and *category ids*
(not contiguous labels). These functions are the only place that converts between the two:
a box is divided by the item's ``scale`` and a label ``k`` becomes ``category_ids[k]``.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pycocotools import mask as mask_utils

__all__ = [
    "coco_ground_truth",
    "coco_ground_truth_json",
    "coco_results",
    "decode_segmentation",
    "encode_mask",
    "original_xywh",
    "write_coco_results",
    "write_dataset_ground_truth",
    "xywh_to_xyxy",
    "xyxy_to_xywh",
]

ArrayLike = np.ndarray | torch.Tensor | Sequence[Any]


def _np(x: ArrayLike, dtype: Any = np.float64) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def xyxy_to_xywh(boxes: ArrayLike) -> np.ndarray:
    """Boxes [N,4] (x1, y1, x2, y2) -> [N,4] (x, y, w, h), float64."""
    b = _np(boxes).reshape(-1, 4)
    return np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], axis=1)


def xywh_to_xyxy(boxes: ArrayLike) -> np.ndarray:
    """Boxes [N,4] (x, y, w, h) -> [N,4] (x1, y1, x2, y2), float64."""
    b = _np(boxes).reshape(-1, 4)
    return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1)


def encode_mask(mask: np.ndarray) -> dict[str, Any]:
    """A binary mask [H,W] as COCO compressed RLE {"size": [H, W], "counts": str} (JSON-ready)."""
    rle = mask_utils.encode(np.asfortranarray(np.asarray(mask, dtype=np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def decode_segmentation(segmentation: Any, height: int, width: int) -> np.ndarray:
    """A COCO `segmentation` (polygon list, uncompressed or compressed RLE) as uint8 [H,W] in {0,1}."""
    if isinstance(segmentation, list):  # polygons [[x1, y1, x2, y2, ...], ...]
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), list):
        rle = mask_utils.frPyObjects(segmentation, height, width)  # uncompressed RLE
    elif isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), (str, bytes)):
        rle = dict(segmentation)
        if isinstance(rle["counts"], str):
            rle["counts"] = rle["counts"].encode("ascii")
    else:
        raise ValueError(
            f"segmentation {str(segmentation)[:80]!r} is not a polygon list or an RLE dict "
            "with 'counts' and 'size'"
        )
    with warnings.catch_warnings():  # pycocotools' Cython decode under numpy 2 (harmless)
        warnings.filterwarnings(
            "ignore", "__array__ implementation doesn't accept a copy", DeprecationWarning
        )
        return mask_utils.decode(rle).astype(np.uint8)


def original_xywh(boxes: ArrayLike, scale: float = 1.0) -> list[list[float]]:
    """Boxes [N,4] xyxy of a letterboxed image -> [x, y, w, h] lists in original pixels (box / scale).

    Computed as torchmetrics computes its COCO input (a float tensor divided by the scale, then
    w = x2 - x1 in the tensor's precision, float32 unless given float64), so a file written
    from the same tensors holds bit-identical numbers and COCOeval on the file agrees with the
    metric even for boxes whose IoU or area sits on a threshold.
    """
    b = torch.as_tensor(boxes)
    if not b.is_floating_point():
        b = b.float()
    b = b.detach().cpu().reshape(-1, 4) / float(scale)
    return torch.cat([b[:, :2], b[:, 2:] - b[:, :2]], dim=1).tolist()


def _scales(scales: Sequence[float] | ArrayLike | None, n: int) -> np.ndarray:
    s = np.ones(n) if scales is None else _np(scales).reshape(-1)
    if len(s) != n or (s <= 0).any():
        raise ValueError(
            f"scales: expected {n} positive factors (one per image), got {s.tolist()[:8]}"
        )
    return s


def _category(labels: np.ndarray, category_ids: Sequence[int], what: str) -> list[int]:
    k = len(category_ids)
    bad = (labels < 0) | (labels >= k)
    if bad.any():
        raise ValueError(
            f"{what}: label {int(labels[bad][0])} has no category id; expected labels in "
            f"0..{k - 1} (category_ids has {k} entries)"
        )
    return [int(category_ids[int(c)]) for c in labels]


def coco_results(
    image_ids: Sequence[int] | ArrayLike,
    boxes: Sequence[ArrayLike],
    scores: Sequence[ArrayLike],
    labels: Sequence[ArrayLike],
    category_ids: Sequence[int],
    scales: Sequence[float] | ArrayLike | None = None,
) -> list[dict[str, Any]]:
    """Detections per image (boxes [N,4] xyxy, scores [N], labels [N]) -> COCO results list.

    Each entry is {"image_id", "category_id", "bbox": [x, y, w, h], "score"} with the box divided
    by the image's scale (original image coordinates) and the label mapped to its category id.
    """
    ids = [int(i) for i in _np(image_ids, np.int64).reshape(-1)]
    if not len(ids) == len(boxes) == len(scores) == len(labels):
        raise ValueError(
            f"coco_results: {len(ids)} image ids, {len(boxes)} box sets, {len(scores)} score "
            f"sets, {len(labels)} label sets; expected one of each per image"
        )
    s = _scales(scales, len(ids))
    out: list[dict[str, Any]] = []
    for image_id, b, sc, lab, factor in zip(ids, boxes, scores, labels, s):
        xywh = original_xywh(b, factor)
        sc = _np(sc).reshape(-1)
        lab = _np(lab, np.int64).reshape(-1)
        if not len(xywh) == len(sc) == len(lab):
            raise ValueError(
                f"coco_results: image {image_id} has {len(xywh)} boxes, {len(sc)} scores and "
                f"{len(lab)} labels; expected the same number"
            )
        cats = _category(lab, category_ids, f"coco_results: image {image_id}")
        for box, score, cat in zip(xywh, sc.tolist(), cats):
            out.append({"image_id": image_id, "category_id": cat, "bbox": box, "score": score})
    return out


def write_coco_results(path: str | Path, results: Sequence[dict[str, Any]]) -> Path:
    """Write a COCO results list (from :func:`coco_results`) as JSON, making the folder; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(list(results)))
    return path


def coco_ground_truth(
    image_ids: Sequence[int] | ArrayLike,
    orig_sizes: Sequence[Sequence[int]] | ArrayLike,
    boxes: Sequence[ArrayLike],
    labels: Sequence[ArrayLike],
    category_ids: Sequence[int],
    class_names: Sequence[str],
    iscrowd: Sequence[ArrayLike] | None = None,
    areas: Sequence[ArrayLike] | None = None,
    scales: Sequence[float] | ArrayLike | None = None,
    file_names: Sequence[str] | None = None,
    segmentations: Sequence[Sequence[Any]] | None = None,
) -> dict[str, Any]:
    """A COCO instances dict {"images", "annotations", "categories"} from per-image targets.

    boxes [N,4] xyxy are divided by the image's scale; orig_sizes are (H, W); areas (original
    pixels) default to the box areas; annotation ids run from 1 (pycocotools treats id 0 as
    "unmatched"). segmentations, if given, are per-image lists of COCO segmentations.
    """
    ids = [int(i) for i in _np(image_ids, np.int64).reshape(-1)]
    n = len(ids)
    sizes = _np(orig_sizes, np.int64).reshape(-1, 2)
    if len(sizes) != n or len(boxes) != n or len(labels) != n:
        raise ValueError(
            f"coco_ground_truth: {n} image ids, {len(sizes)} sizes, {len(boxes)} box sets, "
            f"{len(labels)} label sets; expected one of each per image"
        )
    if len(category_ids) != len(class_names):
        raise ValueError(
            f"coco_ground_truth: {len(category_ids)} category ids but {len(class_names)} class names"
        )
    s = _scales(scales, n)
    images, annotations = [], []
    for j, (image_id, (h, w)) in enumerate(zip(ids, sizes.tolist())):
        name = file_names[j] if file_names is not None else f"{image_id:012d}.jpg"
        images.append({"id": image_id, "width": int(w), "height": int(h), "file_name": name})
        xywh = np.asarray(original_xywh(boxes[j], s[j]), dtype=np.float64).reshape(-1, 4)
        lab = _np(labels[j], np.int64).reshape(-1)
        crowd = (
            _np(iscrowd[j], np.int64).reshape(-1)
            if iscrowd is not None
            else np.zeros(len(lab), np.int64)
        )
        area = _np(areas[j]).reshape(-1) if areas is not None else xywh[:, 2] * xywh[:, 3]
        if not len(xywh) == len(lab) == len(crowd) == len(area):
            raise ValueError(
                f"coco_ground_truth: image {image_id} has {len(xywh)} boxes, {len(lab)} labels, "
                f"{len(crowd)} iscrowd flags, {len(area)} areas; expected the same number"
            )
        cats = _category(lab, category_ids, f"coco_ground_truth: image {image_id}")
        for k, (box, cat) in enumerate(zip(xywh.tolist(), cats)):
            ann = {
                "id": len(annotations) + 1,
                "image_id": image_id,
                "category_id": cat,
                "bbox": box,
                "area": float(area[k]),
                "iscrowd": int(crowd[k]),
            }
            if segmentations is not None:
                ann["segmentation"] = segmentations[j][k]
            annotations.append(ann)
    categories = [{"id": int(c), "name": str(nm)} for c, nm in zip(category_ids, class_names)]
    return {"images": images, "annotations": annotations, "categories": categories}


def coco_ground_truth_json(path: str | Path, *args: Any, **kwargs: Any) -> Path:
    """Write :func:`coco_ground_truth` (same arguments after `path`) as JSON; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(coco_ground_truth(*args, **kwargs)))
    return path


def write_dataset_ground_truth(
    path: str | Path,
    dataset: Any,
    category_ids: Sequence[int] | None = None,
    class_names: Sequence[str] | None = None,
) -> Path:
    """Write a detection dataset's items as a COCO ground-truth JSON (original coordinates).

    Iterates the items (image_id, orig_size, boxes / scale, labels, iscrowd, area, name), so any
    detection dataset (synthetic, COCO, VOC) gets the file pycocotools' COCOeval reads next to a
    results file. category_ids / class_names default to the dataset's own.
    """
    ids = list(category_ids if category_ids is not None else dataset.category_ids)
    names = list(class_names if class_names is not None else dataset.class_names)
    items = [dataset[i] for i in range(len(dataset))]
    return coco_ground_truth_json(
        path,
        [it["image_id"] for it in items],
        [it["orig_size"].tolist() for it in items],
        [it["boxes"] for it in items],
        [it["labels"] for it in items],
        ids,
        names,
        iscrowd=[it["iscrowd"] for it in items],
        areas=[it["area"] for it in items],
        scales=[it["scale"] for it in items],
        file_names=[it["name"] for it in items],
    )
