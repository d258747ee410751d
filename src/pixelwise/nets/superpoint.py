"""SuperPoint / MagicPoint network: shared VGG-style encoder, 65-channel detector head, descriptor head.

With ``batch_norm=False`` and the default widths, ``state_dict()`` has exactly the keys and shapes
of the official pretrained release (magicleap SuperPointPretrainedNetwork ``superpoint_v1.pth``):
``conv1a.weight`` ... ``conv4b.bias``, ``convPa.*``, ``convPb.*``, ``convDa.*``, ``convDb.*``.
Unlike the demo, ``forward`` returns the *raw* descriptors (L2 normalisation belongs to the
caller, e.g. after sampling at keypoints).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pixelwise.geometry.cells import CELL, logits_to_heatmap, pad_to_multiple
from pixelwise.geometry.keypoints import SUPERPOINT_EXTRACTION, Extraction

__all__ = [
    "SuperPointNet",
    "load_detector_weights",
    "load_superpoint_weights",
    "magicpoint",
    "sample_descriptors",
    "superpoint_features",
    "superpoint_from_file",
    "superpoint_net_config",
]

# State-dict prefixes of the optional full-resolution refinement (SuperPointNet(refine_channels=...)).
_REFINE_KEYS = ("convRa.", "bnRa.", "convRb.")

# ITU-R BT.601 luma, the weights of cv2.cvtColor(..., COLOR_RGB2GRAY).
_RGB_TO_GRAY = (0.299, 0.587, 0.114)


class SuperPointNet(nn.Module):
    """images [B,1,H,W] in [0,1] -> {"logits": [B,65,Hc,Wc], "descriptors": [B,D,Hc,Wc] (raw)}.

    ``Hc = ceil(H / 8)``, ``Wc = ceil(W / 8)``: an image whose size is not a multiple of 8 is
    padded at the bottom/right by replicating its last row/column (no artificial edge for the
    detector to fire on, pixel coordinates unchanged), so the outputs describe the padded image;
    ``pixelwise.geometry.logits_to_heatmap(logits, image_size=(H, W))`` crops the heatmap back.
    A 3-channel input is converted to gray (BT.601 weights) with a warning, once per net.
    ``batch_norm=True`` inserts ``nn.BatchNorm2d`` after every 3x3 conv (``bn1a`` ... ``bnDa``);
    the 1x1 output convs stay linear. ``channels`` are the widths of conv1, conv2, conv3, conv4
    (MagicPoint-S/L of the paper are other widths). ``pretrained=PATH`` (``model.pretrained``)
    loads a state dict file with exactly this net's keys and shapes, e.g. the official
    ``superpoint_v1.pth`` (see :func:`load_superpoint_weights`).

    ``refine_channels > 0`` adds a full-resolution refinement of the detector logits (not in the
    paper): ``convRa`` (3x3, ``bnRa`` with batch norm) and ``convRb`` (1x1 -> 1) on the stride-1
    conv1 features give one logit per pixel, added to that pixel's class of its cell's 65 (the
    dustbin is untouched). The cell head works on stride-8 features, so its sub-cell choice moves
    with the input's phase against the 8x8 grid (README, "the 8x8 cell grid": under translations
    alone an adapted student repeats 0.77 of its points on the val photographs, Harris 0.86). The
    refinement is shift-equivariant.
    ``convRb`` starts at zero, so a net with it computes what the same net without it computes
    until training moves it, and plain weight files load into it (:func:`load_superpoint_weights`).
    """

    def __init__(
        self,
        descriptor: bool = True,
        batch_norm: bool = False,
        channels: Sequence[int] = (64, 64, 128, 128),
        head_channels: int = 256,
        descriptor_dim: int = 256,
        pretrained: str | os.PathLike | None = None,
        refine_channels: int = 0,
    ) -> None:
        super().__init__()
        if len(channels) != 4 or any(int(c) < 1 for c in channels):
            raise ValueError(
                f"SuperPointNet: channels must be 4 positive widths (conv1..conv4), got {channels}"
            )
        if head_channels < 1 or descriptor_dim < 1:
            raise ValueError(
                f"SuperPointNet: head_channels and descriptor_dim must be positive, "
                f"got {head_channels} and {descriptor_dim}"
            )
        if refine_channels < 0:
            raise ValueError(
                f"SuperPointNet: refine_channels must be >= 0 (0: no refinement), got {refine_channels}"
            )
        c1, c2, c3, c4 = (int(c) for c in channels)
        self.descriptor = descriptor
        self.batch_norm = batch_norm
        self.descriptor_dim = descriptor_dim
        self.refine_channels = int(refine_channels)
        self._warned_rgb = False

        def conv3(name: str, cin: int, cout: int) -> None:
            setattr(self, f"conv{name}", nn.Conv2d(cin, cout, kernel_size=3, stride=1, padding=1))
            if batch_norm:
                setattr(self, f"bn{name}", nn.BatchNorm2d(cout))

        # Attribute names are the official ones: they are the state_dict keys.
        conv3("1a", 1, c1)
        conv3("1b", c1, c1)
        conv3("2a", c1, c2)
        conv3("2b", c2, c2)
        conv3("3a", c2, c3)
        conv3("3b", c3, c3)
        conv3("4a", c3, c4)
        conv3("4b", c4, c4)
        conv3("Pa", c4, head_channels)
        self.convPb = nn.Conv2d(head_channels, CELL * CELL + 1, kernel_size=1, stride=1, padding=0)
        if descriptor:
            conv3("Da", c4, head_channels)
            self.convDb = nn.Conv2d(
                head_channels, descriptor_dim, kernel_size=1, stride=1, padding=0
            )
        if self.refine_channels:
            conv3("Ra", c1, self.refine_channels)
            self.convRb = nn.Conv2d(self.refine_channels, 1, kernel_size=1, stride=1, padding=0)
            nn.init.zeros_(self.convRb.weight)
            nn.init.zeros_(self.convRb.bias)
        # Kept so that a task can refuse to overwrite these weights (SuperPointTask.detector_weights).
        self.pretrained = os.fspath(pretrained) if pretrained else None
        if pretrained:
            # A net without descriptor head takes a SuperPoint file's detector (as MagicPoint.from_pretrained).
            load_superpoint_weights(self, pretrained, ignore_descriptor=not descriptor)

    def _block(self, x: torch.Tensor, name: str) -> torch.Tensor:
        x = getattr(self, f"conv{name}")(x)
        if self.batch_norm:
            x = getattr(self, f"bn{name}")(x)
        return F.relu(x, inplace=True)

    def _to_gray(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4:
            raise ValueError(
                f"SuperPointNet: expected images [B, 1, H, W], got shape {list(images.shape)}"
            )
        if not images.is_floating_point():
            raise TypeError(
                f"SuperPointNet: images must be float in [0, 1], got dtype {images.dtype} "
                "(convert uint8 images with images.float() / 255)"
            )
        c = images.shape[1]
        if c == 1:
            return images
        if c == 3:
            if not self._warned_rgb:
                warnings.warn(
                    "SuperPointNet: got 3-channel images [B, 3, H, W]; converting to gray with BT.601 "
                    "weights (0.299, 0.587, 0.114). Pass [B, 1, H, W] to silence this.",
                    UserWarning,
                    stacklevel=3,
                )
                self._warned_rgb = True
            w = images.new_tensor(_RGB_TO_GRAY).view(1, 3, 1, 1)
            return (images * w).sum(1, keepdim=True)
        raise ValueError(
            f"SuperPointNet: expected 1 (gray) or 3 (RGB) channels, got {c} in shape {list(images.shape)}"
        )

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """images [B,1,H,W] (or [B,3,H,W]) -> {"logits": [B,65,Hc,Wc], "descriptors": [B,D,Hc,Wc]}."""
        x = pad_to_multiple(self._to_gray(images), CELL, mode="replicate")
        x = self._block(x, "1a")
        x = self._block(x, "1b")
        full_resolution = x
        x = F.max_pool2d(x, 2, 2)
        x = self._block(x, "2a")
        x = self._block(x, "2b")
        x = F.max_pool2d(x, 2, 2)
        x = self._block(x, "3a")
        x = self._block(x, "3b")
        x = F.max_pool2d(x, 2, 2)
        x = self._block(x, "4a")
        x = self._block(x, "4b")
        out = {"logits": self.convPb(self._block(x, "Pa"))}
        if self.refine_channels:
            per_pixel = self.convRb(self._block(full_resolution, "Ra"))
            # [B,1,H,W] -> [B,64,Hc,Wc] in the cell classes' order, and 0 for the dustbin.
            out["logits"] = out["logits"] + F.pad(
                F.pixel_unshuffle(per_pixel, CELL), (0, 0, 0, 0, 0, 1)
            )
        if self.descriptor:
            out["descriptors"] = self.convDb(self._block(x, "Da"))
        return out


def magicpoint(**kwargs) -> SuperPointNet:
    """MagicPoint: a :class:`SuperPointNet` without descriptor head (kwargs as SuperPointNet)."""
    if kwargs.pop("descriptor", False):
        raise ValueError(
            "magicpoint: MagicPoint has no descriptor head; use SuperPointNet(descriptor=True)"
        )
    return SuperPointNet(descriptor=False, **kwargs)


def load_superpoint_weights(
    net: SuperPointNet, path: str | os.PathLike, ignore_descriptor: bool = False
) -> SuperPointNet:
    """Load a local state-dict file (e.g. the official ``superpoint_v1.pth``) into ``net`` with strict checks.

    Missing or unexpected keys and shape mismatches raise a ``ValueError`` listing them (with the
    descriptor dimension named when ``convDb`` disagrees). ``ignore_descriptor=True`` drops the
    file's ``convDa.*``/``convDb.*`` keys, so SuperPoint weights load into a MagicPoint net. Keys
    saved from a ``DataParallel``/DDP wrapper (prefix ``module.``) are accepted. A file without a
    refinement branch (no ``convR*`` keys) loads into a net with one (``refine_channels > 0``): the
    branch keeps its initial weights, whose ``convRb`` is zero, so the net computes what the file's
    net computes. Returns ``net``.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"load_superpoint_weights: no weights file at {path!r}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle/zip errors have unhelpful messages: say which file
        raise ValueError(
            f"load_superpoint_weights: cannot read {path!r} as a torch state dict: {e}"
        ) from e
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(
            f"load_superpoint_weights: {path!r} must hold a state dict (name -> tensor), got {type(state).__name__}"
            + (
                " with non-tensor values (a training checkpoint? save net.state_dict())"
                if isinstance(state, dict)
                else ""
            )
        )
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    if ignore_descriptor and not net.descriptor:
        state = {
            k: v for k, v in state.items() if not k.startswith(("convDa.", "convDb.", "bnDa."))
        }

    expected = net.state_dict()
    if not any(k.startswith(_REFINE_KEYS) for k in state):
        # A plain file: the net's refinement (if any) stays at its zero-output start.
        state = {**{k: v for k, v in expected.items() if k.startswith(_REFINE_KEYS)}, **state}
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k}: file {list(state[k].shape)} vs net {list(expected[k].shape)}"
        for k in expected
        if k in state and state[k].shape != expected[k].shape
    ]
    if missing or unexpected or mismatched:
        lines = [f"load_superpoint_weights: {path!r} does not match the net."]
        if missing:
            lines.append(f"  missing keys ({len(missing)}): {', '.join(missing)}")
        if unexpected:
            lines.append(f"  unexpected keys ({len(unexpected)}): {', '.join(unexpected)}")
        if mismatched:
            lines.append(f"  shape mismatches ({len(mismatched)}): {'; '.join(mismatched)}")
        if "convDb.weight" in state and "convDb.weight" in expected:
            d_file, d_net = state["convDb.weight"].shape[0], expected["convDb.weight"].shape[0]
            if d_file != d_net:
                lines.append(
                    f"  descriptor dimension: file has {d_file}, net has descriptor_dim={d_net}"
                    f" (in a config: model.descriptor_dim={d_file})"
                )
        if not net.descriptor and any(k.startswith("convD") for k in unexpected):
            lines.append(
                "  the file has a descriptor head: use SuperPointNet(descriptor=True) or ignore_descriptor=True"
            )
        if net.descriptor and any(k.startswith("convD") for k in missing):
            lines.append(
                "  the file has no descriptor head (MagicPoint weights?): use magicpoint() / descriptor=False"
            )
        if any(k.startswith("bn") for k in missing) or any(k.startswith("bn") for k in unexpected):
            lines.append("  batch-norm keys differ: check SuperPointNet(batch_norm=...)")
        raise ValueError("\n".join(lines))
    net.load_state_dict(state, strict=True)
    return net


