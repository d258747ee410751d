"""Detection training step: the framework (Lightning + DetectionTask) vs a bare PyTorch loop with
the same FCOS net, batch, loss and optimizer, like for like in memory layout.

Both sides run in this process on the same pre-generated synthetic batches, interleaved twice
so drift on a shared machine hits both alike; the baseline is measured in this run.
"""

from __future__ import annotations

import argparse
import time

import lightning as L
import torch
from _machine import machine_line
from torch.utils.data import Dataset

from pixelwise.data.collate import DictCollate
from pixelwise.data.datamodule import DataModule
from pixelwise.data.synthetic_detection import SyntheticDetectionScenes
from pixelwise.losses.fcos import fcos_loss
from pixelwise.nets.fcos import FCOSNet
from pixelwise.tasks.detection import DetectionTask

LIST_KEYS = ("boxes", "labels", "iscrowd", "area")


class Items(Dataset):
    def __init__(self, items: list[dict]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


class StepClock(L.Callback):
    def __init__(self) -> None:
        self.starts: list[float] = []

    def on_train_batch_start(self, *args) -> None:
        self.starts.append(time.perf_counter())

    def on_train_end(self, *args) -> None:
        self.starts.append(time.perf_counter())


def make_net() -> FCOSNet:
    torch.manual_seed(0)
    return FCOSNet(num_classes=3, base_channels=8, fpn_channels=32)


def bare_loop(batches: list[dict], steps: int, warmup: int, channels_last: bool) -> float:
    net = make_net()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net.to(memory_format=fmt).train()
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    times = []
    for step in range(steps + warmup):
        b = batches[step % len(batches)]
        t0 = time.perf_counter()
        out = net(b["image"].contiguous(memory_format=fmt))
        loss = fcos_loss(
            out["cls_logits"],
            out["box_distances"],
            out["centerness"],
            net.strides,
            b["boxes"],
            b["labels"],
            b["iscrowd"],
        )["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step >= warmup:
            times.append(time.perf_counter() - t0)
    return sum(times) / len(times)


def framework(items: list[dict], batch: int, steps: int, warmup: int, channels_last: bool) -> float:
    task = DetectionTask(
        make_net(),
        optimizer=lambda params: torch.optim.AdamW(params, lr=2e-3, weight_decay=1e-4),
        num_classes=3,
        channels_last=channels_last,
    )
    dm = DataModule(
        train=lambda: Items(items), batch_size=batch, num_workers=0, list_keys=LIST_KEYS
    )
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
    batch = 16
    steps, warmup = (4, 1) if args.quick else (20, 3)
    dataset = SyntheticDetectionScenes(size=(128, 160), length=batch * 4, split="train")
    items = [dataset[i] for i in range(len(dataset))]
    collate = DictCollate(LIST_KEYS)
    batches = [collate(items[i : i + batch]) for i in range(0, len(items), batch)]
    results: dict[str, list[float]] = {}
    for _ in range(2):
        for layout in (True, False):
            name = "channels_last" if layout else "NCHW"
            results.setdefault(f"bare {name}", []).append(bare_loop(batches, steps, warmup, layout))
            results.setdefault(f"fw {name}", []).append(
                framework(items, batch, steps, warmup, layout)
            )
    best = {k: min(v) for k, v in results.items()}
    print("## Detection train step: framework vs bare PyTorch loop (both measured in this run)")
    print(machine_line())
    print(
        f"FCOSNet(8, FPN 32, strides 4/8/16), batch {batch}, 128x160, AdamW, FCOS loss, {steps} steps"
    )
    print()
    print("| layout | bare loop ms / step | pixelwise ms / step | ratio (pixelwise / bare) |")
    print("|---|---:|---:|---:|")
    for name in ("channels_last", "NCHW"):
        bare, fw = best[f"bare {name}"], best[f"fw {name}"]
        print(f"| {name} | {bare * 1e3:.0f} | {fw * 1e3:.0f} | {fw / bare:.2f} |")


if __name__ == "__main__":
    main()
