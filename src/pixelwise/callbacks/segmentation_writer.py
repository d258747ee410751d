"""Write test/predict segmentations as label PNGs in the dataset's own id space, plus colour PNGs."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from PIL import Image

from pixelwise.callbacks.data_info import data_fact
from pixelwise.callbacks.overlays import colorize, default_palette

log = logging.getLogger("pixelwise")

STAGES: tuple[str, ...] = ("test", "predict")


def prediction_name(path: str | None, index: int | None) -> str:
    """File name of one prediction: the image's stem + ".png" (Cityscapes `*_leftImg8bit.png`, VOC `<id>.png`), else `<index:06d>.png`."""
    if path is not None:
        return f"{Path(path).stem}.png"
    if index is None:
        raise ValueError("prediction_name: an item needs a path or a dataset index")
    return f"{index:06d}.png"


def write_index_png(path: Path, labels: np.ndarray, palette: np.ndarray | None) -> Path:
    """Class ids uint8 [H, W] as a PNG: mode "P" (values are the ids, colours from `palette` [K,3]) or "L"."""
    if labels.min(initial=0) < 0 or labels.max(initial=0) > 255:
        raise ValueError(
            f"{path}: class ids must be in [0, 255], got [{labels.min()}, {labels.max()}]"
        )
    image = Image.fromarray(labels.astype(np.uint8))
    if palette is not None:
        flat = np.zeros((256, 3), dtype=np.uint8)
        flat[: len(palette)] = palette[:256]
        image.putpalette(flat.reshape(-1).tolist())
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


class SegmentationPredictionWriter(L.Callback):
    """For every test (and predict) image, write its predicted labels for the official tools.

    `<dirpath>/<name>`: the dataset's `save_prediction(pred, path)` when it has one (Cityscapes
    and KITTI: labelIds; VOC: palette indices), else a palette PNG of the class ids.
    `<color_dirpath>/<name>`: the prediction in the data's palette, RGB. `<name>` is the image's
    file stem + ".png" (the names cityscapesScripts, the VOC devkit and KITTI look up); items
    without a "path" (synthetic data) are named by dataset index, `000042.png`. Under DDP every
    rank writes the images its sampler gave it, so together they write each image once.
    """

    def __init__(
        self,
        dirpath: str | Path,
        color_dirpath: str | Path | None = None,
        enabled: bool = True,
        stages: Sequence[str] = ("test",),
    ) -> None:
        bad = [s for s in stages if s not in STAGES]
        if bad:
            raise ValueError(
                f"SegmentationPredictionWriter.stages={list(stages)}: {bad} not in {list(STAGES)}"
            )
        self.dirpath = Path(dirpath)
        self.color_dirpath = Path(color_dirpath) if color_dirpath is not None else None
        self.enabled = bool(enabled)
        self.stages = tuple(stages)
        self.written: list[Path] = []
        self._names: dict[str, str] = {}
        self._batches: list[list[int]] | None = None

    def _begin(self) -> None:
        self._names = {}
        self._batches = None

    def _batch_indices(
        self, trainer: Any, stage: str, batch_idx: int, dataloader_idx: int
    ) -> list[int] | None:
        """Dataset indices of one batch, read from the loader's batch sampler (None if it has none)."""
        if self._batches is None:
            loaders = getattr(trainer, f"{stage}_dataloaders", None)
            if isinstance(loaders, (list, tuple)):
                loaders = loaders[dataloader_idx]
            sampler = getattr(loaders, "batch_sampler", None)
            self._batches = [list(b) for b in sampler] if sampler is not None else []
        return self._batches[batch_idx] if batch_idx < len(self._batches) else None

    def _write(
        self,
        trainer: Any,
        stage: str,
        preds: torch.Tensor,
        batch: dict[str, Any],
        batch_idx: int,
        dataloader_idx: int,
        num_classes: int,
    ) -> None:
        datamodule = getattr(trainer, "datamodule", None)
        dataset = None
        if datamodule is not None and hasattr(datamodule, "dataset"):
            dataset = datamodule.dataset(stage)
        save = getattr(dataset, "save_prediction", None)
        palette = data_fact(trainer, "palette")
        if palette is None:
            palette = default_palette(data_fact(trainer, "num_classes", num_classes))
        palette = np.asarray(palette, dtype=np.uint8)
        ignore = data_fact(trainer, "ignore_index", 255)
        paths = batch.get("path")
        indices = (
            None
            if paths is not None
            else self._batch_indices(trainer, stage, batch_idx, dataloader_idx)
        )
        labels = preds.detach().to("cpu", torch.long).numpy()
        for i, pred in enumerate(labels):
            index = indices[i] if indices is not None else None
            path = paths[i] if paths is not None else None
            if path is None and index is None:
                # No path, no sampler: unique within this process, not a dataset index.
                rank = getattr(trainer, "global_rank", 0)
                name = f"rank{rank}_batch{batch_idx:05d}_{i}.png"
            else:
                name = prediction_name(path, index)
            source = str(path if path is not None else index)
            if name in self._names:
                raise ValueError(
                    f"SegmentationPredictionWriter: {self._names[name]} and {source} both map to "
                    f"{self.dirpath / name}; image file names must be unique"
                )
            self._names[name] = source
            target = self.dirpath / name
            if save is not None:
                target.parent.mkdir(parents=True, exist_ok=True)
                save(pred, target)
            else:
                write_index_png(target, pred, palette)
            self.written.append(target)
            if self.color_dirpath is not None:
                color = self.color_dirpath / name
                color.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(colorize(pred, palette, ignore)).save(color)

    def _on_batch_end(
        self,
        stage: str,
        trainer: Any,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        if not self.enabled or stage not in self.stages:
            return
        self._write(
            trainer, stage, outputs.preds, batch, batch_idx, dataloader_idx, outputs.num_classes
        )

    def _on_epoch_end(self, stage: str, trainer: Any) -> None:
        if self.enabled and stage in self.stages:
            log.info(
                "rank %d wrote %d %s predictions to %s",
                getattr(trainer, "global_rank", 0),
                len(self._names),
                stage,
                self.dirpath,
            )

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._begin()

    on_predict_epoch_start = on_test_epoch_start

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self._on_batch_end("test", trainer, outputs, batch, batch_idx, dataloader_idx)

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self._on_batch_end("predict", trainer, outputs, batch, batch_idx, dataloader_idx)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._on_epoch_end("test", trainer)

    def on_predict_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._on_epoch_end("predict", trainer)


__all__ = ["SegmentationPredictionWriter", "prediction_name", "write_index_png"]
