"""The decoded label maps of one image: the type decode/ produces and annotate/, the image
effects and the passes consume (here, so that none of them imports another for it)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

__all__ = ["IUVMaps"]


@dataclass(frozen=True)
class IUVMaps:
    """Decoded IUV pass of one image.

    Attributes:
        I: (H, W) uint8 fine part index 0..24 (0 = background), ``round(R)`` where A > 0.5.
        U, V: (H, W) float32 chart coordinates, exactly the EXR's G and B on body pixels and
            0 on background pixels (so background never leaks into sampled points or PNGs).
        alpha: (H, W) float32, the EXR's A.
        person_index: optional (H, W) integer map, 0 = no person, k = person k (1-based).
            ``None`` while images hold one person; a later multi-person pass fills it and
            :meth:`person_mask` keeps working for both.
    """

    I: np.ndarray
    U: np.ndarray
    V: np.ndarray
    alpha: np.ndarray
    person_index: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) of the maps."""
        return (int(self.I.shape[0]), int(self.I.shape[1]))

    def person_mask(self, person: int | None = None) -> np.ndarray:
        """Boolean (H, W) mask of the visible body pixels of one person.

        ``person`` is 1-based; ``None`` means "all bodies". Without a person index map the
        image holds one person, so only ``None`` and ``1`` are meaningful.
        """
        body = self.I > 0
        if person is None:
            return body
        if self.person_index is None:
            if person != 1:
                raise ValueError(f"no person index map: only person 1 exists, got {person}")
            return body
        return body & (self.person_index == person)

    @classmethod
    def from_layers(cls, layers: Mapping[str, np.ndarray]) -> "IUVMaps":
        """The maps from a sample's named per-pixel layers (see passes/: the iuv pass's I, U,
        V and coverage, and the person_index pass's person_index when it ran)."""
        return cls(I=layers["I"], U=layers["U"], V=layers["V"], alpha=layers["coverage"],
                   person_index=layers.get("person_index"))
