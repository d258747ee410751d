"""ORB and SIFT (OpenCV) as feature extractors with the output of a learned one, for the HPatches table.

``ClassicalFeatures(method)(image) -> {"keypoints": [N,2] (x, y), "scores": [N], "descriptors": [N,D]}``,
the format of ``SuperPointTask.extract``, so the same evaluation code
(:func:`pixelwise.hpatches_report.evaluate_features`) scores all of them. As rpautrat's
``classical_detectors_descriptors.py`` (the ORB/SIFT rows of the paper's Table 4):
``cv2.SIFT_create(nfeatures=max_keypoints)`` / ``cv2.ORB_create(nfeatures=max_keypoints)`` with
OpenCV's other defaults, ``detectAndCompute`` on the 8-bit gray image, score = ``KeyPoint.response``.
Unlike rpautrat we keep OpenCV's sub-pixel locations (rpautrat truncates them to integers
to write them into a map) and apply no extra NMS, and SIFT runs with
``enable_precise_upscale=True`` (OpenCV >= 4.8): with OpenCV's default, the doubled first octave
shifts every SIFT keypoint by about +0.25 px in x and y (measured in the tests); ORB keypoints
of coarser pyramid levels are used as OpenCV scales them.

- Keypoints: OpenCV's ``KeyPoint.pt`` is (x, y) with pixel centres at integers, our convention.
  Sorted by decreasing score, at most ``max_keypoints`` (SIFT may return a few more than asked
  when responses tie; the extra ones are cut).
- SIFT descriptors: float32 [N, 128], L2-normalised (OpenCV's are ~512 x unit vectors, rounded).
- ORB descriptors: the 256 bits of OpenCV's 32 packed bytes as float32 +-1 [N, 256] (bit order
  of ``np.unpackbits``). Every such vector has norm 16, so after L2 normalisation the Euclidean
  distance is ``2 sqrt(hamming / 256)``: ``match_descriptors`` and the descriptor metrics, which
  use Euclidean distances of normalised descriptors, rank ORB matches exactly by Hamming
  distance (rpautrat's ``BFMatcher(NORM_HAMMING, crossCheck=True)``). :func:`pack_orb` turns them
  back into OpenCV's bytes.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

__all__ = ["ClassicalFeatures", "FEATURE_METHODS", "unpack_orb", "pack_orb"]

FEATURE_METHODS = ("orb", "sift")


def unpack_orb(packed: np.ndarray) -> torch.Tensor:
    """OpenCV ORB descriptors uint8 [N, 32] -> float32 +-1 [N, 256] (bit b of byte i at 8 i + b, MSB first)."""
    packed = np.asarray(packed)
    if packed.dtype != np.uint8 or packed.ndim != 2:
        raise ValueError(
            f"unpack_orb: expected uint8 [N, bytes], got {packed.dtype} {list(packed.shape)}"
        )
    bits = np.unpackbits(packed, axis=1).astype(np.float32)
    return torch.from_numpy(2.0 * bits - 1.0)


def pack_orb(descriptors: torch.Tensor) -> np.ndarray:
    """float +-1 (or 0/1 after thresholding at 0) descriptors [N, 8 B] -> OpenCV's packed uint8 [N, B]."""
    bits = (descriptors.detach().cpu().numpy() > 0).astype(np.uint8)
    return np.packbits(bits, axis=1)


def _to_uint8_gray(image: np.ndarray | torch.Tensor) -> np.ndarray:
    """Gray image as uint8 [H, W]: tensors [1,H,W] / [H,W] or arrays [H,W]; floats are taken in [0, 1]."""
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu()
        if image.dim() == 3 and image.shape[0] == 1:
            image = image[0]
        image = image.numpy()
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim != 2:
        raise ValueError(
            f"ClassicalFeatures: expected a gray image [H, W] or [1, H, W], got shape {list(image.shape)}"
        )
    if image.dtype == np.uint8:
        return np.ascontiguousarray(image)
    if not np.issubdtype(image.dtype, np.floating):
        raise TypeError(
            f"ClassicalFeatures: image must be uint8 or float in [0, 1], got {image.dtype}"
        )
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


class ClassicalFeatures:
    """OpenCV ORB or SIFT: gray image -> {"keypoints" [N,2] (x, y), "scores" [N], "descriptors" [N,D]}, best first.

    ``method``: ``"orb"`` (D = 256, +-1 bits) or ``"sift"`` (D = 128, unit norm); at most
    ``max_keypoints``. ``**options`` go to ``cv2.ORB_create`` / ``cv2.SIFT_create`` (e.g.
    ``fastThreshold``, ``contrastThreshold``; SIFT defaults to ``enable_precise_upscale=True``). The image is a tensor [1,H,W] or [H,W], or a numpy
    [H,W], uint8 or float in [0, 1] (floats are rounded to 8 bits, as OpenCV needs). Outputs are
    CPU float32 tensors.
    """

    def __init__(self, method: str = "sift", max_keypoints: int = 1000, **options) -> None:
        name = method.lower() if isinstance(method, str) else method
        if name not in FEATURE_METHODS:
            raise ValueError(
                f"ClassicalFeatures: unknown method {method!r}; expected one of {list(FEATURE_METHODS)}"
            )
        if not isinstance(max_keypoints, int) or max_keypoints < 1:
            raise ValueError(
                f"ClassicalFeatures: max_keypoints must be a positive int, got {max_keypoints!r}"
            )
        self.method = name
        self.max_keypoints = max_keypoints
        defaults = {"enable_precise_upscale": True} if name == "sift" else {}
        self.options = {**defaults, **options}
        create = cv2.ORB_create if name == "orb" else cv2.SIFT_create
        try:
            self._extractor = create(nfeatures=max_keypoints, **self.options)
        except (cv2.error, TypeError) as err:
            raise ValueError(
                f"ClassicalFeatures: invalid OpenCV option(s) {self.options} for {name}: {err}"
            ) from None
        self.descriptor_dim = 256 if name == "orb" else 128

    def __repr__(self) -> str:
        return f"ClassicalFeatures(method={self.method!r}, max_keypoints={self.max_keypoints})"

    def __call__(self, image: np.ndarray | torch.Tensor) -> dict[str, torch.Tensor]:
        """Gray image [1,H,W]/[H,W] -> keypoints float32 [N,2] (x, y), scores [N], descriptors [N,D] (sorted by score)."""
        gray = _to_uint8_gray(image)
        keypoints, descriptors = self._extractor.detectAndCompute(gray, None)
        n = len(keypoints) if descriptors is not None else 0
        if n == 0:
            return {
                "keypoints": torch.zeros(0, 2),
                "scores": torch.zeros(0),
                "descriptors": torch.zeros(0, self.descriptor_dim),
            }
        points = torch.tensor([kp.pt for kp in keypoints], dtype=torch.float32)
        scores = torch.tensor([kp.response for kp in keypoints], dtype=torch.float32)
        if self.method == "orb":
            desc = unpack_orb(descriptors)
        else:
            desc = torch.nn.functional.normalize(torch.from_numpy(descriptors).float(), dim=1)
        order = torch.argsort(scores, descending=True, stable=True)[: self.max_keypoints]
        return {"keypoints": points[order], "scores": scores[order], "descriptors": desc[order]}
