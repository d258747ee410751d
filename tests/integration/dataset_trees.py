"""Tiny Cityscapes and VOC 2012 trees in their exact on-disk formats, for end-to-end runs.

The frames are street-like / object-like label maps (not noise), so a few training steps
give non-trivial predictions; sizes are divisible by 4 for a depth-2 U-Net.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from pixelwise.data.voc import VOC_COLORMAP

# Cityscapes label ids used below (official table): 1 ego vehicle, 4 static, 7 road, 8 sidewalk,
# 11 building, 23 sky, 24 person, 25 rider, 26 car, 29 caravan (no trainId).
CS_COLORS = {1: 0, 4: 90, 7: 60, 8: 200, 11: 120, 23: 250, 24: 30, 25: 160, 26: 10, 29: 180}


def cityscapes_frame(seed: int, h: int = 32, w: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """labelIds uint8 [h, w] and instanceIds uint16 [h, w] of one street-like frame."""
    rng = np.random.default_rng(seed)
    labels = np.full((h, w), 7, dtype=np.uint8)  # road
    labels[: h // 3] = 23  # sky
    labels[h // 3 : 2 * h // 3] = 11  # building
    labels[5 * h // 6 :, : w // 4] = 8  # sidewalk
    labels[-1] = 1  # ego vehicle (ignored)
    labels[h // 3 : h // 3 + 2, rng.integers(0, w - 4) :][:, :3] = 4  # static (ignored)
    inst = labels.astype(np.uint16)
    objects = [(26, 26000), (26, 26001), (24, 24000), (29, 29000), (25, 25)]  # rider 25: a group
    for k, (label, value) in enumerate(objects):
        oh, ow = (h // 3, w // 6) if label in (26, 29) else (h // 3, w // 16)
        y = int(rng.integers(h // 3, h - oh - 1))
        x = int(rng.integers(0, w - ow)) if k else 2
        labels[y : y + oh, x : x + ow] = label
        inst[y : y + oh, x : x + ow] = value
    return labels, inst


def write_cityscapes(root: Path, frames: dict[str, int], h: int = 32, w: int = 64) -> list[Path]:
    """leftImg8bit/gtFine tree with `frames[split]` frames per split (city "tinycity"); returns the images."""
    images = []
    for split, count in frames.items():
        for i in range(count):
            city = "tinycity"
            stem = f"{city}_{split_no(split):06d}_{i:06d}"
            img_dir = root / "leftImg8bit" / split / city
            gt_dir = root / "gtFine" / split / city
            img_dir.mkdir(parents=True, exist_ok=True)
            gt_dir.mkdir(parents=True, exist_ok=True)
            labels, inst = cityscapes_frame(seed=100 * split_no(split) + i, h=h, w=w)
            gray = np.vectorize(CS_COLORS.get)(labels).astype(np.uint8)
            noise = np.random.default_rng(i).integers(0, 20, (h, w, 3))
            rgb = np.clip(gray[..., None] + noise, 0, 255).astype(np.uint8)
            image = img_dir / f"{stem}_leftImg8bit.png"
            Image.fromarray(rgb).save(image)
            Image.fromarray(labels).save(gt_dir / f"{stem}_gtFine_labelIds.png")
            Image.fromarray(inst).save(gt_dir / f"{stem}_gtFine_instanceIds.png")  # 16-bit
            images.append(image)
    return images


def split_no(split: str) -> int:
    return {"train": 1, "val": 2, "test": 3}[split]


def voc_frame(seed: int, h: int = 32, w: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """SegmentationClass and SegmentationObject ids uint8 [h, w]: a person and a car with void outlines."""
    rng = np.random.default_rng(seed)
    cls = np.zeros((h, w), dtype=np.uint8)
    obj = np.zeros((h, w), dtype=np.uint8)
    for n, label in enumerate((15, 7), start=1):
        oh, ow = int(rng.integers(8, h // 2)), int(rng.integers(8, w // 3))
        y, x = int(rng.integers(1, h - oh - 1)), (n - 1) * w // 2 + int(rng.integers(1, 6))
        cls[y - 1 : y + oh + 1, x - 1 : x + ow + 1] = 255  # void border
        obj[y - 1 : y + oh + 1, x - 1 : x + ow + 1] = 255
        cls[y : y + oh, x : x + ow] = label
        obj[y : y + oh, x : x + ow] = n
    return cls, obj


def _palette_png(path: Path, ids: np.ndarray) -> None:
    image = Image.fromarray(ids)
    image.putpalette(VOC_COLORMAP.reshape(-1).tolist())
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def write_voc(root: Path, splits: dict[str, list[str]], h: int = 32, w: int = 48) -> Path:
    """VOCdevkit/VOC2012 with JPEGs, palette class/object PNGs and split lists; returns VOC2012."""
    base = root / "VOCdevkit" / "VOC2012"
    (base / "JPEGImages").mkdir(parents=True, exist_ok=True)
    ids = sorted({i for names in splits.values() for i in names})
    for k, image_id in enumerate(ids):
        cls, obj = voc_frame(seed=k, h=h, w=w)
        colour = VOC_COLORMAP[np.where(cls == 255, 0, cls)]
        noise = np.random.default_rng(k).integers(0, 20, (h, w, 3))
        rgb = np.clip(colour.astype(int) + noise, 0, 255).astype(np.uint8)
        Image.fromarray(rgb).save(base / "JPEGImages" / f"{image_id}.jpg", quality=95)
        _palette_png(base / "SegmentationClass" / f"{image_id}.png", cls)
        _palette_png(base / "SegmentationObject" / f"{image_id}.png", obj)
    lists = base / "ImageSets" / "Segmentation"
    lists.mkdir(parents=True, exist_ok=True)
    for split, names in splits.items():
        (lists / f"{split}.txt").write_text("".join(f"{n}\n" for n in names))
    return base
