"""Panoptic costs, each as a ratio measured in one run.

1. Post-processing (``panoptic_postprocess``: centre NMS + top-k, grouping, majority vote, small
   segments) against the forward pass of the panoptic U-Net that feeds it, at 512x1024 (Cityscapes
   training crops) and at the synthetic recipe's 96x128, batch 1, CPU.
2. PQ: ``PanopticQuality.update`` + ``compute`` against the official per-image evaluation
   (cityscapesScripts ``pq_compute_single_core``, which also decodes the PNGs: its time is split
   into PNG reading and the rest), on 512x1024 Cityscapes-like maps; values checked equal first.

    .venv/bin/python benchmarks/bench_panoptic.py [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _machine import machine_line  # noqa: E402

from pixelwise.geometry.panoptic import (  # noqa: E402
    PanopticGrouping,
    panoptic_postprocess,
    panoptic_targets,
)
from pixelwise.metrics.panoptic_quality import PanopticQuality  # noqa: E402
from pixelwise.nets.panoptic_unet import PanopticUNet  # noqa: E402


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def postprocess_ratio(h: int, w: int, repeat: int, base: int) -> tuple[float, float, int]:
    """(forward s, post-processing s, centres kept) on a scene with 30 instances."""
    torch.manual_seed(0)
    net = PanopticUNet(num_classes=19, base_channels=base, depth=4).eval()
    x = torch.rand(1, 3, h, w)
    inst = torch.zeros(1, h, w, dtype=torch.long)
    g = torch.Generator().manual_seed(0)
    for k in range(1, 31):
        y0, x0 = (
            torch.randint(0, h - 40, (1,), generator=g).item(),
            torch.randint(0, w - 40, (1,), generator=g).item(),
        )
        inst[0, y0 : y0 + 40, x0 : x0 + 30] = k
    heat, off, _ = panoptic_targets(inst, sigma=8.0)
    sem = torch.where(inst > 0, 13, 0)
    with torch.no_grad():
        fwd = best(lambda: net(x), repeat)
        post = best(
            lambda: panoptic_postprocess(
                sem, heat, off, range(11, 19), 19, PanopticGrouping(top_k=200)
            ),
            repeat,
        )
    pan = panoptic_postprocess(sem, heat, off, range(11, 19), 19, PanopticGrouping(top_k=200))
    return fwd, post, int((pan.unique() > 13000).sum())


def pq_ratio(n: int, h: int, w: int) -> tuple[float, float, float]:
    """(ours s/image, official s/image incl. PNG decoding, official PNG decoding s/image)."""
    ev = __import__("cityscapesscripts.evaluation.evalPanopticSemanticLabeling", fromlist=["x"])
    from PIL import Image

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.metrics.panoptic_fixture import NUM_CLASSES, THINGS, random_pair, write_official

    rng = np.random.default_rng(0)
    pairs = [random_pair(rng, h, w) for _ in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        gt_json, gt_dir, pred_json, pred_dir = write_official(Path(tmp), pairs)
        import json

        gt_doc, pred_doc = json.loads(gt_json.read_text()), json.loads(pred_json.read_text())
        cats = {c["id"]: c for c in gt_doc["categories"]}
        matched = list(zip(gt_doc["annotations"], pred_doc["annotations"]))
        with contextlib.redirect_stdout(io.StringIO()):
            t0 = time.perf_counter()
            stat = ev.pq_compute_single_core(0, matched, str(gt_dir), str(pred_dir), cats)
            official = time.perf_counter() - t0
        t0 = time.perf_counter()
        for gt_ann, pred_ann in matched:
            np.array(Image.open(gt_dir / gt_ann["file_name"]), dtype=np.uint32)
            np.array(Image.open(pred_dir / pred_ann["file_name"]), dtype=np.uint32)
        reading = time.perf_counter() - t0
        ref = ev.average_pq(stat, cats)
    tensors = [tuple(torch.from_numpy(a) for a in p) for p in pairs]
    m = PanopticQuality(NUM_CLASSES, THINGS)
    t0 = time.perf_counter()
    for gt, gs, pr, ps in tensors:
        m.update(pr[None], [ps], gt[None], [gs])
    r = m.compute()
    ours = time.perf_counter() - t0
    assert abs(r["pq"].item() - ref["All"]["pq"]) < 1e-9, (r["pq"].item(), ref["All"]["pq"])
    return ours / n, official / n, reading / n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(machine_line())
    repeat = 2 if args.quick else 5
    print("post-processing vs forward (batch 1, 1 thread):")
    for (h, w), base in (((96, 128), 16), ((512, 1024), 16)):
        fwd, post, n = postprocess_ratio(h, w, repeat, base)
        print(
            f"  {h}x{w}: forward {fwd * 1e3:.1f} ms, post-processing {post * 1e3:.1f} ms "
            f"= {100 * post / fwd:.1f}% of the forward ({n} instances)"
        )
    n = 4 if args.quick else 12
    ours, official, reading = pq_ratio(n, 512, 1024)
    print(
        f"PQ per 512x1024 image: ours update+compute {ours * 1e3:.1f} ms, official "
        f"{official * 1e3:.1f} ms ({reading * 1e3:.1f} ms of it PNG decoding): "
        f"{official / ours:.1f}x ({(official - reading) / ours:.1f}x without decoding)"
    )


if __name__ == "__main__":
    main()
