"""Framework training step vs a bare hand-written PyTorch loop (same net, batch, loss, optimizer).

Both run in this process, one after the other, on the same pre-generated batches, so every
ratio is measured in one run. The framework side is a full Lightning `Trainer.fit` of
`SegmentationTask`; the bare loop is the hand-written step. Each is run in both memory
layouts, and the framework is compared like for like with the bare loop in the same layout
(the framework's default is channels_last; a separate column shows what the layout alone
gives). Also prints how many scenes per second the step consumes next to how many one data
worker generates.
"""

from __future__ import annotations

import argparse
import time

import lightning as L
import torch
from _machine import machine_line
from torch.utils.data import Dataset

from pixelwise.data.datamodule import DataModule
from pixelwise.losses.pixel_cross_entropy import pixel_cross_entropy
from pixelwise.nets.unet import UNet
from pixelwise.tasks.segmentation import SegmentationTask


class Batches(Dataset):
    """Items cut from pre-generated batches, so both sides see identical data."""

    def __init__(self, images: torch.Tensor, masks: torch.Tensor) -> None:
        self.images, self.masks = images, masks

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"image": self.images[i], "mask": self.masks[i]}


class StepClock(L.Callback):
    def __init__(self) -> None:
        self.starts: list[float] = []

    def on_train_batch_start(self, *args) -> None:
        self.starts.append(time.perf_counter())

    def on_train_end(self, *args) -> None:
        self.starts.append(time.perf_counter())


def make_net(seed: int) -> UNet:
    torch.manual_seed(seed)
    return UNet(3, 9, base_channels=16, depth=3)


def bare_loop(images, masks, batch: int, steps: int, warmup: int, channels_last: bool) -> float:
    """Mean seconds per step of the hand-written loop, in the given memory layout."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = make_net(0).to(memory_format=fmt)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    net.train()
    times = []
    for step in range(steps + warmup):
        i = (step * batch) % (len(images) - batch + 1)
        t0 = time.perf_counter()
        x, y = images[i : i + batch].contiguous(memory_format=fmt), masks[i : i + batch]
        loss = pixel_cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step >= warmup:
            times.append(time.perf_counter() - t0)
    return sum(times) / len(times)


def framework(images, masks, batch: int, steps: int, warmup: int, channels_last: bool) -> float:
    task = SegmentationTask(
        make_net(0),
        optimizer=lambda params: torch.optim.AdamW(params, lr=3e-3, weight_decay=1e-4),
        num_classes=9,
        channels_last=channels_last,
    )
    dm = DataModule(train=lambda: Batches(images, masks), batch_size=batch, num_workers=0)
    clock = StepClock()
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=steps + warmup,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=[clock],
    )
    trainer.fit(task, datamodule=dm)
    deltas = [b - a for a, b in zip(clock.starts, clock.starts[1:])][warmup:]
    return sum(deltas) / len(deltas)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    batch, size = 16, (96, 128)
    steps, warmup = (6, 2) if args.quick else (30, 5)
    g = torch.Generator().manual_seed(0)
    n = batch * 8
    images = torch.rand(n, 3, *size, generator=g)
    masks = torch.randint(0, 9, (n, *size), generator=g)
    results: dict[str, list[float]] = {}
    # Interleave the sides twice so drift on a shared machine hits them alike.
    for _ in range(2):
        for layout, cl in (("nchw", False), ("cl", True)):
            results.setdefault(f"bare_{layout}", []).append(
                bare_loop(images, masks, batch, steps, warmup, cl)
            )
            results.setdefault(f"fw_{layout}", []).append(
                framework(images, masks, batch, steps, warmup, cl)
            )
    best = {k: min(v) for k, v in results.items()}
    print("## Train step: framework vs bare PyTorch loop, like for like")
    print(machine_line())
    print(f"U-Net(16, depth 3), batch {batch}, {size[0]}x{size[1]}, AdamW, pixel CE, {steps} steps")
    print()
    print(
        "| loop | memory layout | ms / step | this / bare loop, same layout "
        "(baseline measured in this run) | this / same loop in NCHW |"
    )
    print("|---|---|---:|---:|---:|")
    for side, name in (("bare", "bare PyTorch loop"), ("fw", "pixelwise (Lightning)")):
        for layout, label in (("nchw", "NCHW"), ("cl", "channels_last")):
            ms = best[f"{side}_{layout}"]
            like = ms / best[f"bare_{layout}"]
            own = ms / best[f"{side}_nchw"]
            print(f"| {name} | {label} | {ms * 1e3:.1f} | {like:.2f} | {own:.2f} |")
    fw = best["fw_cl"]
    consumed = batch / fw
    try:
        from bench_scenes import scenes_per_second

        made = scenes_per_second(size, 64 if args.quick else 256)
        print()
        print("| data | scenes / s |")
        print("|---|---:|")
        print(f"| consumed by the training step | {consumed:.0f} |")
        print(f"| generated by one worker | {made:.0f} ({made / consumed:.1f}x the need) |")
    except ImportError:
        print(f"training step consumes {consumed:.0f} scenes/s")


if __name__ == "__main__":
    main()
