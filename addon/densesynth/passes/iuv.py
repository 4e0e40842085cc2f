"""The IUV pass: DensePose's part index I and chart coordinates U, V per pixel, exact.

Rendered as an emission of the per-corner (I, U, V) attribute with 1 sample, no pixel
filter, no denoiser (see render/blender_scene.py); written as the EXR (iuv/), the fine and
coarse part PNGs (labels24/, labels14/) and DensePose's IUV PNG (iuv_png/). When an image
effect changed the labels, iuv/ holds the changed labels and Blender's own render moves to
iuv_raw/, so that iuv/ always describes images/.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..core.label_maps import IUVMaps
from .base import (CORNER_IUV_ATTRIBUTE, EXACT, NEAREST, BlenderSetup, Emission, Layer, Output, Pass, SampleContext,
                   SurfaceHits, exact_exr_settings, register)

EMISSION = Emission("densesynth_iuv_label", "ShaderNodeAttribute", "Color",
                    (("attribute_type", "GEOMETRY"), ("attribute_name", CORNER_IUV_ATTRIBUTE)))


@register
class IUVPass(Pass):
    name = "iuv"
    layers = (Layer("I", NEAREST), Layer("U", EXACT), Layer("V", EXACT), Layer("coverage", NEAREST))
    outputs = (Output("iuv", (".exr",)), Output("labels24", (".png",)), Output("labels14", (".png",)),
               Output("iuv_png", (".png",)), Output("iuv_raw", (".exr",), always=False))
    raw = ("iuv", ".exr")

    def blender_setup(self, spec: dict[str, Any]) -> BlenderSetup:
        return BlenderSetup(exact_exr_settings(spec), emit=EMISSION)

    def decode(self, raw: Path, sample: SampleContext, layers: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from ..decode.iuv_exr import read_iuv_exr

        maps = read_iuv_exr(raw)
        return {"I": maps.I, "U": maps.U, "V": maps.V, "coverage": maps.alpha}

    def exact_values(self, hits: SurfaceHits, layers: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """What the emission renders at a hit: the face's part, the corners' U, V blended with
        the hit's barycentrics (Cycles' attribute interpolation), full coverage."""
        return {"I": np.rint(hits.corner_iuv[:, 0, 0]), "U": np.einsum("nk,nk->n", hits.bary, hits.corner_iuv[:, :, 1]),
                "V": np.einsum("nk,nk->n", hits.bary, hits.corner_iuv[:, :, 2]), "coverage": np.ones(len(hits.face))}

    def write(self, raw: Path, sample: SampleContext, layers: dict[str, np.ndarray]) -> list[str]:
        from ..decode.iuv_exr import write_iuv_exr
        from ..decode.label_maps import write_coarse_png, write_fine_png, write_iuv_png

        out, stem = sample.out, sample.stem
        maps = IUVMaps.from_layers(layers)
        written = [f"iuv/{stem}.exr", f"labels24/{stem}.png", f"labels14/{stem}.png", f"iuv_png/{stem}.png"]
        if sample.labels_changed:
            (out / "iuv_raw").mkdir(exist_ok=True)
            os.replace(raw, out / "iuv_raw" / f"{stem}.exr")
            write_iuv_exr(out / "iuv" / f"{stem}.exr", maps)
            written.append(f"iuv_raw/{stem}.exr")
        else:
            os.replace(raw, out / "iuv" / f"{stem}.exr")
        write_fine_png(out / "labels24" / f"{stem}.png", maps)
        write_coarse_png(out / "labels14" / f"{stem}.png", maps)
        write_iuv_png(out / "iuv_png" / f"{stem}.png", maps)
        return written
