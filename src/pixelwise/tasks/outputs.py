"""The typed outputs of the tasks' evaluation and predict steps: the contract callbacks read.

Each task's ``validation_step`` / ``test_step`` returns one of these (``predict_step`` too,
where it says so). Callbacks read attributes, never guessed string keys; a callback that needs
something a task does not produce fails at attribute access with the class name in the message.
No Lightning or Hydra here, so metrics, callbacks and notebooks can import it freely.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

__all__ = ["DetectionOutput", "SegmentationOutput"]


@dataclass
class SegmentationOutput:
    """Per-pixel classification of a batch.

    preds long [B,H,W] (argmax class), logits float [B,K,H,W], loss scalar (None in predict).
    """

    preds: torch.Tensor
    logits: torch.Tensor
    loss: torch.Tensor | None = None

    @property
    def num_classes(self) -> int:
        return int(self.logits.shape[1])


@dataclass
class DetectionOutput:
    """Boxes of a batch, one entry per image.

    boxes: float [N_i,4] (x1, y1, x2, y2) in input pixels; scores: float [N_i]; labels: long
    [N_i] (0-based class indices); loss: scalar (None when the model gives no eval loss).
    """

    boxes: list[torch.Tensor]
    scores: list[torch.Tensor]
    labels: list[torch.Tensor]
    loss: torch.Tensor | None = None
    extras: dict[str, torch.Tensor] = field(default_factory=dict)

    def as_torchmetrics(self) -> list[dict[str, torch.Tensor]]:
        """The ``preds`` list of torchmetrics' MeanAveragePrecision."""
        return [
            {"boxes": b, "scores": s, "labels": lab}
            for b, s, lab in zip(self.boxes, self.scores, self.labels)
        ]
