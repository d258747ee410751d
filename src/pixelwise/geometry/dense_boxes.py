"""Dense (per-location) boxes: the locations of pyramid levels and FCOS-style decoding.

Boxes are float ``[N, 4]`` ``(x1, y1, x2, y2)`` in the COCO/torchvision convention (pixel ``c``
spans ``[c, c + 1]``). A location of a level with stride ``s`` at map index ``(i, j)`` sits at
``(j * s + s / 2, i * s + s / 2)``, the centre of the ``s x s`` pixels it covers.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision.ops import batched_nms, clip_boxes_to_image

__all__ = ["decode_dense_detections", "distances_to_boxes", "level_locations"]


def level_locations(
    sizes: Sequence[tuple[int, int]], strides: Sequence[int], device: torch.device | None = None
) -> list[torch.Tensor]:
    """Centres of every location of each level: list of float [H_l*W_l, 2] (x, y), row-major."""
    out = []
    for (h, w), s in zip(sizes, strides):
        ys = torch.arange(h, device=device, dtype=torch.float32) * s + s / 2
        xs = torch.arange(w, device=device, dtype=torch.float32) * s + s / 2
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        out.append(torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1))
    return out


def distances_to_boxes(locations: torch.Tensor, distances: torch.Tensor) -> torch.Tensor:
    """locations [..., 2] (x, y) and distances [..., 4] (l, t, r, b) -> boxes [..., 4] xyxy."""
    x, y = locations[..., 0], locations[..., 1]
    left, top, right, bottom = distances.unbind(-1)
    return torch.stack([x - left, y - top, x + right, y + bottom], dim=-1)


def decode_dense_detections(
    cls_logits: Sequence[torch.Tensor],
    box_distances: Sequence[torch.Tensor],
    centerness: Sequence[torch.Tensor],
    strides: Sequence[int],
    image_size: tuple[int, int],
    score_threshold: float = 0.05,
    pre_nms_top_k: int = 1000,
    nms_iou: float = 0.6,
    max_detections: int = 100,
) -> list[dict[str, torch.Tensor]]:
    """Per-level maps ([B,K,H_l,W_l], [B,4,H_l,W_l], [B,1,H_l,W_l]) -> per image
    {"boxes" [N,4], "scores" [N], "labels" [N] long}.

    Score = sqrt(sigmoid(class) * sigmoid(centerness)) (torchvision's FCOS), candidates above
    ``score_threshold``, the ``pre_nms_top_k`` best per level, boxes clipped to ``image_size``
    (H, W), class-wise NMS (``batched_nms``), at most ``max_detections`` per image.
    """
    sizes = [tuple(c.shape[-2:]) for c in cls_logits]
    locations = level_locations(sizes, strides, device=cls_logits[0].device)
    batch, num_classes = cls_logits[0].shape[:2]
    results = []
    for b in range(batch):
        boxes_all, scores_all, labels_all = [], [], []
        for level, loc in enumerate(locations):
            prob = torch.sigmoid(cls_logits[level][b].float()).flatten(1).T  # [M,K]
            ctr = torch.sigmoid(centerness[level][b].float()).flatten()  # [M]
            scores = torch.sqrt(prob * ctr[:, None]).flatten()  # [M*K], location-major
            keep = torch.nonzero(scores > score_threshold).squeeze(1)
            if keep.numel() > pre_nms_top_k:
                keep = keep[scores[keep].topk(pre_nms_top_k).indices]
            where, label = keep // num_classes, keep % num_classes
            dist = box_distances[level][b].float().flatten(1).T[where]  # [n,4]
            boxes_all.append(distances_to_boxes(loc[where], dist))
            scores_all.append(scores[keep])
            labels_all.append(label)
        boxes = clip_boxes_to_image(torch.cat(boxes_all), image_size)
        scores, labels = torch.cat(scores_all), torch.cat(labels_all)
        keep = batched_nms(boxes, scores, labels, nms_iou)[:max_detections]
        results.append({"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]})
    return results
