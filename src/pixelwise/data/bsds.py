"""BSDS500 on disk: the Berkeley layout with .mat ground truth, and HED/RCF pair lists.

Berkeley layout (BSR_bsds500.tgz unpacked)::

    BSR/BSDS500/data/images/{train,val,test}/<id>.jpg
    BSR/BSDS500/data/groundTruth/{train,val,test}/<id>.mat

Each .mat holds `groundTruth`, a 1xN MATLAB cell (N annotators) of structs with fields
`Segmentation` (uint16 region labels) and `Boundaries` (uint8, 1 on region boundaries).

Pair list (HED-BSDS / RCF training sets): a text file with lines ``image_path label_path``,
paths relative to the list's directory; the label is a grayscale PNG holding the fraction
of annotators marking each pixel times 255.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import scipy.io

from pixelwise.data.edge_labels import EdgeDataset

SPLITS: tuple[str, ...] = ("train", "val", "test")
Transform = Callable[..., dict[str, Any]]


def find_bsds_data(root: str | Path) -> Path:
    """The `data` directory (holding images/ and groundTruth/) under root, BSR/ or BSR/BSDS500/."""
    root = Path(root)
    candidates = [root, root / "data", root / "BSDS500" / "data", root / "BSR" / "BSDS500" / "data"]
    for path in candidates:
        if (path / "images").is_dir() and (path / "groundTruth").is_dir():
            return path
    raise FileNotFoundError(
        f"data.root={root}: no BSDS500 layout found; expected images/ and groundTruth/ in one of "
        f"{[str(c) for c in candidates]} (unpack BSR_bsds500.tgz, see README)"
    )


def read_image(path: Path) -> np.ndarray:
    """An image file -> uint8 RGB [H,W,3]; an error naming the file if it cannot be read."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise OSError(f"{path}: cannot read the image (missing, empty or not an image)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_label_png(path: Path) -> np.ndarray:
    """A grayscale label PNG -> float32 [H,W] in [0,1] (value / 255)."""
    label = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if label is None:
        raise OSError(f"{path}: cannot read the label image (missing, empty or not an image)")
    return label.astype(np.float32) / 255.0


def read_bsds_boundaries(path: str | Path) -> np.ndarray:
    """A BSDS500 groundTruth .mat -> bool [N,H,W], one boundary map per annotator."""
    path = Path(path)
    try:
        mat = scipy.io.loadmat(str(path), simplify_cells=True)
    except Exception as err:  # noqa: BLE001 — a broken file, whatever scipy says
        raise OSError(f"{path}: cannot read the .mat file ({err})") from None
    if "groundTruth" not in mat:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise KeyError(
            f"{path}: no 'groundTruth' variable (found {found}); expected a BSDS500 ground-truth "
            "file with groundTruth = 1xN cell of structs with Segmentation and Boundaries"
        )
    cells = mat["groundTruth"]
    # simplify_cells turns a 1x1 cell into the struct itself.
    cells = [cells] if isinstance(cells, dict) else list(np.atleast_1d(cells))
    if not cells:
        raise ValueError(f"{path}: groundTruth is an empty cell; expected at least one annotation")
    maps = []
    for k, cell in enumerate(cells):
        if not isinstance(cell, dict) or "Boundaries" not in cell:
            fields = sorted(cell) if isinstance(cell, dict) else type(cell).__name__
            raise KeyError(
                f"{path}: groundTruth{{{k + 1}}} has no 'Boundaries' field (got {fields})"
            )
        boundaries = np.asarray(cell["Boundaries"])
        if boundaries.ndim != 2:
            raise ValueError(
                f"{path}: groundTruth{{{k + 1}}}.Boundaries has shape {boundaries.shape}; expected [H,W]"
            )
        if maps and boundaries.shape != maps[0].shape:
            raise ValueError(
                f"{path}: groundTruth{{{k + 1}}}.Boundaries is {boundaries.shape}, annotation 1 is "
                f"{maps[0].shape}; all annotations of an image must have its size"
            )
        maps.append(boundaries > 0)
    return np.stack(maps)


