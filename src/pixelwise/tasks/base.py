"""The shared base of every task: net, optimizer/scheduler partials, memory format, step dispatch.

A task subclass holds only what makes it a task: its net's forward, its losses, and what its
evaluation steps hand to metrics (a typed output from ``pixelwise.tasks.outputs``). Everything
else (hyper-parameters, ``configure_optimizers``, channels_last, the validation/test dispatch,
loss logging) lives here once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import lightning as L
import torch
from torch import nn

from pixelwise.tasks.optim import OptimizerFactory, SchedulerFactory, configure

# Checkpoint entry naming the task class that wrote it, so evaluate.py / a resume can refuse a
# checkpoint of another task in one line instead of a wall of missing state-dict keys.
TASK_CLASS_KEY = "pixelwise_task_class"

__all__ = ["ClassifyingTask", "PixelwiseTask"]


class PixelwiseTask(L.LightningModule):
    """Net + optimizer/scheduler factories (Hydra ``_partial_``) + memory format.

    Subclasses implement:

    - ``training_loss(batch) -> Tensor | Mapping[str, Tensor]``: the loss, or a dict whose
      ``"loss"`` entry is optimised and whose other entries are logged as ``train/<name>``;
    - ``evaluation_step(batch, stage) -> output``: the typed output metrics read for ``"val"``
      and ``"test"`` (the base routes ``validation_step`` / ``test_step`` to it).

    ``save_hyperparameters`` runs here and collects the subclass's ``__init__`` arguments too
    (Lightning walks the ``super().__init__`` chain); objects that are not hyper-parameters
    (``net``, the factories and a subclass's ``hparams_ignore``) are left out.
    """

    hparams_ignore: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory | None = None,
        scheduler: SchedulerFactory | None = None,
        channels_last: bool = True,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(
            ignore=["net", "optimizer", "scheduler", *self.hparams_ignore], logger=True
        )
        self.net = net
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        # channels_last: ~1.4x faster training of the VGG-style nets on CPU (benchmarks/).
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    # -- nets -------------------------------------------------------------------------------
    def nets(self) -> list[nn.Module]:
        """The modules put into ``memory_format`` at setup (a teacher adds itself here)."""
        return [self.net]

    def setup(self, stage: str) -> None:
        for module in self.nets():
            module.to(memory_format=self.memory_format)

    def as_input(self, images: torch.Tensor) -> torch.Tensor:
        """images [B,C,H,W] in the task's memory format."""
        return images.contiguous(memory_format=self.memory_format)

    # -- steps ------------------------------------------------------------------------------
    def training_loss(self, batch: Any) -> torch.Tensor | Mapping[str, torch.Tensor]:
        raise NotImplementedError(f"{type(self).__name__} does not implement training_loss")

    def evaluation_step(self, batch: Any, stage: str) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not implement evaluation_step")

    def log_losses(
        self, losses: torch.Tensor | Mapping[str, torch.Tensor], stage: str, batch_size: int
    ) -> torch.Tensor:
        """Log ``<stage>/loss`` (and ``<stage>/<name>`` for a dict); returns the total loss."""
        parts = {"loss": losses} if isinstance(losses, torch.Tensor) else dict(losses)
        if "loss" not in parts:
            raise KeyError(f"{type(self).__name__}: the losses dict has no 'loss' entry")
        for name, value in parts.items():
            self.log(
                f"{stage}/{name}",
                value,
                prog_bar=name == "loss" and stage == "train",
                sync_dist=stage != "train",
                batch_size=batch_size,
            )
        return parts["loss"]

    @staticmethod
    def batch_size_of(batch: Any) -> int:
        """Number of images in a batch dict (its ``"image"`` tensor) or a batch list."""
        if isinstance(batch, Mapping) and "image" in batch:
            return int(batch["image"].shape[0])
        if isinstance(batch, Mapping) and "image_a" in batch:
            return int(batch["image_a"].shape[0])
        return len(batch)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self.log_losses(self.training_loss(batch), "train", self.batch_size_of(batch))

    def validation_step(self, batch: Any, batch_idx: int) -> Any:
        return self.evaluation_step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> Any:
        return self.evaluation_step(batch, "test")

    # -- optimisation -----------------------------------------------------------------------
    def trainable_parameters(self) -> Any:
        """What the optimizer updates (a frozen teacher is left out by its task)."""
        return self.parameters()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[TASK_CLASS_KEY] = f"{type(self).__module__}.{type(self).__qualname__}"

    def configure_optimizers(self) -> dict[str, Any]:
        if self.optimizer_factory is None:
            raise ValueError(
                f"{type(self).__name__}: task.optimizer is null; training needs an optimizer "
                "(e.g. task.optimizer._target_=torch.optim.AdamW)"
            )
        return configure(
            self.trainable_parameters(),
            self.optimizer_factory,
            self.scheduler_factory,
            self.trainer.estimated_stepping_batches,
        )


class ClassifyingTask(PixelwiseTask):
    """A task whose net scores ``num_classes`` named classes (segmentation, panoptic, detection).

    Holds ``num_classes`` and ``class_names`` (default ``"0"``, ``"1"``, ...) and refuses a net that
    declares (``net.num_classes``) another number of classes than the task: both normally come
    from ``data.num_classes``, and a mismatch would otherwise surface as a shape error mid-epoch.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory | None,
        scheduler: SchedulerFactory | None,
        num_classes: int,
        class_names: Sequence[str] | None,
        channels_last: bool,
    ) -> None:
        net_classes = getattr(net, "num_classes", num_classes)
        if net_classes != num_classes:
            raise ValueError(
                f"model has {net_classes} classes but task.num_classes={num_classes} "
                "(both normally come from data.num_classes)"
            )
        super().__init__(net, optimizer, scheduler, channels_last)
        self.num_classes = num_classes
        self.class_names = (
            list(class_names) if class_names else [str(i) for i in range(num_classes)]
        )
