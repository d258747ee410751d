"""HPatches sequences (``hpatches-sequences-release``): image pairs (1, k) with their ground-truth homography.

Layout (the release as downloaded; ``root`` is the folder holding ``hpatches-sequences-release``,
or that folder itself)::

    <root>/hpatches-sequences-release/
    ├── i_<name>/            illumination change, fixed camera (57 in the release)
    │   ├── 1.ppm ... 6.ppm
    │   └── H_1_2 ... H_1_6  3x3 homography, whitespace-separated text, image 1 -> image k
    └── v_<name>/            viewpoint change (59 in the release), same files

Each item is the pair (1, k) for k = 2..6, the protocol of the SuperPoint paper and of
rpautrat's ``patches_dataset.py``. The homography files are read as mapping image-1 pixel
coordinates (x, y) to image-k coordinates; we take them in the project convention (pixel
centres at integers), as rpautrat does.

Resizing (``size=(H', W')``) adjusts the homography exactly: an image of width W resized to W'
maps x to ``s (x + 0.5) - 0.5`` with ``s = W' / W`` (pixel edges at half-integers scale, centres
do not stay put), i.e. the matrix ``S = [[sx, 0, (sx - 1) / 2], [0, sy, (sy - 1) / 2], [0, 0, 1]]``,
and the pair's homography becomes ``H' = S_k H S_1^-1`` (images 1 and k may differ in size, so each
gets its own S). ``resize="stretch"`` (default) resizes each image to exactly ``size``, changing
the aspect ratio when it differs; ``resize="crop"`` scales by ``max(H'/H, W'/W)`` and crops the
centre, as rpautrat's ``ratio_preserving_resize`` - but with the crop offset and the second
image's own scale in the homography (rpautrat scales H by image 1's factor only).
Downscaling uses ``cv2.INTER_AREA``, upscaling ``cv2.INTER_LINEAR`` (both follow the
half-pixel convention above).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from pixelwise.data.label_io import DatasetLayoutError, require
from pixelwise.geometry.homography import check_image_shape

__all__ = [
    "HPatches",
    "HPATCHES_TREE",
    "HPATCHES_SPLITS",
    "read_hpatches_homography",
    "resize_matrix",
]

HPATCHES_TREE = """\
<root>/hpatches-sequences-release/
├── i_<name>/                illumination sequences (fixed camera)
│   ├── 1.ppm 2.ppm ... 6.ppm
│   └── H_1_2 ... H_1_6      3x3 homography (text, 3 rows of 3 numbers): image 1 -> image k
└── v_<name>/                viewpoint sequences, same files"""

RELEASE_DIR = "hpatches-sequences-release"
_SPLIT_KINDS = {
    "all": ("i", "v"),
    "illumination": ("i",),
    "i": ("i",),
    "viewpoint": ("v",),
    "v": ("v",),
}
HPATCHES_SPLITS = ("all", "illumination", "viewpoint")
_RESIZE_MODES = ("stretch", "crop")
_N_IMAGES = 6


def read_hpatches_homography(path: Path) -> np.ndarray:
    """An ``H_1_k`` file -> float64 [3, 3]; raises naming the file if it is not a finite, invertible 3x3 matrix."""
    try:
        rows = [line.split() for line in Path(path).read_text().splitlines() if line.strip()]
        matrix = np.array([[float(v) for v in row] for row in rows], dtype=np.float64)
    except ValueError as err:
        raise ValueError(
            f"{path}: cannot parse the homography ({err}); expected 3 lines of 3 numbers"
        ) from None
    if matrix.shape != (3, 3):
        raise ValueError(
            f"{path}: homography has {len(rows)} rows of lengths {[len(r) for r in rows]}; "
            "expected 3 lines of 3 numbers"
        )
    if not np.isfinite(matrix).all():
        raise ValueError(f"{path}: homography has non-finite entries: {matrix.tolist()}")
    if abs(np.linalg.det(matrix)) < 1e-12 * max(1.0, np.abs(matrix).max() ** 3):
        raise ValueError(f"{path}: homography is singular (det ~ 0): {matrix.tolist()}")
    return matrix


def resize_matrix(
    in_shape: tuple[int, int], out_shape: tuple[int, int], mode: str = "stretch"
) -> np.ndarray:
    """float64 [3, 3] mapping pixel (x, y) of an image of in_shape (H, W) to the resized image of out_shape.

    ``stretch``: per-axis scale s = out / in, x -> s (x + 0.5) - 0.5. ``crop``: one scale
    ``max(H'/H, W'/W)`` (sizes rounded, each axis' exact ratio used), then the centre crop's
    offset subtracted.
    """
    if mode not in _RESIZE_MODES:
        raise ValueError(f"resize mode {mode!r} is invalid; expected one of {list(_RESIZE_MODES)}")
    (h, w), (oh, ow) = in_shape, out_shape
    if mode == "stretch":
        sx, sy, ox, oy = ow / w, oh / h, 0, 0
    else:
        sh, sw = _crop_scaled_shape(in_shape, out_shape)
        sx, sy = sw / w, sh / h
        ox, oy = (sw - ow) // 2, (sh - oh) // 2
    return np.array(
        [[sx, 0.0, (sx - 1.0) / 2.0 - ox], [0.0, sy, (sy - 1.0) / 2.0 - oy], [0.0, 0.0, 1.0]]
    )


def _crop_scaled_shape(in_shape: tuple[int, int], out_shape: tuple[int, int]) -> tuple[int, int]:
    """Size (H, W) the image is scaled to before the centre crop of ``resize='crop'`` (covers out_shape)."""
    (h, w), (oh, ow) = in_shape, out_shape
    s = max(oh / h, ow / w)
    return max(oh, int(round(h * s))), max(ow, int(round(w * s)))


def _resize(image: np.ndarray, out_shape: tuple[int, int], mode: str) -> np.ndarray:
    """uint8 [H, W(, C)] -> [H', W'(, C)] as described by :func:`resize_matrix`."""
    h, w = image.shape[:2]
    target = out_shape if mode == "stretch" else _crop_scaled_shape((h, w), out_shape)
    if (h, w) != tuple(target):
        shrink = target[0] * target[1] < h * w
        interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
        image = cv2.resize(image, (target[1], target[0]), interpolation=interp)
    if mode == "crop":
        oy, ox = (target[0] - out_shape[0]) // 2, (target[1] - out_shape[1]) // 2
        image = image[oy : oy + out_shape[0], ox : ox + out_shape[1]]
    return np.ascontiguousarray(image)


def _find_release(root: Path) -> Path:
    """The folder holding the i_*/v_* sequences: root/hpatches-sequences-release, or root itself."""
    name = "HPatches"
    require(root, name, root, HPATCHES_TREE)
    release = root / RELEASE_DIR
    if release.is_dir():
        return release
    if any(p.is_dir() and p.name[:2] in ("i_", "v_") for p in root.iterdir()):
        return root
    return require(release, name, root, HPATCHES_TREE)


class HPatches(Dataset):
    """HPatches pairs (image 1, image k), k = 2..6: {"image_a" [C,H,W], "image_b" [C,H',W'], "homography" [3,3], ...}.

    ``split``: ``"all"``, ``"illumination"`` (``"i"``) or ``"viewpoint"`` (``"v"``). ``size``: (H, W)
    every image is resized to (the homography adjusted, see the module docstring), or ``None`` to
    keep each image's own size (then images in a pair may differ in size: use batch size 1).
    ``gray``: C = 1 (PIL's ITU-R 601 luma) else C = 3 RGB, float32 in [0, 1]. ``exclude``:
    sequence names to leave out (e.g. the high-resolution ones some papers drop).

    Items: ``image_a``, ``image_b`` float32 [C, H, W]; ``homography`` float32 [3, 3] mapping pixels
    (x, y) of image_a to image_b; ``sequence`` (folder name), ``kind`` (``"i"`` or ``"v"``),
    ``index_b`` (k).
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "all",
        size: Sequence[int] | None = (240, 320),
        gray: bool = True,
        resize: str = "stretch",
        exclude: Sequence[str] = (),
    ) -> None:
        if split not in _SPLIT_KINDS:
            raise ValueError(
                f"HPatches: split={split!r} is invalid; expected one of {list(HPATCHES_SPLITS)}"
            )
        if resize not in _RESIZE_MODES:
            raise ValueError(
                f"HPatches: resize={resize!r} is invalid; expected one of {list(_RESIZE_MODES)}"
            )
        if size is not None:
            size = check_image_shape(size, "HPatches: size (or None)", minimum=2)
        self.root = Path(root)
        self.split = split
        self.size = size
        self.gray = gray
        self.resize = resize
        self.release = _find_release(self.root)
        kinds = _SPLIT_KINDS[split]
        excluded = set(exclude)
        sequences = sorted(
            p
            for p in self.release.iterdir()
            if p.is_dir() and p.name[:2] in ("i_", "v_") and p.name not in excluded
        )
        if not any(p.name[0] in kinds for p in sequences):
            raise DatasetLayoutError(
                f"HPatches: no {'/'.join(k + '_*' for k in kinds)} sequence folders in {self.release} "
                f"(split={split!r}).\nExpected this layout under data.root={self.root}:\n{HPATCHES_TREE}"
            )
        self.items: list[tuple[str, str, Path, Path, np.ndarray, int]] = []
        for seq in sequences:
            if seq.name[0] not in kinds:
                continue
            images = [seq / f"{i}.ppm" for i in range(1, _N_IMAGES + 1)]
            for path in images:
                require(path, "HPatches", self.root, HPATCHES_TREE, "file")
            for k in range(2, _N_IMAGES + 1):
                h_path = require(seq / f"H_1_{k}", "HPatches", self.root, HPATCHES_TREE, "file")
                homography = read_hpatches_homography(h_path)
                self.items.append((seq.name, seq.name[0], images[0], images[k - 1], homography, k))

    def __len__(self) -> int:
        """Number of pairs (5 per sequence)."""
        return len(self.items)

    def _read(self, path: Path) -> np.ndarray:
        with Image.open(path) as im:
            return np.array(im.convert("L" if self.gray else "RGB"))

    def _prepare(self, path: Path) -> tuple[torch.Tensor, np.ndarray]:
        """Image file -> (float32 [C, H, W] in [0, 1], the resize matrix [3, 3] applied)."""
        image = self._read(path)
        in_shape = image.shape[:2]
        matrix = np.eye(3)
        if self.size is not None and tuple(in_shape) != self.size:
            matrix = resize_matrix(in_shape, self.size, self.resize)
            image = _resize(image, self.size, self.resize)
        tensor = torch.from_numpy(image).float().div_(255.0)
        tensor = tensor[None] if tensor.dim() == 2 else tensor.permute(2, 0, 1).contiguous()
        return tensor, matrix

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Pair `index`: image_a, image_b float32 [C,H,W], homography float32 [3,3] (a -> b), sequence, kind, index_b."""
        sequence, kind, path_a, path_b, homography, k = self.items[index]
        image_a, scale_a = self._prepare(path_a)
        image_b, scale_b = self._prepare(path_b)
        adjusted = scale_b @ homography @ np.linalg.inv(scale_a)
        if abs(adjusted[2, 2]) > 1e-12:  # cosmetic: h33 = 1 as in the files
            adjusted = adjusted / adjusted[2, 2]
        return {
            "image_a": image_a,
            "image_b": image_b,
            "homography": torch.from_numpy(adjusted).float(),
            "sequence": sequence,
            "kind": kind,
            "index_b": k,
        }
