"""Procedural backdrops: an embedded default that needs no download.

A sky-to-ground gradient whose horizon sits where the camera's true horizon projects,
with soft shapes standing on the ground, so the person stands in a scene whose perspective
agrees with the camera. Photograph backdrops (COCO) replace this in the randomisation issue.
"""
from __future__ import annotations

import cv2
import numpy as np


def horizon_row(focal_px: float, height: int, elevation_deg: float) -> float:
    """Image row of the horizon for a camera pitched down by `elevation_deg`."""
    return (height - 1) / 2.0 - focal_px * np.tan(np.deg2rad(elevation_deg))


def procedural_backdrop(params: dict, width: int, height: int, horizon: float | None = None) -> np.ndarray:
    """(H, W, 3) float32 sRGB image in [0, 1], rows top to bottom."""
    rng = np.random.default_rng(params["seed"])
    row = horizon if horizon is not None else params["horizon"] * height
    row = float(np.clip(row, 0.05 * height, 0.95 * height))
    rows = np.arange(height, dtype=np.float32)[:, None, None]
    sky_t = np.clip(rows / max(row, 1.0), 0, 1)
    sky = (1 - sky_t) * np.asarray(params["sky_top"], np.float32) + sky_t * np.asarray(params["sky_bottom"], np.float32)
    ground_t = np.clip((rows - row) / max(height - row, 1.0), 0, 1)
    ground_colour = np.asarray(params["ground"], np.float32)
    ground = ground_colour * (1.0 - 0.35 * (1 - ground_t))
    image = np.where(rows < row, sky, ground) * np.ones((1, width, 1), np.float32)
    image = np.ascontiguousarray(image, dtype=np.float32)
    for _ in range(params["num_shapes"]):
        colour = tuple(float(c) for c in rng.uniform(0.05, 0.9, 3))
        base = int(row + rng.uniform(-0.02, 0.25) * height)
        x = int(rng.uniform(0, width))
        w = int(rng.uniform(0.03, 0.3) * width)
        h = int(rng.uniform(0.05, 0.6) * height)
        if rng.random() < 0.6:
            cv2.rectangle(image, (x - w // 2, base - h), (x + w // 2, base), colour, thickness=-1)
        else:
            cv2.ellipse(image, (x, base - h // 2), (max(w // 2, 1), max(h // 2, 1)), 0, 0, 360, colour, thickness=-1)
    low = cv2.resize(rng.random((8, 8)).astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
    image *= (0.85 + 0.3 * low.clip(0, 1))[..., None]
    if params["blur"] > 0.3:
        image = cv2.GaussianBlur(image, (0, 0), params["blur"])
    image += rng.normal(0, 0.01, image.shape).astype(np.float32)
    return image.clip(0.0, 1.0)
