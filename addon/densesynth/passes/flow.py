"""The flow pass: exact forward and backward optical flow of the body pixels (no render).

Flow is not estimated from images: each body pixel of frame t shows one surface point (the
surface pass's face and barycentric coordinates, on the person's rendered surface: the
dressed one with garments). That same point is posed at frames t+1 and t-1 (the
neighbouring samples' specs, drawn by `spec.sample_spec.neighbour_spec` through the same
draw function, so they are exactly the specs those samples render) and projected with each
frame's own camera; the flow is the difference of the projections:

  forward  = p(t+1) - p(t),  backward = p(t-1) - p(t)

in pixels of this image, x to the right, y down (OpenCV's image frame; p(t) is the pixel
centre (col, row) up to float32 barycentrics). Written as flow/<stem>.npz:

  forward, backward              (H, W, 2) float32  NaN where not valid
  forward_valid, backward_valid  (H, W) bool        a body pixel, the neighbour frame exists
                                                     (not the last / first frame) and the point
                                                     is in front of that frame's camera

A point hidden at the neighbouring frame (by another body part, another person or the frame
edge) keeps its flow: where it went, seen or not. Occluders' pixels are not body pixels.
Under lens distortion the flow is measured in the distorted images: the surface point a
distorted pixel shows (exact: appearance/lens_exact.py) is projected through each frame's
camera and then through the sequence's lens (`distort_points`; a sequence is one camera, its
lens drawn once from the sequence's seed), so nothing is resampled.
"""
from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from .base import Output, Pass, SampleContext, person_of_pixels, register


def surface_points(vertices: np.ndarray, faces: np.ndarray, face: np.ndarray, bary: np.ndarray) -> np.ndarray:
    """World positions (N, 3) of the points with barycentric coordinates `bary` on triangles `face`."""
    corners = vertices[faces[face]]  # (N, 3 corners, 3)
    return np.einsum("nc,ncx->nx", bary.astype(np.float64), corners)


# Rendered surfaces of recent frames, keyed by their people's draws: frames render in order, so
# frame t+1 finds frame t (stored when t rendered) and poses only frame t+2. Posing and dressing
# two people costs ~0.1 s a frame; at most a few frames are kept.
_RECENT: "OrderedDict[str, list[np.ndarray]]" = OrderedDict()
_RECENT_FRAMES = 4


def _surface_key(spec: dict[str, Any]) -> str:
    return json.dumps([spec["persons"], spec["appearance"]], sort_keys=True)


def _remember(spec: dict[str, Any], surfaces: list[np.ndarray]) -> list[np.ndarray]:
    _RECENT[_surface_key(spec)] = surfaces
    _RECENT.move_to_end(_surface_key(spec))
    while len(_RECENT) > _RECENT_FRAMES:
        _RECENT.popitem(last=False)
    return surfaces


def _outer_surfaces(spec: dict[str, Any], bodies: dict[str, Any]) -> list[np.ndarray]:
    """Every person of `spec` posed and dressed exactly as SpecScene.build does (the rendered surface)."""
    from ..appearance.garment_geometry import rendered_surface

    known = _RECENT.get(_surface_key(spec))
    if known is not None:
        return known
    return _remember(spec, [rendered_surface(person, appearance, bodies)
                            for person, appearance in zip(spec["persons"], spec["appearance"])])


def _through_lens(xy: np.ndarray, K: np.ndarray, spec: dict[str, Any]) -> np.ndarray:
    """Ideal (pinhole) pixel positions as the frame's distorted image shows them."""
    from ..appearance.lens import distort_points, is_identity

    coeffs = spec.get("lens", {}).get("dist_coeffs")
    if coeffs is None or is_identity(coeffs) or not len(xy):
        return xy
    return distort_points(xy, K, coeffs)


@register
class FlowPass(Pass):
    name = "flow"
    outputs = (Output("flow", (".npz",)),)
    raw = ("flow", ".npz")
    requires = ("iuv", "surface")
    renders = False  # computed from the surface pass and the neighbouring frames' geometry

    def write(self, raw: Path | None, sample: SampleContext, layers: dict[str, np.ndarray]) -> list[str]:
        from ..io_utils import atomic_write_npz
        from ..scene.camera import camera_from_spec
        from ..spec.sample_spec import neighbour_spec

        spec, camera = sample.spec, sample.camera
        face = np.where(layers["I"] > 0, layers["surface_face"], -1)
        person = person_of_pixels(layers, face >= 0).astype(np.int64)
        body = (face >= 0) & (person > 0)
        rows, cols = np.nonzero(body)
        owner = person[rows, cols] - 1
        bary = layers["surface_bary"][rows, cols]
        here = np.zeros((len(rows), 3))
        faces_of = [sample.bodies[p["body"]["kind"]].faces for p in spec["persons"]]
        for number, posed in enumerate(sample.people):
            mine = owner == number
            here[mine] = surface_points(posed.outer, faces_of[number], face[rows, cols][mine], bary[mine])
        uv_here = _through_lens(camera.project(here)[0], camera.K, spec)
        _remember(spec, [posed.outer for posed in sample.people])
        arrays: dict[str, np.ndarray] = {}
        for name, offset in (("forward", 1), ("backward", -1)):
            flow = np.full((camera.height, camera.width, 2), np.nan, dtype=np.float32)
            valid = np.zeros((camera.height, camera.width), dtype=bool)
            other = neighbour_spec(sample.config, spec, offset)
            if other is not None and len(rows):
                surfaces = _outer_surfaces(other, sample.bodies)
                there = np.zeros_like(here)
                for number, outer in enumerate(surfaces):
                    mine = owner == number
                    there[mine] = surface_points(outer, faces_of[number], face[rows, cols][mine], bary[mine])
                other_camera = camera_from_spec(other)
                uv_there, depth = other_camera.project(there)
                ok = depth > 0
                uv_there[ok] = _through_lens(uv_there[ok], other_camera.K, spec)  # one lens per sequence
                flow[rows[ok], cols[ok]] = (uv_there - uv_here)[ok]
                valid[rows[ok], cols[ok]] = True
            arrays[name], arrays[f"{name}_valid"] = flow, valid
        atomic_write_npz(sample.out / "flow" / f"{sample.stem}.npz", arrays)
        return [f"flow/{sample.stem}.npz"]
