"""Per-detection DensePose results in original image pixels, as detectron2's chart-result converters.

Pixel convention (the evaluator [D] and the overlays [E] rely on it)
--------------------------------------------------------------------
Image pixel (row r, col c) covers [c, c + 1) x [r, r + 1); boxes are XYXY floats in those units,
in the ORIGINAL image given to the model. For a detection box (x0, y0, x1, y1):

- the result grid is (h, w) with ``w = max(1, int(x1 - x0))`` and ``h = max(1, int(y1 - y0))``
  (truncation, exactly detectron2's `make_int_box` on the XYWH box); `result_grid` returns
  ``(int(x0), int(y0), w, h)``.
- The 112 x 112 predictor outputs, which span the whole box, are resized to (h, w) with bilinear
  interpolation, align_corners=False (detectron2's `resample_fine_and_coarse_segm_tensors_to_bbox`
  and `resample_uv_tensors_to_bbox`).
- ``coarse`` = argmax of the coarse logits > 0 (foreground, for 2 or 15 coarse channels);
  ``labels`` = argmax of the 25 fine logits where coarse is foreground, else 0;
  ``uv`` = the U and V channels of the pixel's label, 0 where the label is 0, clipped to [0, 1]
  (detectron2 does not clip; clipping keeps the `int(255 * u)` table lookups in range).
- Placing a result in the image: cell (r, c) <-> image pixel (int(y0) + r, int(x0) + c), as
  detectron2's `predictor_output_with_fine_and_coarse_segm_to_mask` pastes masks; `paste_in_image`
  does this, clipped to the image.
- DensePose's GPS evaluator (densepose_coco_evaluation.py) instead reads a GT point at image
  position (px, py) from cell ``[int(py - y0), int(px - x0)]`` with the float corner, and counts
  a point outside [0, h) x [0, w) as unmatched; an evaluator that reports DensePose-COCO numbers
  should read the same way.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from .densepose_head import DensePoseChartOutput


@dataclass
class DensePoseResult:
    """DensePose prediction over one detection's box grid (see the module docstring for pixels)."""

    labels: np.ndarray  # (h, w) uint8 fine part 0..24 (0 = background)
    uv: np.ndarray  # (2, h, w) float32 U, V in [0, 1] (0 where labels == 0)
    coarse: np.ndarray  # (h, w) bool coarse-segmentation foreground


def result_grid(box_xyxy: Tensor | np.ndarray | list[float]) -> tuple[int, int, int, int]:
    """(x0, y0, w, h) integers of a box's result grid: int corner, w/h truncated, at least 1."""
    x0, y0, x1, y1 = (float(v) for v in box_xyxy)
    return int(x0), int(y0), max(1, int(x1 - x0)), max(1, int(y1 - y0))


def densepose_result(coarse_segm: Tensor, fine_segm: Tensor, u: Tensor, v: Tensor,
                     box_xyxy: Tensor) -> DensePoseResult:
    """One result from (1, C, S, S) outputs of one detection and its box in original pixels."""
    _, _, w, h = result_grid(box_xyxy)

    def resize(t: Tensor) -> Tensor:
        return F.interpolate(t.float(), (h, w), mode="bilinear", align_corners=False)

    coarse = resize(coarse_segm).argmax(dim=1)[0] > 0
    labels = resize(fine_segm).argmax(dim=1)[0] * coarse.long()
    index = labels[None, None]
    uv = torch.cat([resize(u).gather(1, index)[0], resize(v).gather(1, index)[0]], dim=0)
    uv = (uv * (labels > 0)[None]).clamp(0.0, 1.0)
    return DensePoseResult(
        labels=labels.to(torch.uint8).cpu().numpy(),
        uv=uv.to(torch.float32).cpu().numpy(),
        coarse=coarse.cpu().numpy(),
    )


def densepose_results(outputs: DensePoseChartOutput, boxes_xyxy: Tensor) -> list[DensePoseResult]:
    """Results for K detections: outputs (K, C, S, S) each, boxes (K, 4) XYXY in original pixels."""
    return [
        densepose_result(outputs.coarse_segm[k:k + 1], outputs.fine_segm[k:k + 1], outputs.u[k:k + 1],
                         outputs.v[k:k + 1], boxes_xyxy[k])
        for k in range(boxes_xyxy.shape[0])
    ]


def paste_in_image(grid: np.ndarray, box_xyxy: Tensor | np.ndarray | list[float], image_hw: tuple[int, int],
                   fill: float | int | bool = 0) -> np.ndarray:
    """Place a result array (h, w) or (C, h, w) into an image-sized array at the box's grid, clipped."""
    x0, y0, w, h = result_grid(box_xyxy)
    height, width = image_hw
    out = np.full(grid.shape[:-2] + (height, width), fill, dtype=grid.dtype)
    r0, c0 = max(y0, 0), max(x0, 0)
    r1, c1 = min(y0 + h, height), min(x0 + w, width)
    if r1 > r0 and c1 > c0:
        out[..., r0:r1, c0:c1] = grid[..., r0 - y0:r1 - y0, c0 - x0:c1 - x0]
    return out
