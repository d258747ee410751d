"""Pretrained interest-point nets for notebooks and other code: no Lightning, no Hydra.

    import torch
    from pixelwise import SuperPoint

    sp = SuperPoint.from_pretrained("superpoint_photos")  # a shipped weight file, or a path
    features = sp.extract(images, max_keypoints=1000)  # images [B,1,H,W] (or [B,3,H,W]) in [0,1]
    features[0]["keypoints"]    # float [N, 2], (x, y) pixels, best first
    features[0]["scores"]       # float [N]
    features[0]["descriptors"]  # float [N, D], L2-normalised

The names and shapes are those of kornia/LightGlue-style extractors (per image; stack with
``[None]`` for LightGlue's batched dicts, which also take ``image_size`` as given here).
``MagicPoint`` is the same without descriptors. Both are :class:`SuperPointNet` subclasses, so
they also go wherever a net is expected (e.g. ``SuperPointTask(net=...)`` for fine-tuning).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from pixelwise.geometry.adaptation import (
    ADAPTATION_HOMOGRAPHY,
    check_num_homographies,
    check_shift_step,
    homographic_adaptation,
    shift_averaged_heatmap,
)
from pixelwise.geometry.cells import CELL, logits_to_heatmap
from pixelwise.geometry.keypoints import SUPERPOINT_EXTRACTION, Extraction
from pixelwise.nets.superpoint import (
    SuperPointNet,
    load_superpoint_weights,
    superpoint_features,
    superpoint_from_file,
    superpoint_net_config,
)
from pixelwise.weights_settings import read_weights_settings

__all__ = ["WEIGHTS_DIR", "MagicPoint", "SuperPoint", "shipped_weights", "weights_path"]

# The weights shipped inside the package (linked as weights/ in the repository).
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

Images = torch.Tensor | Sequence[torch.Tensor]


def shipped_weights() -> list[str]:
    """Names of the weight files shipped with the package (``weights/<name>.pt``), sorted."""
    return sorted(p.stem for p in WEIGHTS_DIR.glob("*.pt"))


def weights_path(name_or_path: str | os.PathLike) -> Path:
    """A shipped weight name (``"superpoint_photos"``, with or without ``.pt``) or an existing file -> its path."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    name = str(name_or_path).removesuffix(".pt")
    shipped = WEIGHTS_DIR / f"{name}.pt"
    if os.sep not in name and shipped.is_file():
        return shipped
    raise FileNotFoundError(
        f"{name_or_path!r} is neither a file nor a shipped weight name; "
        f"shipped: {', '.join(shipped_weights()) or 'none'} (in {WEIGHTS_DIR})"
    )


def _as_batches(images: Images) -> list[torch.Tensor]:
    """[H,W], [C,H,W], [B,C,H,W] or a list of [C,H,W] / [H,W] (any sizes) -> list of [B,C,H,W] float."""
    if isinstance(images, torch.Tensor):
        groups = [images]
    elif (
        isinstance(images, Sequence) and images and all(isinstance(i, torch.Tensor) for i in images)
    ):
        groups = list(images)
    else:
        raise TypeError(
            "extract: expected a tensor [B,C,H,W] / [C,H,W] / [H,W] or a non-empty list of "
            f"[C,H,W] tensors, got {type(images).__name__}"
        )
    batches = []
    for image in groups:
        if image.dim() == 2:
            image = image[None, None]
        elif image.dim() == 3:
            image = image[None]
        if image.dim() != 4 or image.shape[1] not in (1, 3):
            raise ValueError(
                "extract: expected images [B,1,H,W] or [B,3,H,W] (or [C,H,W], [H,W]), "
                f"got shape {list(image.shape)}"
            )
        if not image.is_floating_point():
            if image.dtype != torch.uint8:
                raise TypeError(
                    f"extract: images must be float in [0, 1] or uint8, got {image.dtype}"
                )
            image = image.float() / 255.0
        if isinstance(images, torch.Tensor):
            return [image]
        batches.append(image)
    return batches


