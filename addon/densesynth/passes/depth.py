"""The depth pass: metric depth of the visible body surface in the camera frame, exact.

Each pixel's distance along the camera's viewing axis (OpenCV camera z, metres; 0 where no
person is seen), emitted by Cycles' Camera Data node ("View Z Depth", evaluated at the ray's
hit on the triangle) with the exact passes' settings: 1 sample at the pixel centre, no filter,
no denoiser, a float32 EXR. Written as depth/<stem>.exr, one float32 channel "Z", masked by
the body pixels of the IUV pass (the same pixels as the labels, after occluders and lens).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .base import (Aov, EXACT, BlenderSetup, Emission, Layer, Output, Pass, SampleContext, SurfaceHits, exact_exr_settings,
                   register, remove)

EMISSION = Emission("densesynth_depth_label", "ShaderNodeCameraData", "View Z Depth")


@register
class DepthPass(Pass):
    name = "depth"
    aov = Aov("VALUE", EMISSION)  # may share one exact render with the other AOV passes
    layers = (Layer("depth", EXACT),)
    outputs = (Output("depth", (".exr",)),)
    raw = ("depth", ".exr")
    requires = ("iuv",)  # depth is defined on the body pixels: I > 0

    def blender_setup(self, spec: dict[str, Any]) -> BlenderSetup:
        return BlenderSetup(exact_exr_settings(spec), emit=EMISSION)

    def decode(self, raw: Path, sample: SampleContext, layers: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from ..decode.iuv_exr import read_exr_channel

        try:
            depth = read_exr_channel(raw, "R")
        finally:
            remove(raw)
        return {"depth": np.where(layers["I"] > 0, depth, 0.0).astype(np.float32)}

    def exact_values(self, hits: SurfaceHits, layers: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"depth": hits.point[:, 2]}  # camera z of the hit, as View Z Depth

    def write(self, raw: Path | None, sample: SampleContext, layers: dict[str, np.ndarray]) -> list[str]:
        from ..decode.iuv_exr import write_exr_channels

        depth = np.where(layers["I"] > 0, layers["depth"], 0.0)
        write_exr_channels(sample.out / "depth" / f"{sample.stem}.exr", {"Z": depth})
        return [f"depth/{sample.stem}.exr"]
