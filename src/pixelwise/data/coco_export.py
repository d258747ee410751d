"""Write synthetic street scenes as a COCO-format detection dataset, in exactly the layout ``data=coco`` reads.

    python -m pixelwise.data.synthetic_scenes export-coco DIR --split val --count 200

writes ``DIR/val2017/000000.png ...`` (PNG: lossless, so the pixels are those the boxes were
computed on; the JSON's ``file_name`` names them) and ``DIR/annotations/instances_val2017.json``
with ``bbox`` ``[x, y, w, h]``, ``area`` (visible pixels), ``iscrowd`` (1 for the instances
with fewer than ``min_pixels`` visible pixels, which the synthetic dataset ignores too),
``segmentation`` as compressed RLE, and categories car 1, truck 2, pedestrian 3. Image ids are
the scene indices, so ``COCODetection(root=DIR, split="val")[i]`` equals
``SyntheticDetectionScenes(split="val")[i]``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from pixelwise.data.export_arguments import add_scene_export_arguments
from pixelwise.data.label_io import write_rgb_png
from pixelwise.data.synthetic_detection import SyntheticDetectionScenes
from pixelwise.formats.coco import coco_ground_truth_json, encode_mask

__all__ = ["export_coco", "main"]


def export_coco(
    directory: str | Path,
    split: str = "val",
    count: int = 200,
    size: Sequence[int] = (128, 160),
    seed: int = 0,
    min_pixels: int = 16,
    year: int = 2017,
) -> Path:
    """Write `count` scenes of `split` under `directory` (COCO layout); returns the annotation file."""
    ds = SyntheticDetectionScenes(
        size=size, length=count, seed=seed, split=split, with_masks=True, min_pixels=min_pixels
    )
    root = Path(directory)
    image_dir = root / f"{split}{year}"
    image_dir.mkdir(parents=True, exist_ok=True)
    ids, sizes, boxes, labels, crowd, areas, names, segms = [], [], [], [], [], [], [], []
    for i in range(len(ds)):
        item = ds[i]
        file_name = f"{item['name']}.png"
        write_rgb_png(image_dir / file_name, ds.annotations(i)["image"], "export_coco")
        ids.append(item["image_id"])
        sizes.append(item["orig_size"].tolist())
        boxes.append(item["boxes"])
        labels.append(item["labels"])
        crowd.append(item["iscrowd"])
        areas.append(item["area"])
        names.append(file_name)
        segms.append([encode_mask(m) for m in item["masks"].numpy()])
    return coco_ground_truth_json(
        root / "annotations" / f"instances_{split}{year}.json",
        ids,
        sizes,
        boxes,
        labels,
        category_ids=ds.category_ids,
        class_names=ds.class_names,
        iscrowd=crowd,
        areas=areas,
        file_names=names,
        segmentations=segms,
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: ``export-coco DIR [--split val] [--count 200] [--size H W] [--seed 0]``."""
    parser = argparse.ArgumentParser(
        prog="python -m pixelwise.data.synthetic_scenes",
        description="Synthetic street scenes as files.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    exp = sub.add_parser(
        "export-coco",
        help="write scenes as a COCO detection dataset (DIR/<split>2017/*.png + "
        "DIR/annotations/instances_<split>2017.json), the layout data=coco reads",
    )
    add_scene_export_arguments(exp, count=200, size=(128, 160))
    exp.add_argument("--min-pixels", type=int, default=16)
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error(f"--count {args.count}: expected a positive number of scenes")
    path = export_coco(
        args.directory, args.split, args.count, tuple(args.size), args.seed, args.min_pixels
    )
    print(f"wrote {args.count} scenes: {path} and {args.directory / (args.split + '2017')}/")


if __name__ == "__main__":
    main()
