"""The typed outputs of the tasks' evaluation and predict steps: the contract callbacks read.

Each task's ``validation_step`` / ``test_step`` returns one of these (``predict_step`` too,
where it says so). Callbacks read attributes, never guessed string keys; a callback that needs
something a task does not produce fails at attribute access with the class name in the message.
No Lightning or Hydra here, so metrics, callbacks and notebooks can import it freely.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypedDict

import torch

__all__ = [
    "AdaptationOutput",
    "DetectionOutput",
    "Detections",
    "EdgeOutput",
    "FeatureOutput",
    "Features",
    "InstanceOutput",
    "KeypointOutput",
    "PairDetections",
    "PanopticOutput",
    "SegmentationOutput",
    "SuperPointPairOutput",
]


@dataclass
class SegmentationOutput:
    """Per-pixel classification of a batch.

    preds long [B,H,W] (argmax class), logits float [B,K,H,W] (None when only classes are
    known, e.g. predictions read back from files), loss scalar (None in predict).
    """

    preds: torch.Tensor
    logits: torch.Tensor | None = None
    loss: torch.Tensor | None = None

    @property
    def num_classes(self) -> int:
        """K from the logits; without them, the largest predicted class + 1 (a lower bound)."""
        if self.logits is not None:
            return int(self.logits.shape[1])
        return int(self.preds.max()) + 1 if self.preds.numel() else 1


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


class Detections(TypedDict):
    """One image's interest points: keypoints float [N,2] (x, y), scores float [N]."""

    keypoints: torch.Tensor
    scores: torch.Tensor


class Features(Detections):
    """One image's local features (kornia/LightGlue names): keypoints [N,2] (x, y), scores [N], descriptors [N,D]."""

    descriptors: torch.Tensor


@dataclass
class EdgeOutput:
    """Edge probabilities of a batch.

    preds float [B,H,W] (the fused output's probability), sides float [B,S,H,W] (the S side
    outputs' probabilities), edges: per image the bool annotations [K_i,H,W] the benchmark
    compares with (None in predict), names: per image its name (predict, when the data has one),
    loss: scalar (None in predict).
    """

    preds: torch.Tensor
    sides: torch.Tensor
    edges: list[torch.Tensor] | torch.Tensor | None = None
    loss: torch.Tensor | None = None
    names: list[str] | None = None


@dataclass
class KeypointOutput:
    """Interest points of a batch, one entry per image.

    keypoints: float [N_i,2] (x, y); scores: float [N_i]; heatmap: float [B,1,H,W] point
    probability (None for a model without one); loss: scalar (None in predict); baselines:
    classical detectors' points on the same images ({method: KeypointOutput}, test only).
    """

    keypoints: list[torch.Tensor]
    scores: list[torch.Tensor]
    heatmap: torch.Tensor | None = None
    loss: torch.Tensor | None = None
    baselines: dict[str, KeypointOutput] = field(default_factory=dict)

    @classmethod
    def from_detections(
        cls,
        detections: Sequence[Mapping[str, torch.Tensor]],
        heatmap: torch.Tensor | None = None,
        loss: torch.Tensor | None = None,
    ) -> KeypointOutput:
        """From per-image {"keypoints" [N,2], "scores" [N]} (``extract_keypoints``' output)."""
        return cls(
            keypoints=[d["keypoints"] for d in detections],
            scores=[d["scores"] for d in detections],
            heatmap=heatmap,
            loss=loss,
        )

    def detections(self) -> list[Detections]:
        """Per image {"keypoints" [N,2], "scores" [N]}."""
        return [Detections(keypoints=k, scores=s) for k, s in zip(self.keypoints, self.scores)]


@dataclass
class PairDetections:
    """One model's points on B image pairs (a, b): lists over the batch of [N,2] (x, y) and [N]."""

    keypoints_a: list[torch.Tensor]
    scores_a: list[torch.Tensor]
    keypoints_b: list[torch.Tensor]
    scores_b: list[torch.Tensor]

    @classmethod
    def from_detections(
        cls, a: Sequence[Mapping[str, torch.Tensor]], b: Sequence[Mapping[str, torch.Tensor]]
    ) -> PairDetections:
        """From per-image detections of the a and b images."""
        return cls(
            keypoints_a=[d["keypoints"] for d in a],
            scores_a=[d["scores"] for d in a],
            keypoints_b=[d["keypoints"] for d in b],
            scores_b=[d["scores"] for d in b],
        )

    def select(self, keep: Sequence[int]) -> PairDetections:
        """The pairs with the given batch indices."""
        return PairDetections(*([getattr(self, name)[i] for i in keep] for name in _PAIR_FIELDS))


_PAIR_FIELDS = ("keypoints_a", "scores_a", "keypoints_b", "scores_b")


