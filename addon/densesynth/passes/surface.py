"""The surface pass: which triangle, where on it, and the nearest mesh vertex, per pixel.

Each person mesh carries a corner attribute (face index, [corner is 1], [corner is 2]);
Cycles interpolates it at the ray's hit with the hit's own barycentric coordinates, so one
exact emission pass (1 sample, no filter, no denoiser) gives the face index (float32 holds
every index below 2**24 exactly; rounding removes the interpolation's last-bit error) and
the barycentric coordinates (b1, b2; b0 = 1 - b1 - b2). Decoded into the nearest vertex of
the body's own mesh (the corner with the largest barycentric coordinate: for SMPL bodies an
SMPL vertex id, 0..6889; for anny, anny's). Written as surface/<stem>.npz:

  vertex  (H, W) int32    nearest vertex id of the body seen there, -1 where nobody is seen
  face    (H, W) int32    triangle index in the body's mesh, -1 where nobody is seen
  bary    (H, W, 3) float32  barycentric coordinates of the hit on that triangle
  person  (H, W) uint8    which person (1-based; 0 = nobody), as persons/ holds

Under lens distortion the face (an id: NEAREST) and the barycentrics (EXACT) are both
recomputed at the surface point the distorted pixel sees (its ray cast on the posed mesh,
appearance/lens_exact.py), so the nearest vertex is that point's too. The lens lookup also
renders this pass internally (no surface/ files) when a config distorts without listing it:
its face ids are where the ray casts start.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .base import (Aov, CORNER_SURFACE_ATTRIBUTE, EXACT, NEAREST, BlenderSetup, Emission, Layer, Output, Pass, SampleContext,
                   SurfaceHits, exact_exr_settings, person_of_pixels, register, remove)

EMISSION = Emission("densesynth_surface_label", "ShaderNodeAttribute", "Color",
                    (("attribute_type", "GEOMETRY"), ("attribute_name", CORNER_SURFACE_ATTRIBUTE)))


@register
class SurfacePass(Pass):
    name = "surface"
    aov = Aov("COLOR", EMISSION)  # may share one exact render with the other AOV passes
    layers = (Layer("surface_face", NEAREST), Layer("surface_bary", EXACT))
    outputs = (Output("surface", (".npz",)),)
    raw = ("surface", ".exr")
    requires = ("iuv",)  # the surface is defined on the body pixels: I > 0

    def blender_setup(self, spec: dict[str, Any]) -> BlenderSetup:
        return BlenderSetup(exact_exr_settings(spec), emit=EMISSION)

    def decode(self, raw: Path, sample: SampleContext, layers: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from ..decode.iuv_exr import read_exr_channel

        try:
            face, b1, b2 = (read_exr_channel(raw, letter) for letter in "RGB")
        finally:
            remove(raw)
        body = layers["I"] > 0
        bary = np.stack([1.0 - b1 - b2, b1, b2], axis=-1).astype(np.float32)
        return {"surface_face": np.where(body, np.rint(face), -1).astype(np.int32),
                "surface_bary": np.where(body[..., None], bary, 0.0).astype(np.float32)}

    def exact_values(self, hits: SurfaceHits, layers: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"surface_face": hits.face, "surface_bary": hits.bary}

    def write(self, raw: Path | None, sample: SampleContext, layers: dict[str, np.ndarray]) -> list[str]:
        from ..io_utils import atomic_write_npz

        face = np.where(layers["I"] > 0, layers["surface_face"], -1).astype(np.int32)
        bary = np.where((face >= 0)[..., None], layers["surface_bary"], 0.0).astype(np.float32)
        person = person_of_pixels(layers, face >= 0)
        vertex = np.full(face.shape, -1, dtype=np.int32)
        for number, entry in enumerate(sample.spec["persons"], start=1):
            here = (person == number) & (face >= 0)
            faces = sample.bodies[entry["body"]["kind"]].faces
            hit = np.clip(face[here], 0, len(faces) - 1)
            vertex[here] = faces[hit, np.argmax(bary[here], axis=-1)]
        atomic_write_npz(sample.out / "surface" / f"{sample.stem}.npz",
                         {"vertex": vertex, "face": face, "bary": bary, "person": person})
        return [f"surface/{sample.stem}.npz"]
