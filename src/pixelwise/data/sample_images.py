"""The real photographs shipped inside scikit-image, usable offline (README demo, tests).

Only images stored in the scikit-image wheel itself are used (``skimage.data.brain`` and others
need a download and are not listed). They are split once, here, and every README number names
its split:

- ``train``: what detectors and descriptors learn from (crops, pseudo-labels);
- ``val``: recipe choice and checkpoint selection (coffee, rocket, the motorcycle stereo pair:
  the photographs that were the held-out set before the split had a test part);
- ``test``: astronaut, camera, chelsea, scored once for the README's final tables.

The sample photographs that matplotlib and scikit-learn ship (grace_hopper, china, flower) are
not used anywhere: they are reserved for evaluation by people outside the project.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pixelwise.data.images import ImageDataset, to_gray_float

__all__ = [
    "SAMPLE_IMAGES",
    "TRAIN_IMAGES",
    "VAL_IMAGES",
    "TEST_IMAGES",
    "SPLITS",
    "SampleImages",
    "load_sample_image",
    "write_sample_crops",
]


def _motorcycle(side: int) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data

        return skimage.data.stereo_motorcycle()[side]

    return load


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data

        return getattr(skimage.data, name)()

    return load


# Photographs (and microscope / telescope images) in the wheel; synthetic drawings
# (checkerboard, logo, colorwheel, shepp_logan_phantom) and tiny crops are left out.
_LOADERS: dict[str, Callable[[], np.ndarray]] = {
    **{
        name: _skimage(name)
        for name in (
            "astronaut",
            "brick",
            "camera",
            "cell",
            "chelsea",
            "clock",
            "coffee",
            "coins",
            "grass",
            "gravel",
            "hubble_deep_field",
            "immunohistochemistry",
            "moon",
            "page",
            "retina",
            "rocket",
            "text",
        )
    },
    "motorcycle_left": _motorcycle(0),
    "motorcycle_right": _motorcycle(1),
}

SAMPLE_IMAGES: tuple[str, ...] = tuple(sorted(_LOADERS))
# Held out: everyday scenes with structure at many scales (a stereo pair stays together).
VAL_IMAGES: tuple[str, ...] = ("coffee", "motorcycle_left", "motorcycle_right", "rocket")
TEST_IMAGES: tuple[str, ...] = ("astronaut", "camera", "chelsea")
TRAIN_IMAGES: tuple[str, ...] = tuple(
    n for n in SAMPLE_IMAGES if n not in VAL_IMAGES and n not in TEST_IMAGES
)
SPLITS: dict[str, tuple[str, ...]] = {
    "train": TRAIN_IMAGES,
    "val": VAL_IMAGES,
    "test": TEST_IMAGES,
    "all": SAMPLE_IMAGES,
}


@cache
def load_sample_image(name: str) -> np.ndarray:
    """The scikit-image photograph ``name`` (one of ``SAMPLE_IMAGES``) as stored: uint8 [H,W] or [H,W,3]."""
    if name not in _LOADERS:
        raise ValueError(f"unknown sample image {name!r}; expected one of {list(SAMPLE_IMAGES)}")
    array = np.asarray(_LOADERS[name]())
    array.setflags(write=False)  # cached: shared by every item that shows it
    return array


class SampleImages(ImageDataset):
    """scikit-image photographs as grey [1,H,W] items; ``split`` is "train", "val", "test", "all" or a list of names.

    Items are those of :class:`pixelwise.data.images.ImageDataset` (``name`` = the photograph's
    name, so exported pseudo-labels are ``<dir>/astronaut.npz`` ...). ``repeats`` lists each
    photograph that many times (e.g. several random homographies per image at evaluation).
    Smaller photographs (``page`` 191x384, ``text`` 172x448) are upscaled by default.
    ``options``: those of :class:`~pixelwise.data.images.ImageDataset` (size, resize, small,
    photometric, labels, repeats).
    """

    def __init__(self, split: str | Sequence[str] = "train", **options: Any) -> None:
        super().__init__(**options)
        if isinstance(split, str):
            if split not in SPLITS:
                raise ValueError(
                    f"SampleImages split={split!r}: expected one of {list(SPLITS)} or a list of "
                    f"names from {list(SAMPLE_IMAGES)}"
                )
            names = list(SPLITS[split])
        else:
            names = list(split)
            unknown = [n for n in names if n not in _LOADERS]
            if unknown or not names:
                raise ValueError(
                    f"SampleImages split={names}: unknown names {unknown}; expected a non-empty "
                    f"list from {list(SAMPLE_IMAGES)}"
                )
        self.split = split if isinstance(split, str) else list(split)
        self.names = names
        self.sources = [f"skimage.data:{n}" for n in names]
        self._check_labels()

    def load(self, j: int) -> np.ndarray:
        """Photograph ``j`` as stored by scikit-image."""
        return load_sample_image(self.names[j])

    def __repr__(self) -> str:
        return (
            f"SampleImages(split={self.split!r}, {len(self.names)} images x {self.repeats}, "
            f"size={list(self.size)}, photometric={self.photometric})"
        )


def write_sample_crops(
    out_dir: str | Path,
    split: str | Sequence[str] = "train",
    per_image: int = 16,
    size: Sequence[int] = (240, 320),
    min_scale: float = 0.35,
    seed: int = 0,
) -> list[Path]:
    """Write ``per_image`` random crops of each photograph of ``split`` as grey PNGs of ``size``; return the paths.

    A crop covers a ``scale`` in [``min_scale``, 1] of the largest window of the aspect ratio
    of ``size`` that fits the photograph, at a uniform position, resized to ``size`` (H, W).
    Twelve photographs are too few to train SuperPoint's descriptor on 240x320 centre crops:
    crops at several scales are the offline stand-in for COCO (``data=images data.root=OUT``).
    Files are ``<out_dir>/<photo>_<k>.png``; the same ``seed`` writes the same crops.
    """
    if per_image < 1:
        raise ValueError(f"write_sample_crops: per_image={per_image}: expected >= 1")
    if not 0.0 < min_scale <= 1.0:
        raise ValueError(f"write_sample_crops: min_scale={min_scale}: expected in (0, 1]")
    height, width = (int(v) for v in size)
    names = list(SPLITS[split]) if isinstance(split, str) else list(split)
    unknown = [n for n in names if n not in _LOADERS]
    if unknown:
        raise ValueError(
            f"write_sample_crops: unknown photographs {unknown}; expected names from {list(SAMPLE_IMAGES)}"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for name in names:
        gray = to_gray_float(load_sample_image(name))
        ph, pw = gray.shape
        fit = min(ph / height, pw / width)  # the largest window of ratio height:width
        for k in range(per_image):
            scale = rng.uniform(min_scale, 1.0)
            ch = min(ph, max(1, round(height * fit * scale)))
            cw = min(pw, max(1, round(width * fit * scale)))
            y0, x0 = int(rng.integers(0, ph - ch + 1)), int(rng.integers(0, pw - cw + 1))
            window = gray[y0 : y0 + ch, x0 : x0 + cw]
            # INTER_AREA when shrinking: no aliasing of fine texture (grass, gravel).
            interp = cv2.INTER_AREA if cw > width else cv2.INTER_LINEAR
            crop = cv2.resize(window, (width, height), interpolation=interp)
            path = out / f"{name}_{k:03d}.png"
            cv2.imwrite(str(path), np.round(crop * 255).astype(np.uint8))
            paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> list[Path]:
    """``pixelwise-sample-images OUT_DIR [options]``: write the crops, print how many; return their paths."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="pixelwise-sample-images", description=write_sample_crops.__doc__.splitlines()[0]
    )
    parser.add_argument("out_dir")
    parser.add_argument(
        "--split", default="train", help="train | val | test | all | comma-separated names"
    )
    parser.add_argument("--per-image", type=int, default=16)
    parser.add_argument("--size", type=int, nargs=2, default=(240, 320), metavar=("H", "W"))
    parser.add_argument("--min-scale", type=float, default=0.35)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    split = args.split if args.split in SPLITS else args.split.split(",")
    written = write_sample_crops(
        args.out_dir, split, args.per_image, args.size, args.min_scale, args.seed
    )
    print(f"wrote {len(written)} crops to {args.out_dir}")
    return written


if __name__ == "__main__":
    main()
