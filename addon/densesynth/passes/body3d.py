"""The body3d pass: per-person 3D ground truth, computed from the posed meshes (no render).

Writes ``body3d/<stem>.npz`` with, for each person n (0-based, the order of the spec and of
person_index - 1), keys prefixed ``p<n>_`` (see annotate/person_truth.py for frames):

* ``kind`` (str), ``shape`` (JSON str: anny phenotype / SMPL gender and betas), ``pose``
  (J, 3) axis-angle, ``camera_from_body`` (4, 4), ``global_orient`` (3,), ``transl`` (3,);
* ``joints_3d`` (17, 3) COCO keypoints, camera frame, metres; ``joints_2d`` (17, 2) pixels,
  through the lens when the sample has one;
* ``vertices`` (V, 3) float32 camera frame; ``visible_vertices`` (V,) bool, by ray casting against
  every person; a vertex under an occluder or outside the image is not visible;
* ``uv_location`` (S, S, 3) float32 camera-frame surface position per texel of the body's
  texture UV layout (NaN off the layout), S = ``body3d.uv_map_size``.

Plus ``num_people``, ``K`` (3, 3), ``dist_coeffs`` (empty without a lens), ``image_size`` (W, H).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..io_utils import atomic_write_npz
from .base import Output, Pass, SampleContext, register


@register
class Body3dPass(Pass):
    name = "body3d"
    outputs = (Output("body3d", (".npz",)),)
    raw = ("body3d", ".npz")
    renders = False  # computed from the posed meshes: nothing for Blender to render

    def write(self, raw: Path | None, sample: SampleContext, layers: dict[str, np.ndarray]) -> list[str]:
        from ..annotate.person_truth import body_parameters, joints_2d, vertex_visibility
        from ..annotate.uv_location import uv_location_map
        from ..annotate.visibility import in_image

        camera, people, spec = sample.camera, sample.people, sample.spec
        size = int(sample.config["body3d"]["uv_map_size"])
        T = np.asarray(camera.world_to_camera, dtype=np.float64)
        K = np.asarray(camera.K, dtype=np.float64)
        cam = [p.vertices @ T[:3, :3].T + T[:3, 3] for p in people]
        bodies = [sample.bodies[person["body"]["kind"]] for person in spec["persons"]]
        offsets = np.cumsum([0] + [len(v) for v in cam])
        all_faces = np.concatenate([b.faces + o for b, o in zip(bodies, offsets)])
        all_vertices = np.concatenate(cam)
        visible = vertex_visibility(all_vertices, all_vertices, all_faces)
        xy_all = joints_2d(all_vertices, K, sample.dist_coeffs)
        visible &= in_image(np.nan_to_num(xy_all, nan=-1e9), camera.width, camera.height)
        if sample.occlusion_out is not None:
            inside = np.flatnonzero(visible)
            col = np.clip(np.floor(xy_all[inside, 0] + 0.5).astype(np.int64), 0, camera.width - 1)
            row = np.clip(np.floor(xy_all[inside, 1] + 0.5).astype(np.int64), 0, camera.height - 1)
            visible[inside[sample.occlusion_out[row, col]]] = False
        arrays: dict[str, Any] = {"num_people": np.int64(len(people)), "K": K, "image_size": np.array(
            [camera.width, camera.height]), "dist_coeffs": np.asarray(
            sample.dist_coeffs if sample.dist_coeffs is not None else [], dtype=np.float64)}
        for n, (person, posed, body, vertices) in enumerate(zip(spec["persons"], people, bodies, cam)):
            params = body_parameters(person, body, posed.vertices, T)
            joints = posed.keypoints @ T[:3, :3].T + T[:3, 3]
            uv_map, _ = uv_location_map(body.corner_texture_uv, body.faces, vertices, size)
            arrays.update({
                f"p{n}_kind": np.str_(params["kind"]), f"p{n}_shape": np.str_(json.dumps(params["shape"])),
                f"p{n}_pose": params["pose"], f"p{n}_camera_from_body": params["camera_from_body"],
                f"p{n}_global_orient": params["global_orient"], f"p{n}_transl": params["transl"],
                f"p{n}_joints_3d": joints, f"p{n}_joints_2d": joints_2d(joints, K, sample.dist_coeffs),
                f"p{n}_vertices": vertices.astype(np.float32),
                f"p{n}_visible_vertices": visible[offsets[n]:offsets[n + 1]],
                f"p{n}_uv_location": uv_map,
            })
        path = sample.out / "body3d" / f"{sample.stem}.npz"
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_npz(path, arrays)
        return [f"body3d/{sample.stem}.npz"]
