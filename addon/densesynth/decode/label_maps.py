"""Write the decoded IUV pass as PNG label maps, atomically.

Three images per frame:

* fine part map: 1 channel uint8, value = fine part I (0..24);
* coarse part map: 1 channel uint8, value = coarse label (0..14);
* DensePose-style IUV image: 3 channels uint8 holding I, round(255 U), round(255 V).

Channel order of the IUV PNG: exactly as DensePose's own ``*_IUV.png`` files (Detectron's
``infer_simple`` builds an array ``[..., 0] = I, [..., 1] = 255 U, [..., 2] = 255 V`` and
hands it to ``cv2.imwrite``). Because OpenCV treats arrays as BGR, the file therefore
stores **B = I, G = U, R = V**: ``cv2.imread`` gives back ``[I, U, V]`` in channels 0, 1, 2,
while RGB readers (PIL, imageio) give ``[V, U, I]``. Keep this when reading them back.

Writes go through ``io_utils.atomic_write_bytes`` (temporary sibling + ``os.replace``) so
that a crashed worker never leaves a truncated PNG that a later run would trust.
"""

from __future__ import annotations

import os

import numpy as np

from ..core.parts import FINE_TO_COARSE
from ..io_utils import atomic_write_bytes
from ..core.label_maps import IUVMaps

__all__ = [
    "write_png",
    "fine_label_image",
    "coarse_label_image",
    "iuv_image",
    "uv_to_uint8",
    "write_fine_png",
    "write_coarse_png",
    "write_iuv_png",
]


def write_png(path: str | os.PathLike, image: np.ndarray) -> None:
    """Encode a uint8 (H, W) or (H, W, 3) array as lossless PNG and write it atomically.

    A 3-channel array is written the way ``cv2.imwrite`` writes it: channel 0 -> blue.
    """
    import cv2  # lazily: keeps `import densesynth...` cheap inside Blender

    image = np.ascontiguousarray(image)
    if image.dtype != np.uint8:
        raise TypeError(f"PNG label maps must be uint8, got {image.dtype} for {path!r}")
    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise OSError(f"cv2 could not encode PNG for {os.fspath(path)!r}")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write_bytes(path, buf.tobytes())


def fine_label_image(maps: IUVMaps) -> np.ndarray:
    """(H, W) uint8 fine part labels 0..24."""
    return np.ascontiguousarray(maps.I, dtype=np.uint8)


def coarse_label_image(maps: IUVMaps) -> np.ndarray:
    """(H, W) uint8 coarse labels 0..14 (DensePose's 14-part grouping)."""
    return FINE_TO_COARSE[maps.I]


def uv_to_uint8(uv: np.ndarray) -> np.ndarray:
    """round(255 * uv), half away from zero, clipped to 0..255.

    Rounding (not DensePose's truncating ``astype``) halves the quantisation error; halves
    round up rather than to even so equal inputs never depend on parity.
    """
    scaled = np.floor(np.clip(uv.astype(np.float64), 0.0, 1.0) * 255.0 + 0.5)
    return scaled.astype(np.uint8)


def iuv_image(maps: IUVMaps) -> np.ndarray:
    """(H, W, 3) uint8 array ``[I, round(255 U), round(255 V)]`` (cv2 channel order).

    Background pixels are (0, 0, 0).
    """
    body = maps.I > 0
    u8 = np.where(body, uv_to_uint8(maps.U), 0).astype(np.uint8)
    v8 = np.where(body, uv_to_uint8(maps.V), 0).astype(np.uint8)
    return np.dstack([fine_label_image(maps), u8, v8])


def write_fine_png(path: str | os.PathLike, maps: IUVMaps) -> None:
    """Write the 24-part label PNG (values 0..24)."""
    write_png(path, fine_label_image(maps))


def write_coarse_png(path: str | os.PathLike, maps: IUVMaps) -> None:
    """Write the 14-part label PNG (values 0..14)."""
    write_png(path, coarse_label_image(maps))


def write_iuv_png(path: str | os.PathLike, maps: IUVMaps) -> None:
    """Write the DensePose-style IUV PNG (file channels B = I, G = U, R = V)."""
    write_png(path, iuv_image(maps))