# Warped images through the net at once under extract(num_homographies=...): bounds memory, not
# the result (100 warps of a 480x640 image through the paper's 64-channel conv1: ~8 GB at once).
_ADAPTATION_CHUNK = 25


class _PretrainedPoints(SuperPointNet):
    """Shared loading and extraction of :class:`SuperPoint` and :class:`MagicPoint`."""

    has_descriptor: bool = True
    default_weights: str = ""

    def __init__(self, extraction: Extraction = SUPERPOINT_EXTRACTION, **net_kwargs) -> None:
        super().__init__(descriptor=self.has_descriptor, **net_kwargs)
        self.extraction = extraction
        # extract() documents the BT.601 conversion of RGB input: no warning for it.
        self._warned_rgb = True

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike | None = None,
        device: str | torch.device = "cpu",
        extraction: Extraction | None = None,
    ):
        """A shipped weight name (see :func:`shipped_weights`) or a state-dict file -> this net, in eval mode.

        Widths and BatchNorm are read from the file (as :func:`superpoint_from_file`), so the
        official ``superpoint_v1.pth`` loads too. ``MagicPoint`` takes a SuperPoint file's
        detector; ``SuperPoint`` refuses a file without a descriptor head. ``extraction``
        (default): the official demo's :data:`SUPERPOINT_EXTRACTION` with the file's own
        settings over it (``<name>.json`` beside it, :mod:`pixelwise.weights_settings`).
        """
        path = weights_path(name_or_path or cls.default_weights)
        if extraction is None:
            own = read_weights_settings(path).get("extraction", {})
            extraction = dataclasses.replace(SUPERPOINT_EXTRACTION, **own)
        source = superpoint_from_file(path)
        if cls.has_descriptor and not source.descriptor:
            raise ValueError(
                f"{cls.__name__}.from_pretrained: {str(path)!r} has no descriptor head "
                "(MagicPoint weights): use MagicPoint.from_pretrained"
            )
        config = superpoint_net_config(source)
        config.pop("descriptor")
        if not cls.has_descriptor:
            config.pop("descriptor_dim")
        net = cls(extraction=extraction, **config)
        load_superpoint_weights(net, path, ignore_descriptor=not cls.has_descriptor)
        net.pretrained = str(path)
        return net.to(device).eval()

    @property
    def device(self) -> torch.device:
        """The device of the weights (where :meth:`extract` runs)."""
        return self.conv1a.weight.device

    @torch.no_grad()
    def extract(
        self,
        images: Images,
        max_keypoints: int | None = 1000,
        threshold: float | None = None,
        nms_radius: int | None = None,
        border: int | None = None,
        shift_step: int = CELL,
        num_homographies: int = 1,
        homography: Mapping[str, object] | None = None,
        seed: int = 0,
    ) -> list[dict[str, torch.Tensor]]:
        """Images -> per image {"keypoints" float [N,2] (x, y), "scores" [N], ("descriptors" [N,D]), "image_size" [2] (W, H)}.

        ``images``: float in [0, 1] (uint8 is divided by 255), ``[B,1,H,W]``, ``[B,3,H,W]`` (RGB,
        converted with BT.601 weights), ``[C,H,W]``, ``[H,W]``, or a list of images of any sizes.
        Keypoints are sorted by score, at most ``max_keypoints`` (None: all); ``threshold``,
        ``nms_radius`` and ``border`` default to the net's ``extraction`` (the official demo's
        0.015, 4, 4). Runs in eval mode without gradients; results are on the net's device.
        ``shift_step`` < 8 detects on the heatmap averaged over the input shifted by
        ``range(0, 8, shift_step)`` in x and y (:func:`~pixelwise.geometry.shift_averaged_heatmap`):
        the stride-8 detector head is not shift-equivariant and the mean over shifts is; 4 costs
        4 forward passes, 2 costs 16. Descriptors come from the unshifted pass.

        ``num_homographies`` > 1 detects on the homographic adaptation of the heatmap (the
        export's teacher, :func:`~pixelwise.geometry.homographic_adaptation`): the mean over the
        image and ``num_homographies - 1`` random homographies of it (``homography``: the
        sampler's keyword arguments, default :data:`~pixelwise.geometry.ADAPTATION_HOMOGRAPHY`),
        warped back; drawn from ``torch.Generator().manual_seed(seed)``, so a call is
        reproducible. It costs ``num_homographies`` forward passes (times the shifts' count).
        """
        check_shift_step(shift_step, "extract: shift_step")
        check_num_homographies(num_homographies, "extract: num_homographies")
        sampler_params = dict(ADAPTATION_HOMOGRAPHY if homography is None else homography)
        generator = torch.Generator().manual_seed(seed)
        # The heatmap of one image, shift-averaged if asked: what the homographies are applied to.
        detector = (
            self._heatmap
            if shift_step == CELL
            else functools.partial(shift_averaged_heatmap, self._heatmap, step=shift_step)
        )
        base = self.extraction
        extraction = Extraction.checked(
            base.threshold if threshold is None else threshold,
            base.nms_radius if nms_radius is None else nms_radius,
            base.border if border is None else border,
            max_keypoints,
            where="extract",
            keys={"threshold": "threshold", "top_k": "max_keypoints"},
        )
        was_training = self.training
        self.eval()
        try:
            features = []
            for batch in _as_batches(images):
                batch = batch.to(self.device)
                out = self(batch)
                size = tuple(batch.shape[-2:])
                heat = logits_to_heatmap(out["logits"].float(), image_size=size)
                if shift_step != CELL:
                    # The plain pass above is the unshifted one: not run again.
                    heat = detector(batch, unshifted=heat)
                if num_homographies > 1:
                    # ``heat`` is the identity's heatmap: not run again.
                    heat = homographic_adaptation(
                        detector,
                        batch,
                        num_homographies=num_homographies,
                        chunk_size=_ADAPTATION_CHUNK,
                        generator=generator,
                        identity=heat,
                        **sampler_params,
                    )
                features += self._features(out, extraction, heat)
        finally:
            self.train(was_training)
        return features

    def _heatmap(self, images: torch.Tensor) -> torch.Tensor:
        return logits_to_heatmap(self(images)["logits"].float(), image_size=images.shape[-2:])

    def _features(self, out, extraction, heat):
        size = tuple(heat.shape[-2:])
        if self.has_descriptor:
            features = superpoint_features(out, size, extraction, heatmap=heat)
        else:
            features = extraction(heat)
        image_size = torch.tensor([size[1], size[0]], device=self.device, dtype=torch.float32)
        return [{**f, "image_size": image_size} for f in features]

    def extra_repr(self) -> str:
        return f"pretrained={self.pretrained!r}, extraction={dataclasses.astuple(self.extraction)}"


class SuperPoint(_PretrainedPoints):
    """SuperPoint (detector + descriptor) for inference: ``SuperPoint.from_pretrained(...).extract(images)``.

    A :class:`~pixelwise.nets.SuperPointNet` with a descriptor head (constructor kwargs as
    SuperPointNet's, plus ``extraction``); ``forward`` gives the raw ``logits``/``descriptors``
    maps, :meth:`extract` keypoints, scores and L2-normalised descriptors per image.
    """

    has_descriptor = True
    default_weights = "superpoint_photos"


class MagicPoint(_PretrainedPoints):
    """MagicPoint (detector only) for inference: ``MagicPoint.from_pretrained("magicpoint_shapes").extract(images)``.

    A :class:`~pixelwise.nets.SuperPointNet` without descriptor head; :meth:`extract` gives
    keypoints and scores per image.
    """

    has_descriptor = False
    default_weights = "magicpoint_shapes"
