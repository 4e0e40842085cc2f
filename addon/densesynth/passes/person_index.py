"""The person-index pass: which person each body pixel shows (1-based, 0 = nobody).

Rendered only for images with several people (one person needs no map), as an emission of
each person object's pass index with the exact passes' settings; written to persons/.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .base import (Aov, NEAREST, BlenderSetup, Emission, Layer, Output, Pass, SampleContext, SurfaceHits, exact_exr_settings,
                   register, remove)

EMISSION = Emission("densesynth_instance_label", "ShaderNodeObjectInfo", "Object Index")


@register
class PersonIndexPass(Pass):
    name = "person_index"
    aov = Aov("VALUE", EMISSION)  # may share one exact render with the other AOV passes
    layers = (Layer("person_index", NEAREST),)
    outputs = (Output("persons", (".png",), always=False),)
    raw = ("persons", ".exr")
    requires = ("iuv",)  # a person's pixels are its body pixels: I > 0

    def wanted(self, sample: SampleContext) -> bool:
        return sample.num_people > 1

    def blender_setup(self, spec: dict[str, Any]) -> BlenderSetup:
        return BlenderSetup(exact_exr_settings(spec), emit=EMISSION)

    def decode(self, raw: Path, sample: SampleContext, layers: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from ..decode.iuv_exr import read_exr_channel

        try:
            index = np.round(read_exr_channel(raw, "R")).astype(np.int64)
        finally:
            remove(raw)
        return {"person_index": np.where(layers["I"] > 0, index, 0)}

    def exact_values(self, hits: SurfaceHits, layers: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"person_index": hits.person}

    def write(self, raw: Path, sample: SampleContext, layers: dict[str, np.ndarray]) -> list[str]:
        from ..decode.label_maps import write_png

        write_png(sample.out / "persons" / f"{sample.stem}.png", layers["person_index"].astype(np.uint8))
        return [f"persons/{sample.stem}.png"]
