"""The joint_parts pass: SURREAL's 24-part segmentation by joint, beside DensePose's parts.

Part k (1..24) is SMPL joint k - 1 (names: core/parts.py JOINT_PART_NAMES; 0 = background),
looked up per pixel from the face the surface pass saw there and the body's per-face joint
table (bodies/joint_parts.py: the joint with the largest skinning weight on the face). Nothing
is rendered: the surface pass's face ids already are exact, and they have followed every image
effect (occluders, lens) by then, so this map does too. Written as joint_parts/<stem>.png,
one uint8 channel.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import Output, Pass, SampleContext, person_of_pixels, register


def joint_part_map(face: np.ndarray, person: np.ndarray, persons: list[dict], bodies: dict) -> np.ndarray:
    """(H, W) uint8 joint part per pixel from the face ids and the person index (1-based)."""
    out = np.zeros(face.shape, dtype=np.uint8)
    for number, entry in enumerate(persons, start=1):
        here = (person == number) & (face >= 0)
        if here.any():
            table = bodies[entry["body"]["kind"]].face_joints(entry["body"])
            out[here] = table[np.clip(face[here], 0, len(table) - 1)] + 1
    return out


@register
class JointPartsPass(Pass):
    name = "joint_parts"
    outputs = (Output("joint_parts", (".png",)),)
    raw = ("joint_parts", ".png")
    requires = ("iuv", "surface")
    renders = False  # a lookup on the surface pass's face ids

    def write(self, raw: Path | None, sample: SampleContext, layers: dict[str, np.ndarray]) -> list[str]:
        from ..decode.label_maps import write_png

        face = np.where(layers["I"] > 0, layers["surface_face"], -1)
        labels = joint_part_map(face, person_of_pixels(layers, face >= 0), sample.spec["persons"], sample.bodies)
        write_png(sample.out / "joint_parts" / f"{sample.stem}.png", labels)
        return [f"joint_parts/{sample.stem}.png"]
