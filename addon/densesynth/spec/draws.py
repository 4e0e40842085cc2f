"""Recording draws: a thin layer over a NumPy generator that returns plain Python values.

Specs are JSON: every value drawn here is a float, int, bool or str, rounded so that a
spec written and read back describes the very same scene.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

DIGITS = 6


class Draws:
    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def uniform(self, bounds: Sequence[float]) -> float:
        low, high = float(bounds[0]), float(bounds[1])
        return round(float(self.rng.uniform(low, high)) if high > low else low, DIGITS)

    def chance(self, probability: float) -> bool:
        return bool(self.rng.random() < probability)

    def choice(self, options: Sequence[str]) -> str:
        return str(options[int(self.rng.integers(len(options)))])

    def integer(self, high: int = 2**31 - 1) -> int:
        return int(self.rng.integers(0, high))

    def colour(self, hue: Sequence[float], saturation: Sequence[float], value: Sequence[float]) -> list[float]:
        """An sRGB colour drawn in HSV, where ranges mean something to a person."""
        import colorsys

        h = self.uniform(hue) % 1.0
        rgb = colorsys.hsv_to_rgb(h, self.uniform(saturation), self.uniform(value))
        return [round(float(c), DIGITS) for c in rgb]