@dataclass
class AdaptationOutput:
    """Student and teacher points on B pairs (image, image warped by a known homography).

    homography float [B,3,3] (a -> b); shape (H, W) of both images; ok bool [B] (False: an
    unusable item, to skip); detections {"student": PairDetections, "teacher": PairDetections};
    student_heatmap / teacher_heatmap float [B,1,H,W] on image a; adapted_heatmap float
    [M,1,H,W]: the teacher's homographic adaptation of the first M usable images (M = the task's
    ``media_images``, 0: None), with ``media_images`` [M,1,H,W] those images; loss: scalar or None.
    """

    homography: torch.Tensor
    shape: tuple[int, int]
    ok: torch.Tensor
    detections: dict[str, PairDetections]
    student_heatmap: torch.Tensor
    teacher_heatmap: torch.Tensor
    adapted_heatmap: torch.Tensor | None = None
    media_images: torch.Tensor | None = None
    loss: torch.Tensor | None = None


@dataclass
class SuperPointPairOutput:
    """Features of B image pairs (a, b) related by a known homography.

    features_a / features_b: per image :class:`Features` (keypoints [N,2] (x, y), scores [N],
    descriptors [N,D] L2-normalised); homography float [B,3,3] (a -> b); kinds: per pair "i"
    (illumination) / "v" (viewpoint) / None; shape_a / shape_b (H, W); loss: scalar when the
    batch has labels (None on HPatches); baselines: {method: SuperPointPairOutput} of classical
    features (ORB, SIFT) on the same pairs (test only); part: which metrics of the HPatches
    protocol these pairs are for: "both", or, when the data has a detector-protocol split at
    another resolution, "descriptors" (the test pairs) or "detector" (the detector_test pairs).
    """

    features_a: list[Features]
    features_b: list[Features]
    homography: torch.Tensor
    kinds: list[str | None]
    shape_a: tuple[int, int]
    shape_b: tuple[int, int]
    loss: torch.Tensor | None = None
    baselines: dict[str, SuperPointPairOutput] = field(default_factory=dict)
    part: str = "both"


@dataclass
class FeatureOutput:
    """Features of a batch of single images (SuperPoint's predict): per image :class:`Features`."""

    features: list[Features]


@dataclass
class PanopticOutput:
    """Panoptic segmentation of a batch.

    panoptic long [B,H,W]: segment ids, 0 = void; a model's ids are ``(class + 1) *
    label_divisor`` (stuff) and ``(class + 1) * label_divisor + n`` (thing instance n);
    segments: per image long [N_i,3] (segment id, class index, iscrowd); semantic long [B,H,W]
    (the semantic head's classes); heatmap float [B,1,H,W] (instance-centre heatmap) and
    offsets float [B,2,H,W] ((dx, dy) to the centre), None for a model without them; loss:
    scalar (None in predict).
    """

    panoptic: torch.Tensor
    segments: list[torch.Tensor]
    semantic: torch.Tensor | None = None
    heatmap: torch.Tensor | None = None
    offsets: torch.Tensor | None = None
    loss: torch.Tensor | None = None
    label_divisor: int = 1000

    @property
    def preds(self) -> torch.Tensor | None:
        """``semantic`` under :class:`SegmentationOutput`'s name: the segmentation metrics score the semantic head."""
        return self.semantic

    def instances(self, thing_classes: Sequence[int]) -> list[dict[str, torch.Tensor]]:
        """The thing segments as instance segmentation, per image {"masks" bool [N,H,W], "labels" [N], "scores" [N]}.

        A segment's score is the heatmap's maximum over its pixels (1 without a heatmap).
        """
        things = torch.as_tensor(list(thing_classes), dtype=torch.long)
        out = []
        for i, seg in enumerate(self.segments):
            seg = seg[torch.isin(seg[:, 1], things.to(seg.device)) & (seg[:, 2] == 0)]
            masks = self.panoptic[i].unsqueeze(0) == seg[:, 0].view(-1, 1, 1)
            if self.heatmap is not None and len(seg):
                hm = self.heatmap[i, 0].unsqueeze(0).expand_as(masks)
                scores = (
                    torch.where(masks, hm, torch.full_like(hm, -1.0)).flatten(1).amax(1).clamp(0, 1)
                )
            else:
                scores = torch.ones(len(seg), device=self.panoptic.device)
            out.append({"masks": masks, "labels": seg[:, 1], "scores": scores.float()})
        return out


@dataclass
class InstanceOutput(DetectionOutput):
    """Instance segmentation of a batch: :class:`DetectionOutput` + masks, per image bool [N_i,H,W]."""

    masks: list[torch.Tensor] = field(default_factory=list)

    def as_torchmetrics(self) -> list[dict[str, torch.Tensor]]:
        """``preds`` of MeanAveragePrecision(iou_type=("bbox", "segm")): boxes, scores, labels, masks."""
        return [
            {"boxes": b, "scores": s, "labels": lab, "masks": m}
            for b, s, lab, m in zip(self.boxes, self.scores, self.labels, self.masks)
        ]