class BSDS500(EdgeDataset):
    """BSDS500 split(s) in the Berkeley layout: items as `edge_item` (image, annotations, targets).

    `split` is one of train/val/test or a list of them (HED trains on train + val).
    Every image must have its .mat; the check runs when the dataset is built.
    """

    def __init__(
        self,
        root: str | Path,
        split: str | Sequence[str] = "train",
        label_mode: str = "each",
        label_threshold: float = 0.5,
        transform: Transform | None = None,
    ) -> None:
        super().__init__(label_mode, label_threshold, transform)
        splits = [split] if isinstance(split, str) else list(split)
        for s in splits:
            if s not in SPLITS:
                raise ValueError(
                    f"BSDS500: split={s!r}: expected one of {SPLITS} or a list of them"
                )
        self.data_dir = find_bsds_data(root)
        self.items: list[tuple[Path, Path]] = []
        for s in splits:
            image_dir = self.data_dir / "images" / s
            images = sorted(image_dir.glob("*.jpg"))
            if not images:
                raise FileNotFoundError(f"{image_dir}: no .jpg images for split {s!r}")
            for image in images:
                mat = self.data_dir / "groundTruth" / s / f"{image.stem}.mat"
                if not mat.is_file():
                    raise FileNotFoundError(f"{image}: no ground truth; expected {mat}")
                self.items.append((image, mat))

    def __len__(self) -> int:
        return len(self.items)

    def annotations(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Item `index` untransformed: uint8 image [H,W,3] and bool annotations [K,H,W]."""
        image_path, mat_path = self.items[index]
        image = read_image(image_path)
        boundaries = read_bsds_boundaries(mat_path)
        if boundaries.shape[1:] != image.shape[:2]:
            raise ValueError(
                f"{mat_path}: annotations are {boundaries.shape[1]}x{boundaries.shape[2]} but the "
                f"image {image_path} is {image.shape[0]}x{image.shape[1]}; expected the same size"
            )
        return image, boundaries

    def __getitem__(self, index: int) -> dict[str, Any]:
        image, boundaries = self.annotations(index)
        return self.item(image, self.items[index][0].stem, annotations=boundaries)


def read_pair_list(
    list_file: str | Path, root: str | Path | None = None
) -> list[tuple[Path, Path]]:
    """A pair list ("image label" per line) -> [(image path, label path)], checked to exist."""
    list_file = Path(list_file)
    if not list_file.is_file():
        raise FileNotFoundError(f"data list_file={list_file}: no such file; expected a pair list")
    base = Path(root) if root is not None else list_file.parent
    pairs = []
    for number, line in enumerate(list_file.read_text().splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split()
        if len(fields) != 2:
            raise ValueError(
                f"{list_file}:{number}: expected 'image_path label_path', got {line.strip()!r}"
            )
        image, label = (base / f for f in fields)
        for path in (image, label):
            if not path.is_file():
                raise FileNotFoundError(f"{list_file}:{number}: {path} does not exist")
        pairs.append((image, label))
    if not pairs:
        raise ValueError(f"{list_file}: no image/label pairs in the list")
    return pairs


class EdgePairList(EdgeDataset):
    """Image / averaged-label pairs from a HED/RCF list file: items as `edge_item`."""

    def __init__(
        self,
        list_file: str | Path,
        root: str | Path | None = None,
        label_mode: str = "consensus",
        label_threshold: float = 0.5,
        transform: Transform | None = None,
    ) -> None:
        super().__init__(label_mode, label_threshold, transform)
        self.pairs = read_pair_list(list_file, root)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image_path, label_path = self.pairs[index]
        image = read_image(image_path)
        mean = read_label_png(label_path)
        if mean.shape != image.shape[:2]:
            raise ValueError(
                f"{label_path}: label is {mean.shape[0]}x{mean.shape[1]} but the image "
                f"{image_path} is {image.shape[0]}x{image.shape[1]}; expected the same size"
            )
        return self.item(image, image_path.stem, mean=mean)
