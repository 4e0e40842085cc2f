"""Horizontal flip of an image and its DensePose targets, with the charts' mirror symmetry.

Exactly DensePose's flip (`densepose/structures/data_relative.py`, DatasetMapper with
HFlipTransform): boxes mirror in the image (x -> W - x), points mirror in the box frame
(dp_x -> 256 - dp_x, dp_y unchanged), I goes through FINE_FLIP, U and V through the source's
symmetry tables at `[I - 1][int(255 V), int(255 U)]` (so flipped U, V are quantised to the
tables' texels), dp_masks mirror left-right and their labels go through COARSE_FLIP.
Why the box frame flip is right: x_img = x0 + dp_x w / 256 mirrors to W - x_img =
(W - x1) + (256 - dp_x) w / 256, the same formula on the mirrored box.

Resizing is left to the model (its transform scales images to min_size/max_size), and dp_x,
dp_y, dp_masks are box-relative, so no resize happens here.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from densepose_train.data.symmetry import SymmetryTables
from densepose_train.data.targets import DP_SIZE, DensePoseTarget
from densesynth.core.parts import COARSE_FLIP

__all__ = ["flip_boxes", "flipped", "hflip"]

_COARSE_FLIP = torch.from_numpy(COARSE_FLIP.astype(np.int64))


def flip_boxes(boxes: torch.Tensor, width: int) -> torch.Tensor:
    """XYXY boxes of an image of `width` pixels, mirrored: (x0, x1) -> (W - x1, W - x0)."""
    out = boxes.clone()
    out[:, 0] = width - boxes[:, 2]
    out[:, 2] = width - boxes[:, 0]
    return out


def flipped(target: DensePoseTarget, symmetry: SymmetryTables) -> DensePoseTarget:
    """The DensePose target of the mirrored person (see the module docstring)."""
    i, u, v = symmetry.flip(target.i, target.u, target.v)
    mask = None
    if target.mask is not None:
        mask = _COARSE_FLIP[torch.flip(target.mask, dims=[1]).long()].to(target.mask.dtype)
    return DensePoseTarget(x=DP_SIZE - target.x, y=target.y.clone(), i=i, u=u, v=v, mask=mask)


def hflip(image: torch.Tensor, target: dict[str, Any], symmetry: SymmetryTables | None) -> tuple[torch.Tensor, dict[str, Any]]:
    """Mirror a (3, H, W) image and its target dict (boxes, masks, densepose) left-right.

    `symmetry` may be None only when no person has DensePose points.
    """
    width = image.shape[-1]
    out = dict(target)
    out["boxes"] = flip_boxes(target["boxes"], width)
    if "masks" in target:
        out["masks"] = torch.flip(target["masks"], dims=[-1])
    if "densepose" in target:
        if symmetry is None and any(dp is not None for dp in target["densepose"]):
            raise ValueError("flipping DensePose points needs the source's symmetry tables")
        out["densepose"] = [None if dp is None else flipped(dp, symmetry) for dp in target["densepose"]]
    out["flipped"] = not target.get("flipped", False)
    return torch.flip(image, dims=[-1]), out
