"""Pseudo-labels from a classical detector, in the layout of a homographic-adaptation export.

A control for the adaptation rounds: the student recipe (``task.targets=hard data.labels=DIR``)
trained on Harris or FAST points, which are covariant by construction, shows what the recipe and
net can learn whatever the teacher. Each image of ``data=images`` (same ``size``, ``resize`` and
``small``, so the same pixels the student trains on) gets ``<out>/<name>.npz`` with
``keypoints`` [N,2] (x, y), ``scores`` [N] and ``image_size`` (H, W), as
:class:`~pixelwise.callbacks.pseudo_label_writer.PseudoLabelWriter` writes them.

    python -m pixelwise.classical_labels ROOT OUT --method harris --top-k 300
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from pixelwise.callbacks.pseudo_label_writer import save_npz_atomic
from pixelwise.data.images import Images
from pixelwise.geometry.keypoints import Extraction
from pixelwise.nets.classical_detectors import METHODS, ClassicalDetector

__all__ = ["LABEL_EXTRACTION", "main", "write_classical_labels"]

# The repeatability evaluation's extraction (threshold 0.001, NMS 4, border 4) with its top 300.
LABEL_EXTRACTION = Extraction(threshold=0.001, nms_radius=4, border=4, top_k=300)


def write_classical_labels(
    root: str | Path,
    out: str | Path,
    method: str = "harris",
    extraction: Extraction = LABEL_EXTRACTION,
    size: Sequence[int] = (240, 320),
    resize: str = "crop",
    small: str = "upscale",
) -> int:
    """Write one label file per image under ``root`` to ``out``; returns the number of files."""
    images = Images(root=str(root), size=list(size), resize=resize, small=small)
    detector = ClassicalDetector(method)
    out = Path(out)
    for i in range(len(images)):
        item = images[i]
        image = torch.as_tensor(item["image"])[None]
        points = extraction(detector(image))[0]
        save_npz_atomic(
            out / f"{item['name']}.npz",
            {
                "keypoints": points["keypoints"].numpy().astype(np.float32),
                "scores": points["scores"].numpy().astype(np.float32),
                "image_size": np.array(image.shape[-2:], dtype=np.int64),
            },
        )
    return len(images)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pixelwise.classical_labels", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("root", help="folder of images (data.root of data=images)")
    parser.add_argument("out", help="folder for <name>.npz (data.labels of the training run)")
    parser.add_argument("--method", default="harris", choices=METHODS)
    parser.add_argument("--threshold", type=float, default=LABEL_EXTRACTION.threshold)
    parser.add_argument("--nms-radius", type=int, default=LABEL_EXTRACTION.nms_radius)
    parser.add_argument("--border", type=int, default=LABEL_EXTRACTION.border)
    parser.add_argument("--top-k", type=int, default=LABEL_EXTRACTION.top_k)
    parser.add_argument("--size", type=int, nargs=2, default=[240, 320], metavar=("H", "W"))
    args = parser.parse_args(argv)
    extraction = Extraction.checked(args.threshold, args.nms_radius, args.border, args.top_k)
    count = write_classical_labels(args.root, args.out, args.method, extraction, args.size)
    print(f"{count} label files ({args.method}) written to {args.out}")
    return count


if __name__ == "__main__":
    main()
