"""A tiny COCO instances dataset in COCO's exact on-disk layout, written by the tests.

root/annotations/instances_{split}2017.json + root/{split}2017/*.jpg (one PNG, named by its
file_name): polygons, an uncompressed-RLE crowd region (as COCO stores crowds), a compressed
RLE, an image without annotations, non-contiguous category ids listed out of order.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

# (id, file_name, height, width); image 7 has no annotation.
IMAGES = [
    (3, "000000000003.jpg", 40, 80),
    (5, "000000000005.jpg", 60, 50),
    (7, "000000000007.png", 32, 32),
]
# Listed out of order on purpose: labels follow sorted ids -> 1: 0, 3: 1, 90: 2.
CATEGORIES = [
    {"id": 90, "name": "toothbrush"},
    {"id": 1, "name": "person"},
    {"id": 3, "name": "car"},
]


def _uncompressed_rle(mask: np.ndarray) -> dict[str, Any]:
    """Column-major run lengths starting with a 0-run, as COCO's crowd annotations store them."""
    flat = mask.flatten(order="F").astype(np.uint8)
    counts, value, run = [], 0, 0
    for v in flat:
        if v == value:
            run += 1
        else:
            counts.append(run)
            value, run = v, 1
    counts.append(run)
    return {"size": list(mask.shape), "counts": counts}


def annotations() -> list[dict[str, Any]]:
    """The annotations of the fixture (ids 11..15)."""
    crowd = np.zeros((60, 50), dtype=np.uint8)
    crowd[30:50, 5:25] = 1
    from pycocotools import mask as mask_utils

    small = np.zeros((40, 80), dtype=np.uint8)
    small[2:6, 70:78] = 1
    rle = mask_utils.encode(np.asfortranarray(small))
    return [
        # image 3: a triangle (person) and a rectangle (car, polygon), and a compressed RLE (toothbrush)
        {
            "id": 11,
            "image_id": 3,
            "category_id": 1,
            "iscrowd": 0,
            "area": 150.0,
            "bbox": [10.0, 5.0, 20.0, 15.0],
            "segmentation": [[10.0, 5.0, 30.0, 5.0, 10.0, 20.0]],
        },
        {
            "id": 12,
            "image_id": 3,
            "category_id": 3,
            "iscrowd": 0,
            "area": 600.0,
            "bbox": [40.0, 10.0, 30.0, 20.0],
            "segmentation": [[40.0, 10.0, 70.0, 10.0, 70.0, 30.0, 40.0, 30.0]],
        },
        {
            "id": 13,
            "image_id": 3,
            "category_id": 90,
            "iscrowd": 0,
            "area": 32.0,
            "bbox": [70.0, 2.0, 8.0, 4.0],
            "segmentation": {"size": [40, 80], "counts": rle["counts"].decode()},
        },
        # image 5: a person and a crowd region of people (uncompressed RLE)
        {
            "id": 14,
            "image_id": 5,
            "category_id": 1,
            "iscrowd": 0,
            "area": 400.0,
            "bbox": [25.5, 4.0, 20.0, 25.0],
            "segmentation": [[25.5, 4.0, 45.5, 4.0, 45.5, 29.0, 25.5, 29.0]],
        },
        {
            "id": 15,
            "image_id": 5,
            "category_id": 1,
            "iscrowd": 1,
            "area": 400.0,
            "bbox": [5.0, 30.0, 20.0, 20.0],
            "segmentation": _uncompressed_rle(crowd),
        },
    ]


def write_coco_fixture(
    root: Path,
    split: str = "val",
    anns: list[dict[str, Any]] | None = None,
    images: list[tuple[int, str, int, int]] | None = None,
    seed: int = 0,
) -> Path:
    """Write the fixture under root (images + instances JSON); returns root."""
    rng = np.random.default_rng(seed)
    images = IMAGES if images is None else images
    image_dir = root / f"{split}2017"
    image_dir.mkdir(parents=True, exist_ok=True)
    for _, name, h, w in images:
        pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(image_dir / name)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    data = {
        "info": {"description": "pixelwise test fixture"},
        "images": [{"id": i, "file_name": n, "height": h, "width": w} for i, n, h, w in images],
        "annotations": annotations() if anns is None else anns,
        "categories": CATEGORIES,
    }
    (root / "annotations" / f"instances_{split}2017.json").write_text(json.dumps(data))
    return root
