"""Pseudo-label export (homographic adaptation, N homographies per image) vs a bare forward of the same net.

The export row is the whole per-batch path of ``task.run.mode=export``: decode and fit the image files
(``pixelwise.data.images.Images``), ``HomographicAdaptationTask.predict_step`` (teacher forwards
of the N warped images, warps back, masks, aggregation, NMS, extraction) and the
``PseudoLabelWriter`` (atomic .npz per image). The baseline is the teacher's bare forward over the
very images the adaptation feeds it (originals + warps by the export's homographies), so the
ratio is the price of everything around the net. Reported: export images/s at 240x320, N = 100.
Usage: python benchmarks/bench_export.py [--quick] [--threads T] [--model small|paper]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pixelwise.callbacks.pseudo_label_writer import PseudoLabelWriter  # noqa: E402
from pixelwise.data.collate import DictCollate  # noqa: E402
from pixelwise.data.images import Images  # noqa: E402
from pixelwise.data.sample_images import VAL_IMAGES, load_sample_image  # noqa: E402
from pixelwise.geometry.homography import warp_images  # noqa: E402
from pixelwise.nets.superpoint import magicpoint  # noqa: E402
from pixelwise.tasks.homographic_adaptation import HomographicAdaptationTask  # noqa: E402

try:
    from _machine import machine_line  # noqa: E402
except ImportError:  # pragma: no cover
    import os
    import platform

    def machine_line() -> str:
        return f"machine: {platform.processor()}, {os.cpu_count()} cores, torch {torch.__version__}"


# rpautrat magic-point_coco_export.yaml (as conf/task/homographic_adaptation.yaml).
HOMOGRAPHY = dict(
    translation=True,
    rotation=True,
    scaling=True,
    perspective=True,
    scaling_amplitude=0.2,
    perspective_amplitude_x=0.2,
    perspective_amplitude_y=0.2,
    patch_ratio=0.85,
    max_angle=1.5708,
    allow_artifacts=True,
)
MODELS = {
    "small": dict(channels=(32, 32, 64, 64), head_channels=128, batch_norm=True),
    "paper": dict(channels=(64, 64, 128, 128), head_channels=256, batch_norm=False),
}
COCO_TRAIN2014 = 82783


class _Fake:
    """The trainer attributes PseudoLabelWriter reads."""

    is_global_zero = True
    world_size = 1
    num_predict_batches = [0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="120x160, N=10, 2 images (< 60 s)")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (default 1: shared machine)"
    )
    parser.add_argument("--model", choices=sorted(MODELS), default="small")
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(1)
    torch.manual_seed(0)
    if args.quick:
        size, n, n_images, chunk, repeats = (120, 160), 10, 2, 10, args.repeats or 2
    else:
        size, n, n_images, chunk, repeats = (240, 320), 100, 2, 25, args.repeats or 2

    net = magicpoint(**MODELS[args.model])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random weights: the speed does not depend on them
        task = HomographicAdaptationTask(
            net,
            functools.partial(torch.optim.AdamW, lr=1e-3),
            num_homographies=n,
            chunk_size=chunk,
            homography=HOMOGRAPHY,
        )
    task.setup("predict")
    task.eval()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "images"
        root.mkdir()
        for name in list(VAL_IMAGES)[:n_images]:
            image = load_sample_image(name)
            bgr = image[..., ::-1] if image.ndim == 3 else image
            cv2.imwrite(str(root / f"{name}.jpg"), np.ascontiguousarray(bgr))
        dataset = Images(root, size=size)
        collate = DictCollate()
        batch = collate([dataset[i] for i in range(len(dataset))])
        images = batch["image"]
        homs = task.export_homographies(batch["name"], size)
        # The baseline sees exactly what the adaptation feeds the net (CPU conv speed depends
        # on the data): the originals and their warps by the same homographies.
        flat = homs.reshape(-1, 3, 3)
        owner = torch.arange(len(images)).repeat_interleave(n - 1)
        inputs = torch.cat([images, warp_images(images[owner], flat)])
        inputs = inputs.contiguous(memory_format=task.memory_format)

        def bare() -> None:
            with torch.no_grad():
                for i in range(0, len(inputs), chunk):
                    task.teacher(inputs[i : i + chunk])

        def export(k: int) -> None:
            writer = PseudoLabelWriter(Path(tmp) / f"labels{k}", log_every_s=1e9)
            writer.check_writable()
            with torch.no_grad():
                # What trainer.predict does per batch: load, predict_step, write.
                items = collate([dataset[i] for i in range(len(dataset))])
                out = task.predict_step(items, 0)
                writer.write_on_batch_end(_Fake(), task, out, None, items, 0, 0)
            assert writer.written == len(dataset)

        with torch.no_grad():  # warm-up (allocator, oneDNN kernels)
            task.teacher(inputs[:chunk])
        t_bare, t_export = [], []
        for k in range(repeats):  # interleaved so drifts in machine load hit both alike
            t0 = time.perf_counter()
            bare()
            t1 = time.perf_counter()
            export(k)
            t2 = time.perf_counter()
            t_bare.append(t1 - t0)
            t_export.append(t2 - t1)
    tb, te = statistics.median(t_bare), statistics.median(t_export)
    m = len(images)
    rate = m / te
    print(
        f"## Pseudo-label export ({args.model} MagicPoint {MODELS[args.model]['channels']}, "
        f"{size[0]}x{size[1]}, N={n} homographies incl. identity, chunk={chunk}, {args.threads} thread(s))\n"
    )
    print("| run | time (s) | net forwards/s | source images/s |")
    print("|---|---:|---:|---:|")
    print(
        f"| baseline, measured in this run: bare teacher forward of the same {m * n} images | {tb:.2f} | {m * n / tb:.1f} | {m / tb:.4f} |"
    )
    print(
        f"| export: load + adaptation + NMS + write .npz, {m} images | {te:.2f} | {m * n / te:.1f} | "
        f"**{rate:.4f}** |"
    )
    print(
        f"\n**ratio export / bare forward: {te / tb:.3f}** (both measured in this run; median of {repeats})"
    )
    days = COCO_TRAIN2014 / rate / 86400
    print(
        f"\nCOCO train2014 ({COCO_TRAIN2014} images) at this rate: {days:.1f} days on this machine "
        f"with {args.threads} thread(s); the export shards over ranks (trainer.devices=N)."
    )
    print(f"\n{machine_line()}")


if __name__ == "__main__":
    main()
