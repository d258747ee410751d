"""Reading label PNGs, mapping dataset ids, checking on-disk layouts: shared by the VOC, Cityscapes and KITTI loaders."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from pixelwise.errors import DatasetLayoutError, UnreadableFileError

Transform = Callable[..., dict[str, Any]]


def require(path: Path, dataset: str, root: Path, tree: str, kind: str = "directory") -> Path:
    """Return `path` if it exists (as a directory or file); else raise DatasetLayoutError showing `tree`."""
    ok = path.is_dir() if kind == "directory" else path.is_file()
    if not ok:
        raise DatasetLayoutError(
            f"{dataset}: {path} is missing (expected a {kind}).\n"
            f"Expected this layout under data.root={root}:\n{tree}"
        )
    return path


def unmatched_error(dataset: str, path: Path, missing: Path, what: str) -> DatasetLayoutError:
    """The error for a file whose partner (label for an image, or image for a label) is missing."""
    return DatasetLayoutError(f"{dataset}: {path} has no {what}; expected {missing}")


@contextmanager
def open_image(path: Path, what: str = "image") -> Iterator[Image.Image]:
    """PIL's ``Image.open`` whose decoding errors name the file: ``UnreadableFileError``."""
    try:
        with Image.open(path) as im:
            im.load()
            yield im
    except (UnidentifiedImageError, SyntaxError, OSError) as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise UnreadableFileError(
            f"{path}: cannot read this {what} file ({type(err).__name__}: {err}); "
            "expected an image PNG/JPEG that PIL opens (re-extract or re-download it)"
        ) from err


def read_rgb(path: Path) -> np.ndarray:
    """An image file as uint8 [H, W, 3] RGB."""
    with open_image(path) as im:
        return np.asarray(im.convert("RGB"))


def write_rgb_png(path: Path, rgb: np.ndarray, who: str) -> Path:
    """Write uint8 [H, W, 3] RGB as a lossless PNG (OpenCV); raise OSError naming `who` if it cannot."""
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f"{who}: could not write {path}")
    return path


def read_index_png(path: Path, modes: Iterable[str], what: str) -> np.ndarray:
    """A single-channel PNG (palette indices for mode "P", never its colours) as an integer array [H, W]."""
    modes = tuple(modes)
    with open_image(path, f"{what} PNG") as im:
        if im.mode not in modes:
            raise ValueError(
                f"{path}: {what} PNG has mode {im.mode!r}; expected one of {list(modes)} "
                "(single-channel ids, not colours)"
            )
        return np.asarray(im)


def map_ids(ids: np.ndarray, table: np.ndarray, path: Path, what: str) -> np.ndarray:
    """Map ids [H, W] through `table` (entries -1 = not an id of the dataset); unknown ids raise naming file and values."""
    ids = ids.astype(np.int64, copy=False)
    outside = (ids < 0) | (ids >= len(table))
    mapped = table[np.where(outside, 0, ids)]
    bad = outside | (mapped < 0)
    if bad.any():
        values = np.unique(ids[bad])
        raise ValueError(
            f"{path}: {what} value(s) {values[:10].tolist()} are not in the dataset's id table "
            f"(valid ids: {np.flatnonzero(table >= 0).tolist()})"
        )
    return mapped


def check_same_size(
    image_path: Path, image: np.ndarray, other_path: Path, other: np.ndarray, what: str
) -> None:
    """Raise naming both files and sizes if a label map [H, W] differs in size from its image [H, W, 3]."""
    if other.shape[:2] != image.shape[:2]:
        raise ValueError(
            f"{other_path}: {what} is {other.shape[1]}x{other.shape[0]} (WxH) but its image "
            f"{image_path} is {image.shape[1]}x{image.shape[0]}; expected the same size"
        )


def number_instances(keys: np.ndarray, is_instance: np.ndarray) -> np.ndarray:
    """Renumber distinct keys [H, W] where is_instance to 1..K (0 elsewhere), int32 [H, W]."""
    out = np.zeros(keys.shape, dtype=np.int32)
    if is_instance.any():
        _, inverse = np.unique(keys[is_instance], return_inverse=True)
        out[is_instance] = inverse.reshape(-1) + 1
    return out


def check_transform(transform: Any, dataset: str) -> None:
    """Raise TypeError unless transform is None or callable (an albumentations transform)."""
    if transform is not None and not callable(transform):
        raise TypeError(
            f"{dataset}: transform={transform!r} is not callable; expected an albumentations "
            "transform (e.g. A.Compose) or None"
        )


def image_tensor(image: np.ndarray | torch.Tensor) -> torch.Tensor:
    """float32 [3, H, W]: uint8 [H, W, 3] is scaled by 1/255, float kept; a tensor is taken as [C, H, W]."""
    if isinstance(image, torch.Tensor):  # e.g. after ToTensorV2
        return image.float().div(255.0) if image.dtype == torch.uint8 else image.float()
    t = torch.from_numpy(np.ascontiguousarray(np.asarray(image).transpose(2, 0, 1)))
    return t.float().div_(255.0) if t.dtype == torch.uint8 else t.float()


def segmentation_item(
    image: np.ndarray,
    mask: np.ndarray,
    instances: np.ndarray,
    path: Path,
    transform: Transform | None,
    ignore_index: int = 255,
) -> dict[str, Any]:
    """The item dict: image float32 [3,H,W], mask long [H,W] (255 = ignore), instances long [H,W], path str.

    The albumentations transform sees image uint8 [H,W,3] and masks=[mask uint8, instances int32].
    Instance pixels whose mask is ignore_index are set to 0 afterwards: a pad with
    fill_mask=255 fills both masks, and padding is no instance.
    """
    mask = mask.astype(np.uint8)
    instances = instances.astype(np.int32)
    if transform is not None:
        out = transform(image=image, masks=[mask, instances])
        image, (mask, instances) = out["image"], out["masks"]
        instances = np.where(np.asarray(mask) == ignore_index, 0, np.asarray(instances))
    return {
        "image": image_tensor(image),
        "mask": torch.as_tensor(np.asarray(mask)).long(),
        "instances": torch.as_tensor(np.asarray(instances)).long(),
        "path": str(path),
    }


def to_numpy_labels(pred: torch.Tensor | np.ndarray) -> np.ndarray:
    """Labels [H, W] (tensor or array) as int64 numpy."""
    if isinstance(pred, torch.Tensor):
        pred = pred.detach().cpu().numpy()
    pred = np.asarray(pred)
    if pred.ndim != 2:
        raise ValueError(f"expected a label map [H, W], got shape {list(pred.shape)}")
    return pred.astype(np.int64, copy=False)


def write_label_png(path: str | Path, ids: np.ndarray, palette: np.ndarray | None = None) -> Path:
    """Write uint8 ids [H, W] as a PNG: mode "P" with `palette` uint8 [K, 3] if given, else mode "L"."""
    ids = np.asarray(ids)
    if ids.min(initial=0) < 0 or ids.max(initial=0) > 255:
        raise ValueError(
            f"{path}: ids must be in [0, 255] for an 8-bit PNG, got [{ids.min()}, {ids.max()}]"
        )
    image = Image.fromarray(ids.astype(np.uint8))  # mode "L"
    if palette is not None:
        flat = np.zeros((256, 3), dtype=np.uint8)
        flat[: len(palette)] = palette
        image.putpalette(flat.reshape(-1).tolist())  # "L" -> "P", values kept as indices
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path
