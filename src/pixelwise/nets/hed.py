"""HED (Xie & Tu 2015): VGG16 trunk, five side outputs and a learned fusion, all at input size."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

# torchvision's vgg16().features indices of the conv layers HED keeps (conv1_1 ... conv5_3);
# the layers in between are ReLUs and 2x2 max pools. pool5 (index 30) and the classifier go.
VGG16_CONVS: dict[str, int] = {
    "conv1_1": 0, "conv1_2": 2,
    "conv2_1": 5, "conv2_2": 7,
    "conv3_1": 10, "conv3_2": 12, "conv3_3": 14,
    "conv4_1": 17, "conv4_2": 19, "conv4_3": 21,
    "conv5_1": 24, "conv5_2": 26, "conv5_3": 28,
}  # fmt: skip
_POOLS = (4, 9, 16, 23)
# Side outputs tap the ReLU after conv1_2, conv2_2, conv3_3, conv4_3, conv5_3.
SIDE_TAPS: tuple[int, ...] = (3, 8, 15, 22, 29)
_STAGE_WIDTH = (1, 2, 4, 8, 8)  # channels of each stage in units of conv1 width (64 for VGG16)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def vgg16_trunk(base_channels: int = 64, in_channels: int = 3) -> nn.Sequential:
    """VGG16 `features[:30]` (conv1_1 ... relu5_3) with torchvision's layer indices."""
    layers: list[nn.Module] = []
    channels = in_channels
    convs = sorted(VGG16_CONVS.values())
    stage = 0
    for index in range(30):
        if index in _POOLS:
            # ceil_mode keeps the last row/column of odd sizes (Caffe's pooling, as in HED).
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
            stage += 1
        elif index in convs:
            out = base_channels * _STAGE_WIDTH[stage]
            layers.append(nn.Conv2d(channels, out, 3, padding=1))
            channels = out
        else:
            layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def load_vgg16_features(trunk: nn.Sequential, path: str | Path) -> None:
    """Load `features.N.weight/bias` of a torchvision VGG16 state-dict file into `trunk` (in place)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"model.pretrained={path}: no such file; expected a torchvision VGG16 state dict "
            "(e.g. vgg16-397923af.pth, see README 'Pretrained weights')"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 — any failure means "not a state dict"
        raise ValueError(
            f"model.pretrained={path}: cannot read a torch state dict ({err})"
        ) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(
            f"model.pretrained={path}: expected a state dict, got {type(state).__name__}"
        )
    wanted = trunk.state_dict()
    features = {}
    for key in wanted:
        source = f"features.{key}"
        if source not in state:
            raise KeyError(
                f"model.pretrained={path}: no '{source}' in the file; expected torchvision VGG16 "
                f"keys 'features.N.weight' (found e.g. {sorted(state)[:4]})"
            )
        if state[source].shape != wanted[key].shape:
            raise ValueError(
                f"model.pretrained={path}: '{source}' has shape {tuple(state[source].shape)}, "
                f"the trunk needs {tuple(wanted[key].shape)} (VGG16 needs base_channels=64, 3 inputs)"
            )
        features[key] = state[source]
    trunk.load_state_dict(features)


class HED(nn.Module):
    """HED: images [B,3,H,W] in [0,1] -> list of 6 edge logit maps [B,1,H,W] (sides 1-5, fused).

    The trunk is VGG16 conv1_1 ... conv5_3 with torchvision's layer indices, so
    `pretrained=PATH` loads the `features.*` of a torchvision VGG16 state dict. Each side
    output is a 1x1 conv on the last ReLU of a stage, upsampled (fixed bilinear) to the input
    size; the fusion is a 1x1 conv over the five maps, initialised to 1/5 each as in the paper.
    """

    def __init__(
        self,
        pretrained: str | Path | None = None,
        base_channels: int = 64,
        normalize: bool = True,
    ) -> None:
        super().__init__()
        if base_channels < 1:
            raise ValueError(f"HED: base_channels={base_channels} must be >= 1")
        self.features = vgg16_trunk(base_channels)
        self.side = nn.ModuleList(nn.Conv2d(base_channels * w, 1, 1) for w in _STAGE_WIDTH)
        self.fuse = nn.Conv2d(len(SIDE_TAPS), 1, 1)
        # The paper initialises the side ("nested") filters to 0 and the fusion to 0.2.
        for conv in self.side:
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)
        nn.init.constant_(self.fuse.weight, 1.0 / len(SIDE_TAPS))
        nn.init.zeros_(self.fuse.bias)
        self.normalize = normalize
        # ImageNet statistics: what a torchvision-pretrained trunk expects of its input.
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        if pretrained:
            load_vgg16_features(self.features, pretrained)

    @property
    def num_outputs(self) -> int:
        """Number of returned maps: five sides plus the fused one."""
        return len(self.side) + 1

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """images [B,3,H,W] -> [side1, ..., side5, fused], each logits [B,1,H,W]."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"HED: expected images [B,3,H,W], got {tuple(x.shape)}")
        size = x.shape[-2:]
        if self.normalize:
            x = (x - self.mean) / self.std
        sides = []
        taps = iter(zip(SIDE_TAPS, self.side))
        tap, conv = next(taps)
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index == tap:
                side = conv(x)
                sides.append(F.interpolate(side, size=size, mode="bilinear", align_corners=False))
                tap, conv = next(taps, (None, None))
        return [*sides, self.fuse(torch.cat(sides, dim=1))]
