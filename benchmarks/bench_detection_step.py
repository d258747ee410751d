"""Detection training step: the framework (Lightning + DetectionTask, the shipped optimizer config)
vs a bare PyTorch loop with the same FCOS net, batch, loss and memory layout, whose AdamW is
measured twice: as a user writes it (torch's per-tensor default) and fused like the framework's.

Both sides run in this process on the same pre-generated synthetic items, batched by the same
``torch.utils.data.DataLoader`` (shuffled, collated by ``DictCollate``): the bare loop is what a
user writes without a framework, loader included, and each side's time per step covers fetching
its batch, as Lightning's does. The two are interleaved three times so drift on a shared machine
hits both alike; the baseline is measured in this run.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from importlib.resources import files

import lightning as L
import torch
from _machine import machine_line
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, Dataset

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


LR = 2e-3  # fcos_synthetic's learning rate
# The framework's optimizer config; the bare loop reads its weight decay from it too.
ADAMW = OmegaConf.load(files("pixelwise.conf") / "optimizer" / "adamw.yaml").optimizer


def shipped_adamw() -> Callable:
    """The framework's optimizer: conf/optimizer/adamw.yaml as Hydra builds it, at the recipe's lr."""
    return instantiate(ADAMW, lr=LR)


def optimizer_step_ms(fused: bool, repeats: int) -> float:
    """One AdamW step over the FCOS net's parameters (gradients set), best of ``repeats`` x 20."""
    params = list(make_net().parameters())
    for p in params:
        p.grad = torch.randn_like(p)
    opt = torch.optim.AdamW(params, lr=LR, weight_decay=ADAMW.weight_decay, fused=fused)
    opt.step()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(20):
            opt.step()
        best = min(best, (time.perf_counter() - t0) / 20)
    return best * 1e3


def bare_loop(
    items: list[dict], batch: int, steps: int, warmup: int, channels_last: bool, fused: bool
) -> float:
    net = make_net()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net.to(memory_format=fmt).train()
    # fused=False is torch's default, what a bare loop gets from AdamW(params, lr, weight_decay).
    opt = torch.optim.AdamW(net.parameters(), lr=LR, weight_decay=ADAMW.weight_decay, fused=fused)
    loader = DataLoader(
        Items(items),
        batch_size=batch,
        shuffle=True,
        drop_last=True,
        collate_fn=DictCollate(LIST_KEYS),
    )
    batches = iter(())
    times = []
    for step in range(steps + warmup):
        t0 = time.perf_counter()
        b = next(batches, None)
        if b is None:  # a new epoch, as Lightning's loop starts one
            batches = iter(loader)
            b = next(batches)
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
        optimizer=shipped_adamw(),
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
    steps, warmup = (4, 1) if args.quick else (30, 3)
    dataset = SyntheticDetectionScenes(size=(128, 160), length=batch * 4, split="train")
    items = [dataset[i] for i in range(len(dataset))]
    results: dict[str, list[float]] = {}
    for _ in range(1 if args.quick else 3):
        for layout in (True, False):
            name = "channels_last" if layout else "NCHW"
            for fused in (False, True):
                results.setdefault(f"bare {name} fused={fused}", []).append(
                    bare_loop(items, batch, steps, warmup, layout, fused)
                )
            results.setdefault(f"fw {name}", []).append(
                framework(items, batch, steps, warmup, layout)
            )
    best = {k: min(v) for k, v in results.items()}
    print("## Detection train step: framework vs bare PyTorch loop (both measured in this run)")
    print(machine_line())
    print(
        f"FCOSNet(8, FPN 32, strides 4/8/16), batch {batch}, 128x160, AdamW, FCOS loss, {steps} steps; "
        "both sides fetch batches from the same shuffled DataLoader"
    )
    print()
    print(
        "pixelwise: DetectionTask + Lightning with the shipped optimizer config (fused AdamW). "
        "Bare loop: torch.optim.AdamW as a user writes it (torch's default per-tensor loop), and "
        "with fused=True, like for like, which isolates the framework's own overhead."
    )
    print()
    print(
        "| layout | pixelwise ms / step | bare loop, default AdamW | ratio | "
        "bare loop, fused AdamW | ratio (overhead) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name in ("channels_last", "NCHW"):
        fw = best[f"fw {name}"]
        plain, fused = best[f"bare {name} fused=False"], best[f"bare {name} fused=True"]
        print(
            f"| {name} | {fw * 1e3:.0f} | {plain * 1e3:.0f} | {fw / plain:.2f} | "
            f"{fused * 1e3:.0f} | {fw / fused:.2f} |"
        )
    repeats = 1 if args.quick else 5
    per_tensor, fused_kernel = optimizer_step_ms(False, repeats), optimizer_step_ms(True, repeats)
    print()
    print(
        f"AdamW step alone over the net's parameters: per-tensor loop {per_tensor:.2f} ms, "
        f"fused {fused_kernel:.2f} ms ({per_tensor / fused_kernel:.1f}x)"
    )


if __name__ == "__main__":
    main()
