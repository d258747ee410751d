"""The chapter's baseline segmenters against the U-Net, one budget: the README's table.

    python benchmarks/segmentation_baselines.py [--out DIR] [--only NAME,NAME] [hydra overrides ...]
    python benchmarks/segmentation_baselines.py --lbfgs

Runs ``train.py experiment=segmentation_baselines`` once per model, one run after another (each
run is a single process), and prints one markdown row per model: parameters, the validation
mIoU of the checkpoint chosen on the val split (the best of the validations), the test-split
mIoU of that checkpoint (computed once, at the end of the run) and the run's wall time.
``--lbfgs`` fits the linear classifier to convergence instead, for comparison.
Not a ``bench_*.py``: ``make bench`` does not run it (about 30 min on one busy core).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# name -> the overrides that pick the net; everything else is the experiment's budget.
MODELS = {
    "pixel_linear": ["model=pixel_linear"],
    "fcn": ["model=fcn"],
    "unet_bilinear": ["model=unet", "model.upsampling=bilinear"],
    "unet_transposed": ["model=unet", "model.upsampling=transposed"],
    "unet_max_unpool": ["model=unet", "model.upsampling=max_unpool"],
    "unet_bed_of_nails": ["model=unet", "model.upsampling=bed_of_nails"],
}
# Off the shared budget, run only with --only: the linear classifier's weights must grow to about 20
# (its LBFGS optimum on these scenes; --lbfgs) and AdamW at 3e-3 moves a weight about 0.6 in 400 steps.
EXTRAS = {
    f"pixel_linear_lr{lr}{tag}": ["model=pixel_linear", f"task.optimizer.lr={lr}", *more]
    for lr in (0.1, 0.3)
    for tag, more in (("", []), ("_position", ["model.features=[color,position]"]))
}


def parameter_count(overrides: list[str]) -> int:
    """Parameters of the net that ``train.py experiment=segmentation_baselines overrides`` builds."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", ["experiment=segmentation_baselines", *overrides])
    return sum(p.numel() for p in instantiate(cfg.model).parameters())


def validations(run_dir: Path) -> list[tuple[int, float]]:
    """(step, val/miou) of every validation of a run, from its CSV log."""
    with open(run_dir / "csv" / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("val/miou")]
    return [(int(r["step"]), float(r["val/miou"])) for r in rows]


def lbfgs_linear(scenes: int = 128, iterations: int = 300) -> None:
    """Fit model=pixel_linear to convergence (LBFGS, full batch) on the first ``scenes`` training
    scenes with median-frequency weights; print the mIoU on as many val scenes and the largest weight."""
    import torch
    from torchmetrics.classification import MulticlassJaccardIndex

    from pixelwise.data.synthetic_scenes import SyntheticScenes
    from pixelwise.losses.class_weights import class_weights
    from pixelwise.losses.pixel_cross_entropy import pixel_cross_entropy
    from pixelwise.nets.pixel_linear import PixelLinear

    def split(name: str) -> tuple[torch.Tensor, torch.Tensor]:
        items = [SyntheticScenes(split=name, length=scenes)[i] for i in range(scenes)]
        return torch.stack([i["image"] for i in items]), torch.stack([i["mask"] for i in items])

    (images, masks), (val_images, val_masks) = split("train"), split("val")
    counts = torch.bincount(masks[masks != 255], minlength=9)
    weight = class_weights(counts, "median_frequency")
    for features in (["color"], ["color", "position"]):
        torch.manual_seed(0)
        net = PixelLinear(3, 9, features)
        opt = torch.optim.LBFGS(
            net.parameters(), max_iter=iterations, line_search_fn="strong_wolfe"
        )

        def closure(net=net, opt=opt) -> torch.Tensor:
            opt.zero_grad()
            loss = pixel_cross_entropy(net(images), masks, weight=weight, ignore_index=255)
            loss.backward()
            return loss

        opt.step(closure)
        with torch.no_grad():
            miou = MulticlassJaccardIndex(9, ignore_index=255)
            miou.update(net(val_images).argmax(1), val_masks)
            largest = net.classifier.weight.abs().max()
        print(
            f"pixel_linear {features} by LBFGS: val mIoU {float(miou.compute()):.3f} on "
            f"{scenes} val scenes, largest |A| {float(largest):.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("outputs/segmentation_baselines"))
    parser.add_argument(
        "--only", default="", help=f"comma-separated names from {list(MODELS) + list(EXTRAS)}"
    )
    parser.add_argument("overrides", nargs="*", help="more Hydra overrides for every run")
    parser.add_argument(
        "--lbfgs", action="store_true", help="only fit pixel_linear to convergence (LBFGS)"
    )
    args = parser.parse_args()
    if args.lbfgs:
        lbfgs_linear()
        return
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    rows = []
    names = [n for n in args.only.split(",") if n] or list(MODELS)
    runs = {**MODELS, **EXTRAS}
    unknown = sorted(set(names) - set(runs))
    if unknown:
        parser.error(f"--only {','.join(unknown)}: not among {list(runs)}")
    for name in names:
        run_dir = args.out / name
        overrides = [*runs[name], *args.overrides]
        cmd = [sys.executable, str(REPO / "train.py"), "experiment=segmentation_baselines"]
        cmd += [*overrides, "logger=csv", f"hydra.run.dir={run_dir.resolve()}"]
        start = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if proc.returncode:
            sys.exit(f"{name}: train.py exited {proc.returncode}\n{proc.stderr[-3000:]}")
        metrics = json.loads((run_dir / "metrics.json").read_text())
        step, best_val = max(validations(run_dir), key=lambda sv: sv[1])
        step += 1  # Lightning logs a validation with the index of the last training step
        row = (name, parameter_count(overrides), best_val, step, metrics["test/miou"], seconds)
        rows.append(row)
        print(
            f"{name}: val {best_val:.3f} (after {step} steps), test {row[4]:.3f}, {seconds:.0f} s"
        )
    print(
        "\n| model | parameters | val mIoU (chosen checkpoint: after N steps) | test mIoU | run time |"
    )
    print("|---|---|---|---|---|")
    for name, params, val, step, test, seconds in rows:
        print(f"| {name} | {params:,} | {val:.3f} ({step}) | {test:.3f} | {seconds / 60:.1f} min |")


if __name__ == "__main__":
    main()
