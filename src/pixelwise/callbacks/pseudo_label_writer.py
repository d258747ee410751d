"""Write one pseudo-label file per predicted image: resumable, atomic, DDP-sharded, with a rate and ETA.

File format (read back by ``pixelwise.data.images.read_pseudo_labels``): ``<dirpath>/<name>.npz``
where ``<name>`` is the item's ``"name"`` (its path relative to the image root without suffix,
so the outputs mirror the input tree), holding ``keypoints`` float32 [N,2] (x, y), ``scores``
float32 [N] (best first), ``image_size`` int64 [2] (H, W) and, with ``save_heatmap``,
``heatmap`` [H,W] (float16 by default).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter

__all__ = ["PseudoLabelWriter", "save_npz_atomic"]

log = logging.getLogger("pixelwise")

_HEATMAP_DTYPES = ("float16", "float32")


def save_npz_atomic(path: Path, arrays: dict[str, np.ndarray], compress: bool = False) -> Path:
    """Write ``arrays`` to ``path`` (.npz) through a temporary file and a rename: never a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            (np.savez_compressed if compress else np.savez)(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic on POSIX: readers see the old state or the whole file
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


class PseudoLabelWriter(BasePredictionWriter):
    """Save each predicted image's keypoints (and optionally heatmap) as ``<dirpath>/<name>.npz``.

    - Resumable: :meth:`pending` lists the dataset items whose file is missing (filter the
      dataset with it before predicting, as ``pixelwise.export.export`` does); an existing
      file is also never rewritten unless ``overwrite``.
    - Atomic: each file is written under a temporary name, flushed, then renamed.
    - DDP: every rank writes the images its (unrepeated) sampler gave it; counts are summed
      over ranks at the end.
    - Unusable items (``batch["ok"]`` False: unreadable, corrupt, too small) are skipped and
      counted; the end-of-run summary names them.
    - Progress: every ``log_every_s`` seconds rank 0 logs images done, images/s and ETA.

    ``check_writable`` (also run at ``setup``) raises before any work if ``dirpath`` cannot be
    created or written.
    """

    def __init__(
        self,
        dirpath: str | os.PathLike,
        save_heatmap: bool = False,
        heatmap_dtype: str = "float16",
        overwrite: bool = False,
        log_every_s: float = 30.0,
    ) -> None:
        super().__init__(write_interval="batch")
        if heatmap_dtype not in _HEATMAP_DTYPES:
            raise ValueError(
                f"PseudoLabelWriter.heatmap_dtype={heatmap_dtype!r}: expected one of {list(_HEATMAP_DTYPES)}"
            )
        self.dirpath = Path(dirpath)
        self.save_heatmap = bool(save_heatmap)
        self.heatmap_dtype = heatmap_dtype
        self.overwrite = bool(overwrite)
        self.log_every_s = float(log_every_s)
        self._reset()

    def _reset(self) -> None:
        self.written = 0
        self.existing = 0
        self.skipped: list[str] = []
        self.summary: dict[str, Any] = {}
        self._start = time.perf_counter()
        self._last_log = self._start
        self._done_batches = 0
        self._done_images = 0

    # -- before any work --------------------------------------------------------------------------

    def check_writable(self) -> Path:
        """Create ``dirpath`` and write/remove a probe file; a clear ``PermissionError`` if that fails."""
        try:
            self.dirpath.mkdir(parents=True, exist_ok=True)
            probe = self.dirpath / f".write_probe.{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as err:
            raise PermissionError(
                f"pseudo-label output directory {self.dirpath} is not writable "
                f"({type(err).__name__}: {err.strerror or err}); choose another export.dirpath"
            ) from None
        return self.dirpath

    def output_path(self, name: str) -> Path:
        """File of the image called ``name``: ``<dirpath>/<name>.npz``."""
        return self.dirpath / f"{name}.npz"

    def pending(self, dataset: Any) -> list[int]:
        """Indices of ``dataset`` items still to export: first item of each name whose file is missing.

        ``dataset`` needs a ``names`` list (``Images``, ``COCO``, ``SampleImages``); items are
        ``names[i % len(names)]`` when a dataset repeats its images, so each name is done once.
        """
        names = getattr(dataset, "names", None)
        if names is None:
            raise TypeError(
                f"PseudoLabelWriter.pending: {type(dataset).__name__} has no 'names' list; "
                "use pixelwise.data.images.Images / COCO / SampleImages for the predict split"
            )
        if self.overwrite:
            return list(range(len(names)))
        existing = self._existing_files()
        return [i for i, n in enumerate(names) if f"{n}.npz" not in existing]

    def _existing_files(self) -> set[str]:
        """Relative ``/``-paths of the finished .npz files (one directory walk, no stat per image)."""
        found: set[str] = set()
        if not self.dirpath.is_dir():
            return found
        root = str(self.dirpath)
        for dirpath, _, filenames in os.walk(root):
            rel = os.path.relpath(dirpath, root)
            prefix = "" if rel == "." else Path(rel).as_posix() + "/"
            found.update(
                prefix + f for f in filenames if f.endswith(".npz") and not f.startswith(".")
            )
        return found

    # -- hooks ------------------------------------------------------------------------------------

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if stage == "predict":
            self.check_writable()

    def on_predict_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._reset()

    def write_on_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        prediction: dict[str, Any],
        batch_indices: Sequence[int] | None,
        batch: dict[str, Any],
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        names = batch.get("name")
        if names is None:
            raise ValueError(
                "PseudoLabelWriter: batch has no 'name' entry (the output file name of each image); "
                "use pixelwise.data.images.Images / COCO / SampleImages"
            )
        ok = batch.get("ok")
        paths = batch.get("path", names)
        height, width = batch["image"].shape[-2:]
        for i, name in enumerate(names):
            if ok is not None and not bool(ok[i]):
                self.skipped.append(str(paths[i]))
                continue
            path = self.output_path(name)
            if path.exists() and not self.overwrite:
                self.existing += 1
                continue
            arrays = {
                "keypoints": prediction.keypoints[i].detach().cpu().numpy().astype(np.float32),
                "scores": prediction.scores[i].detach().cpu().numpy().astype(np.float32),
                "image_size": np.array([height, width], dtype=np.int64),
            }
            if self.save_heatmap:
                heat = prediction.heatmap[i, 0].detach().cpu().float().numpy()
                arrays["heatmap"] = heat.astype(self.heatmap_dtype)
            save_npz_atomic(path, arrays, compress=self.save_heatmap)
            self.written += 1
        self._done_batches += 1
        self._done_images += len(names)
        self._progress(trainer, dataloader_idx)

    def _progress(self, trainer: L.Trainer, dataloader_idx: int) -> None:
        now = time.perf_counter()
        if now - self._last_log < self.log_every_s or not trainer.is_global_zero:
            return
        self._last_log = now
        elapsed = now - self._start
        total = trainer.num_predict_batches[dataloader_idx] if trainer.num_predict_batches else 0
        rate = self._done_images / elapsed * trainer.world_size
        eta = (total - self._done_batches) * elapsed / max(self._done_batches, 1)
        log.info(
            "export: %d/%d batches on rank 0, %.2f images/s (all ranks), ETA %s",
            self._done_batches,
            total,
            rate,
            timedelta(seconds=round(eta)),
        )

    def on_predict_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        elapsed = time.perf_counter() - self._start
        counts = torch.tensor(
            [self.written, self.existing, len(self.skipped), self._done_images], dtype=torch.float64
        )
        skipped = list(self.skipped)
        if (
            trainer.world_size > 1
            and torch.distributed.is_available()
            and torch.distributed.is_initialized()
        ):
            torch.distributed.all_reduce(counts)
            gathered: list[list[str]] = [[] for _ in range(trainer.world_size)]
            torch.distributed.all_gather_object(gathered, skipped)
            skipped = [p for part in gathered for p in part]
        written, existing, n_skipped, images = (int(c) for c in counts)
        self.summary = {
            "written": written,
            "already_present": existing,
            "skipped": n_skipped,
            "skipped_files": sorted(skipped),
            "images": images,
            "seconds": elapsed,
            "images_per_s": images / elapsed if elapsed > 0 else 0.0,
            "dirpath": str(self.dirpath),
        }
        if trainer.is_global_zero:
            log.info(
                "export: wrote %d pseudo-label files to %s (%d already there), %.2f images/s",
                written,
                self.dirpath,
                existing,
                self.summary["images_per_s"],
            )
            if n_skipped:
                shown = ", ".join(sorted(skipped)[:20]) + (" ..." if n_skipped > 20 else "")
                log.warning(
                    "export: skipped %d unusable image(s) (unreadable, corrupt or too small): %s",
                    n_skipped,
                    shown,
                )
