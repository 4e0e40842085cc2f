"""The depth_bins pass: SURREAL-style quantised depth, centred on each person's pelvis.

SURREAL's depth task classifies each body pixel's depth relative to the pelvis into 19 bins
of 45 mm (its training code: class = clamp(ceil((z - z_pelvis) / step), -9, 9), shifted to
1..19, background 0). Here z is the depth pass's exact camera-frame depth and z_pelvis the
camera-frame depth of the pixel's own person's pelvis, taken as the midpoint of the two hip
keypoints (COCO 11, 12; both body kinds have them; SMPL's pelvis joint sits a few centimetres
above that point, on the same vertical axis). `depth_bins.bins` (odd) and `depth_bins.step_m`
set the quantisation. Written as depth_bins/<stem>.png, one uint8 channel; nothing rendered.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import Output, Pass, SampleContext, person_of_pixels, register

HIPS = (11, 12)  # COCO keypoints: left hip, right hip


def quantise_depth(depth: np.ndarray, pelvis_z: np.ndarray, body: np.ndarray, bins: int, step: float) -> np.ndarray:
    """(H, W) uint8: 0 off the body, else 1..bins, the middle bin holding the pelvis depth."""
    half = (bins - 1) // 2
    with np.errstate(invalid="ignore"):
        q = np.clip(np.ceil((depth - pelvis_z) / step), -half, half)
    return np.where(body, q + half + 1, 0).astype(np.uint8)


@register
class DepthBinsPass(Pass):
    name = "depth_bins"
    outputs = (Output("depth_bins", (".png",)),)
    raw = ("depth_bins", ".png")
    requires = ("iuv", "depth")
    renders = False  # a quantisation of the depth pass

    def write(self, raw: Path | None, sample: SampleContext, layers: dict[str, np.ndarray]) -> list[str]:
        from ..decode.label_maps import write_png

        bins, step = int(sample.config["depth_bins"]["bins"]), float(sample.config["depth_bins"]["step_m"])
        T = np.asarray(sample.camera.world_to_camera, dtype=np.float64)
        body = layers["I"] > 0
        person = person_of_pixels(layers, body)
        pelvis_z = np.zeros(body.shape)
        for number, posed in enumerate(sample.people, start=1):
            hips = posed.keypoints[list(HIPS)].mean(axis=0)
            pelvis_z[person == number] = (T[2, :3] @ hips) + T[2, 3]
        labels = quantise_depth(layers["depth"], pelvis_z, body & (person > 0), bins, step)
        write_png(sample.out / "depth_bins" / f"{sample.stem}.png", labels)
        return [f"depth_bins/{sample.stem}.png"]
