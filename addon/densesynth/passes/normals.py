"""The normals pass: the visible surface's geometric normal in the camera frame, exact.

Per pixel, the unit normal of the triangle the pixel's ray hits (Cycles' Geometry node "True
Normal", which smooth shading does not bend, turned into camera space by a Vector Transform
node and emitted with the exact passes' settings), in OpenCV's camera frame (x right, y
down, z forward), facing the camera (z < 0). Written as normals/<stem>.exr, float32 channels
X, Y, Z, 0 where the labels show no person. Geometric rather than shading normals: they
follow from the mesh alone, so anyone can recompute them from the debug geometry.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .base import (Aov, EXACT, BlenderSetup, Emission, Layer, Output, Pass, SampleContext, SurfaceHits, exact_exr_settings,
                   register, remove)

EMISSION = Emission("densesynth_normal_label", "ShaderNodeNewGeometry", "True Normal", then=(
    ("ShaderNodeVectorTransform", (("vector_type", "NORMAL"), ("convert_from", "WORLD"), ("convert_to", "CAMERA")),
     "Vector"),))
# Cycles' camera space (what the Vector Transform gives; measured against the rasteriser's
# normals): x right, y up, z forward, unlike Blender's camera object (which looks down -z).
BLENDER_TO_OPENCV = np.array([1.0, -1.0, 1.0], dtype=np.float32)


@register
class NormalsPass(Pass):
    name = "normals"
    aov = Aov("COLOR", EMISSION)  # may share one exact render with the other AOV passes
    layers = (Layer("normal", EXACT),)
    outputs = (Output("normals", (".exr",)),)
    raw = ("normals", ".exr")
    requires = ("iuv",)  # normals are defined on the body pixels: I > 0

    def blender_setup(self, spec: dict[str, Any]) -> BlenderSetup:
        return BlenderSetup(exact_exr_settings(spec), emit=EMISSION)

    def decode(self, raw: Path, sample: SampleContext, layers: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from ..decode.iuv_exr import read_exr_channel

        try:
            normal = np.stack([read_exr_channel(raw, letter) for letter in "RGB"], axis=-1) * BLENDER_TO_OPENCV
        finally:
            remove(raw)
        length = np.linalg.norm(normal, axis=-1, keepdims=True)
        normal = np.divide(normal, length, out=np.zeros_like(normal), where=length > 0)
        return {"normal": np.where((layers["I"] > 0)[..., None], normal, 0.0).astype(np.float32)}

    def exact_values(self, hits: SurfaceHits, layers: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"normal": hits.normal}  # the hit triangle's geometric normal, camera frame, facing the camera

    def write(self, raw: Path | None, sample: SampleContext, layers: dict[str, np.ndarray]) -> list[str]:
        from ..decode.iuv_exr import write_exr_channels

        normal = np.where((layers["I"] > 0)[..., None], layers["normal"], 0.0)
        write_exr_channels(sample.out / "normals" / f"{sample.stem}.exr",
                           {axis: normal[..., k] for k, axis in enumerate("XYZ")})
        return [f"normals/{sample.stem}.exr"]