def superpoint_from_file(path: str | os.PathLike) -> SuperPointNet:
    """A :class:`SuperPointNet` built with the widths a state dict file implies, with its weights loaded.

    Widths come from the ``conv*a`` / ``convPa`` / ``convDb`` / ``convRa`` shapes, batch norm from
    the ``bn*`` keys, the descriptor head from ``convDb``, the refinement from ``convRa``: the
    official ``superpoint_v1.pth``, the shipped ``weights/*.pt`` or any ``net.state_dict()`` of
    this class load without naming them.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"superpoint_from_file: no weights file at {path!r}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or "conv1a.weight" not in {
        k.removeprefix("module.") for k in state
    }:
        raise ValueError(
            f"superpoint_from_file: {path!r} is not a SuperPoint/MagicPoint state dict "
            "(no conv1a.weight)"
        )
    state = {k.removeprefix("module."): v for k, v in state.items()}
    config = {
        "channels": [int(state[f"conv{i}a.weight"].shape[0]) for i in range(1, 5)],
        "head_channels": int(state["convPa.weight"].shape[0]),
        "batch_norm": "bn1a.weight" in state,
        "descriptor": "convDb.weight" in state,
        "refine_channels": int(state["convRa.weight"].shape[0]) if "convRa.weight" in state else 0,
    }
    if config["descriptor"]:
        config["descriptor_dim"] = int(state["convDb.weight"].shape[0])
    return load_superpoint_weights(SuperPointNet(**config), path)


def superpoint_net_config(net: SuperPointNet) -> dict[str, Any]:
    """The constructor kwargs that rebuild ``net`` (a :class:`SuperPointNet` with a descriptor head)."""
    return {
        "descriptor": bool(net.descriptor),
        "batch_norm": bool(net.batch_norm),
        "channels": [int(getattr(net, f"conv{i}a").out_channels) for i in range(1, 5)],
        "head_channels": int(net.convPa.out_channels),
        "descriptor_dim": int(net.descriptor_dim),
        "refine_channels": int(net.refine_channels),
    }


def load_detector_weights(net: SuperPointNet, path: str | os.PathLike) -> SuperPointNet:
    """Load a MagicPoint state dict (encoder + detector head) into a SuperPointNet; the descriptor head is untouched."""
    config = {**superpoint_net_config(net), "descriptor": False}
    detector = load_superpoint_weights(SuperPointNet(**config), path, ignore_descriptor=True)
    missing, unexpected = net.load_state_dict(detector.state_dict(), strict=False)
    assert not unexpected and all(k.startswith(("convD", "bnD")) for k in missing)
    return net


def sample_descriptors(
    descriptors: torch.Tensor, keypoints: torch.Tensor, cell_size: int = CELL
) -> torch.Tensor:
    """Bilinear sample of a coarse map [D,Hc,Wc] at keypoints [N,2] (x, y) pixels -> L2-normalised [N,D].

    Coarse cell (h, w) describes the pixel at its centre (cs*w + (cs-1)/2, cs*h + (cs-1)/2),
    the convention of the descriptor loss; points beyond the outer centres take the border
    value. The map is L2-normalised first, the samples again.
    """
    if descriptors.dim() != 3:
        raise ValueError(f"descriptors must be [D, Hc, Wc], got {list(descriptors.shape)}")
    if keypoints.dim() != 2 or keypoints.shape[1] != 2:
        raise ValueError(f"keypoints must be [N, 2] (x, y), got {list(keypoints.shape)}")
    dim, hc, wc = descriptors.shape
    if keypoints.shape[0] == 0:
        return descriptors.new_zeros(0, dim)
    dense = F.normalize(descriptors.float(), dim=0)
    offset = (cell_size - 1) / 2.0
    u = (keypoints.float().to(dense.device) - offset) / cell_size  # coarse (x, y)
    size = torch.tensor([max(wc - 1, 1), max(hc - 1, 1)], device=dense.device, dtype=u.dtype)
    grid = (u / size * 2.0 - 1.0).view(1, 1, -1, 2)
    sampled = F.grid_sample(
        dense[None], grid, mode="bilinear", padding_mode="border", align_corners=True
    )
    return F.normalize(sampled[0, :, 0].T, dim=1)


def superpoint_features(
    out: dict[str, torch.Tensor],
    image_size: Sequence[int],
    extraction: Extraction = SUPERPOINT_EXTRACTION,
    heatmap: torch.Tensor | None = None,
) -> list[dict[str, torch.Tensor]]:
    """Net outputs {"logits" [B,65,Hc,Wc], "descriptors" [B,D,Hc,Wc]} -> per image {"keypoints" [N,2] (x, y), "scores" [N], "descriptors" [N,D]}.

    Points from the heatmap by ``extraction``; descriptors sampled there (:func:`sample_descriptors`).
    ``heatmap`` [B,1,H,W]: detect on it instead of the logits' (e.g. a shift-averaged one).
    """
    if heatmap is None:
        heatmap = logits_to_heatmap(out["logits"].float(), image_size=tuple(image_size))
    detections = extraction(heatmap)
    for d, desc in zip(detections, out["descriptors"]):
        d["descriptors"] = sample_descriptors(desc, d["keypoints"])
    return detections
