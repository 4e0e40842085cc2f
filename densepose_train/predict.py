"""IUV overlays of a model's predictions, drawn the way DensePose's visualiser draws them.

DensePose's `apply_net.py show` combines `bbox` (box outlines), `dp_segm` (fine parts through
OpenCV's PARULA colour map, values x 255 / 24, alpha 0.7 inside the predicted foreground) and
`dp_contour` (iso-lines of U and V every 0.1 within each part, coloured by level through the same
map). This module draws those three layers with OpenCV and numpy only.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

NUM_FINE = 24
ALPHA = 0.7
CONTOUR_LEVELS = np.linspace(0.0, 1.0, 11)[1:-1]  # 0.1 .. 0.9: the chart borders are the part edges
BOX_COLOUR_RGB = (0, 255, 0)


def _parula_rgb(values_0_255: np.ndarray) -> np.ndarray:
    """PARULA colours (RGB uint8) for uint8 values (OpenCV's map returns BGR)."""
    bgr = cv2.applyColorMap(values_0_255.astype(np.uint8).reshape(-1, 1), cv2.COLORMAP_PARULA)
    return bgr.reshape(*values_0_255.shape, 3)[..., ::-1]


def _placement(box_xyxy: Sequence[float], shape: tuple[int, int], grid: tuple[int, int]
               ) -> tuple[slice, slice, slice, slice] | None:
    """Image and grid slices for a result grid whose cell (r, c) covers image pixel
    (int(y0) + r, int(x0) + c) (model/outputs.py's convention), clipped to the image."""
    height, width = shape
    x0, y0 = int(float(box_xyxy[0])), int(float(box_xyxy[1]))
    rows, cols = grid
    ia, ib = max(y0, 0), min(y0 + rows, height)
    ja, jb = max(x0, 0), min(x0 + cols, width)
    if ia >= ib or ja >= jb:
        return None
    return slice(ia, ib), slice(ja, jb), slice(ia - y0, ib - y0), slice(ja - x0, jb - x0)


def _contour_pixels(values: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixels on an iso-line of `values` inside one part, and the index of that level.

    A pixel is on the line of level L when it and its right or lower neighbour lie in the same
    part and on opposite sides of L (a marching-squares edge test at pixel resolution)."""
    on_line = np.zeros(values.shape, dtype=bool)
    level_index = np.zeros(values.shape, dtype=np.int64)
    for axis in (0, 1):
        a = values
        b = np.roll(values, -1, axis=axis)
        same = (labels > 0) & (labels == np.roll(labels, -1, axis=axis))
        if axis == 0:
            same[-1, :] = False
        else:
            same[:, -1] = False
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        for k, level in enumerate(CONTOUR_LEVELS):
            hit = same & (lo < level) & (hi >= level)
            level_index[hit] = k
            on_line |= hit
    return on_line, level_index


def draw_overlay(image_rgb: np.ndarray, detections: Sequence[tuple[Sequence[float], float, Any]]) -> np.ndarray:
    """The image with each detection's box, fine parts and U/V contours; `detections` holds
    (box XYXY, score, DensePoseResult with labels (h, w), uv (2, h, w), coarse (h, w))."""
    canvas = image_rgb.astype(np.float32).copy()
    height, width = canvas.shape[:2]
    level_colours = _parula_rgb(np.round(CONTOUR_LEVELS * 255)).astype(np.float32)
    for box, _score, result in detections:
        labels = np.asarray(result.labels)
        place = _placement(box, (height, width), labels.shape)
        if place is None:
            continue
        rows, cols, grid_rows, grid_cols = place
        part = labels[grid_rows, grid_cols].astype(np.int64)
        mask = (part > 0) & np.asarray(result.coarse, dtype=bool)[grid_rows, grid_cols]
        region = canvas[rows, cols]
        colours = _parula_rgb(np.clip(part * 255.0 / NUM_FINE, 0, 255)).astype(np.float32)
        region[mask] = (1 - ALPHA) * region[mask] + ALPHA * colours[mask]
        for channel in (0, 1):
            uv = np.asarray(result.uv[channel], dtype=np.float32)[grid_rows, grid_cols]
            line, level = _contour_pixels(uv, np.where(mask, part, 0))
            region[line] = level_colours[level[line]]
        canvas[rows, cols] = region
    out = np.clip(canvas, 0, 255).astype(np.uint8)
    for box, score, _result in detections:
        x0, y0, x1, y1 = (int(round(float(v))) for v in box)
        cv2.rectangle(out, (x0, y0), (max(x1 - 1, x0), max(y1 - 1, y0)), BOX_COLOUR_RGB, 1)
        cv2.putText(out, f"{score:.2f}", (x0, max(y0 - 2, 8)), cv2.FONT_HERSHEY_SIMPLEX, 0.35, BOX_COLOUR_RGB, 1,
                    cv2.LINE_AA)
    return out


def read_image_rgb(path: Path) -> np.ndarray:
    """An image file as RGB uint8 (H, W, 3); a missing or unreadable file is a user error."""
    from .errors import TrainUserError

    image = cv2.imread(str(path), cv2.IMREAD_COLOR) if Path(path).is_file() else None
    if image is None:
        raise TrainUserError(f"image {path} does not exist or is not an image OpenCV can read: pass PNG/JPEG files")
    return np.ascontiguousarray(image[..., ::-1])


def write_image_rgb(path: Path, image_rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), np.ascontiguousarray(image_rgb[..., ::-1])):
        raise OSError(f"could not write {path}")


def output_name(path: Path, taken: set[str]) -> str:
    """`<stem>_iuv.png`, made unique when two inputs share a stem."""
    name = f"{path.stem}_iuv.png"
    index = 1
    while name in taken:
        name = f"{path.stem}_{index}_iuv.png"
        index += 1
    taken.add(name)
    return name
