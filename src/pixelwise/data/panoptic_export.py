"""Write synthetic street scenes in the Cityscapes panoptic format, in exactly the layout ``data=cityscapes_panoptic`` reads.

    python -m pixelwise.data.panoptic_export DIR --split val --count 50

writes ``DIR/leftImg8bit/{split}/synthetic/*_leftImg8bit.png``,
``DIR/gtFine/cityscapes_panoptic_{split}/*_gtFine_panoptic.png`` and
``DIR/gtFine/cityscapes_panoptic_{split}.json`` (images, annotations with ``segments_info``,
categories: the 9 scene classes with category id = class index + 1), as cityscapesScripts'
``createPanopticImgs`` names them. ``CityscapesPanoptic(DIR, split, category_ids=1..9,
instance_classes=[6, 7, 8])[i]`` equals ``SyntheticPanopticScenes(split=split)[i]``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from pixelwise.data.export_arguments import add_scene_export_arguments
from pixelwise.data.label_io import write_rgb_png
from pixelwise.data.panoptic_scenes import SyntheticPanopticScenes
from pixelwise.formats.panoptic import (
    categories_json,
    segments_info,
    write_panoptic_json,
    write_panoptic_png,
)

__all__ = ["export_panoptic", "main"]


def export_panoptic(
    directory: str | Path,
    split: str = "val",
    count: int = 50,
    size: Sequence[int] = (96, 128),
    seed: int = 0,
) -> Path:
    """Write `count` scenes of `split` under `directory` (Cityscapes panoptic layout); returns the JSON path."""
    ds = SyntheticPanopticScenes(size=tuple(size), length=count, seed=seed, split=split)
    root = Path(directory)
    image_dir = root / "leftImg8bit" / split / "synthetic"
    png_dir = root / "gtFine" / f"cityscapes_panoptic_{split}"
    image_dir.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for i in range(len(ds)):
        item = ds[i]
        image_id = item["image_id"]
        file_name = f"{image_id}_leftImg8bit.png"
        write_rgb_png(image_dir / file_name, ds.render(i)["image"], "export_panoptic")
        png_name = f"{image_id}_gtFine_panoptic.png"
        pan = item["panoptic"].numpy()
        write_panoptic_png(png_dir / png_name, pan)
        h, w = pan.shape
        images.append({"id": image_id, "file_name": file_name, "height": h, "width": w})
        annotations.append(
            {
                "image_id": image_id,
                "file_name": png_name,
                "segments_info": segments_info(pan, item["segments"].numpy(), ds.category_ids),
            }
        )
    categories = categories_json(ds.class_names, ds.category_ids, ds.thing_classes, ds.palette)
    return write_panoptic_json(
        root / "gtFine" / f"cityscapes_panoptic_{split}.json", annotations, categories, images
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: ``DIR [--split val] [--count 50] [--size H W] [--seed 0]``."""
    parser = argparse.ArgumentParser(
        prog="python -m pixelwise.data.panoptic_export",
        description="Synthetic street scenes in the Cityscapes panoptic format.",
    )
    add_scene_export_arguments(parser, count=50, size=(96, 128))
    args = parser.parse_args(argv)
    path = export_panoptic(args.directory, args.split, args.count, args.size, args.seed)
    print(path)


if __name__ == "__main__":
    main()
