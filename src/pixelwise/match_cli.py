"""Match two images with a SuperPoint: a PNG with the matches and the RANSAC homography's inliers.

    pixelwise-match IMAGE_A IMAGE_B weights=superpoint_photos [out=matches.png] [max_keypoints=1000]
    pixelwise-match IMAGE_A IMAGE_B ckpt_path=PATH threshold=0.005
        [threshold=0.015] [nms_radius=4] [max_distance=0.7] [ransac_threshold=3.0] [size=H,W]

(``python match.py ...`` in the repository is the same.) ``weights`` is a net state dict
instead of a checkpoint: a shipped name (``superpoint_photos``), a file such as
``weights/superpoint_photos.pt`` or the official ``superpoint_v1.pth``; its widths are read from
the file. Images are read grey; ``size`` resizes both first (default: as they are, any size).
Green lines are RANSAC inliers, red outliers. Prints the numbers of keypoints, matches and inliers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from pixelwise.drawing import draw_matches
from pixelwise.geometry.matching import match_descriptors, ransac_inliers
from pixelwise.pretrained import SuperPoint

__all__ = ["main"]

OPTIONS = {
    "ckpt_path": None,
    "weights": None,
    "out": "matches.png",
    "max_keypoints": "1000",
    # None: the weights' own settings (weights=NAME|PATH, see pixelwise.weights_settings) or the
    # official demo's 0.015 / 4 / 4.
    "threshold": None,
    "nms_radius": None,
    "border": None,
    "max_distance": "0.7",
    "ransac_threshold": "3.0",
    "size": None,
}


def _parse(argv: list[str]) -> tuple[argparse.Namespace, dict[str, str | None]]:
    parser = argparse.ArgumentParser(
        prog="pixelwise-match",
        description=__doc__.splitlines()[0],
        epilog="weights=NAME|PATH or ckpt_path=PATH; keys: " + ", ".join(OPTIONS),
    )
    parser.add_argument("image_a")
    parser.add_argument("image_b")
    parser.add_argument("overrides", nargs="*", help="key=value: " + ", ".join(OPTIONS))
    args = parser.parse_args(argv)
    options = dict(OPTIONS)
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if not sep or key not in OPTIONS:
            parser.error(f"{item!r}: expected key=value with key one of {', '.join(OPTIONS)}")
        options[key] = value
    if bool(options["ckpt_path"]) == bool(options["weights"]):
        parser.error(
            "give one of ckpt_path=PATH (a SuperPoint checkpoint from train.py) or "
            "weights=NAME|PATH (a shipped name such as superpoint_photos, or a SuperPoint state dict)"
        )
    return args, options


def _read(path: str, size: tuple[int, int] | None) -> torch.Tensor:
    image = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise SystemExit(f"pixelwise-match: cannot read an image from {path!r}")
    if size is not None:
        image = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(image.astype(np.float32) / 255.0)[None]


def _extractor(options: dict[str, str | None]):
    """The ``extract`` of the net named by weights= (Python API) or ckpt_path= (a Lightning checkpoint)."""
    if options["weights"]:
        try:
            return SuperPoint.from_pretrained(options["weights"]).extract
        except (FileNotFoundError, ValueError) as err:
            raise SystemExit(f"pixelwise-match: weights={options['weights']}: {err}") from None
    from pixelwise.tasks.superpoint import SuperPointTask  # Lightning only for checkpoints

    return SuperPointTask.load_from_checkpoint(options["ckpt_path"], map_location="cpu").extract


def main(argv: list[str] | None = None) -> Path:
    """Run the command line; return the written PNG's path."""
    args, o = _parse(sys.argv[1:] if argv is None else argv)
    size = tuple(int(v) for v in o["size"].strip("[]()").split(",")) if o["size"] else None
    extract = _extractor(o)
    images = [_read(args.image_a, size), _read(args.image_b, size)]
    given = {
        key: cast(o[key])
        for key, cast in (("nms_radius", int), ("threshold", float), ("border", int))
        if o[key] is not None
    }
    feats = [extract(image, max_keypoints=int(o["max_keypoints"]), **given)[0] for image in images]
    matches = match_descriptors(
        feats[0]["descriptors"],
        feats[1]["descriptors"],
        mutual=True,
        max_distance=float(o["max_distance"]),
    )
    _, inliers = ransac_inliers(
        feats[0]["keypoints"], feats[1]["keypoints"], matches, float(o["ransac_threshold"])
    )
    picture = draw_matches(
        images[0], images[1], feats[0]["keypoints"], feats[1]["keypoints"], matches, inliers
    )
    out = Path(o["out"])
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR)):
        raise SystemExit(f"pixelwise-match: cannot write {out}")
    print(
        f"keypoints {len(feats[0]['keypoints'])} / {len(feats[1]['keypoints'])}, "
        f"matches {len(matches)}, RANSAC inliers {int(inliers.sum())} -> {out}"
    )
    return out


if __name__ == "__main__":
    main()
