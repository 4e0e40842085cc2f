"""The DensePose supervision of one person, as the model's losses consume it."""
from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["DensePoseTarget", "DP_SIZE"]

# dp_x, dp_y and dp_masks live in the person's box stretched to DP_SIZE x DP_SIZE.
DP_SIZE = 256


@dataclass
class DensePoseTarget:
    """Annotated points and the coarse part mask of one person, in the 256 x 256 box frame.

    x, y: float32 (P,) point positions; image position = box corner + x * box width / 256
    (each axis on its own), so resizing the image leaves them unchanged.
    i: int64 (P,) fine part 1..24; u, v: float32 (P,) chart coordinates in [0, 1].
    mask: uint8 (256, 256) coarse labels 0..14 (dp_masks[k] paints k + 1; row = y cell,
    column = x cell) or None when the annotation has no dp_masks. A batch in which some
    person lacks a mask loses DensePose's coarse-segmentation loss, so the dataset reports
    such annotations.
    """

    x: torch.Tensor
    y: torch.Tensor
    i: torch.Tensor
    u: torch.Tensor
    v: torch.Tensor
    mask: torch.Tensor | None = None

    @property
    def num_points(self) -> int:
        return int(self.x.numel())

    def to(self, device: torch.device | str) -> "DensePoseTarget":
        return DensePoseTarget(self.x.to(device), self.y.to(device), self.i.to(device), self.u.to(device),
                               self.v.to(device), None if self.mask is None else self.mask.to(device))
