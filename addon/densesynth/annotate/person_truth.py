"""Per-person 3D ground truth: body parameters, 3D/2D joints, visible vertices.

Frames: the *camera frame* is OpenCV's (x right, y down, z forward, metres, origin at the
camera centre), the one ``world_to_camera`` maps into. The *body frame* is what the NumPy
body model itself outputs (anny: its model frame, Z up; SMPL: SMPL's own frame, Y up, zero
translation). ``camera_from_body`` (4x4) maps the body frame into the camera frame, so

    vertices_camera = camera_from_body[:3, :3] @ body_model(shape, pose) + camera_from_body[:3, 3]

It holds everything the pipeline did after the body model (standing on the ground, the
placement's yaw and shift, the camera); it is fitted (Kabsch) from the body-frame to the
rendered vertices, which are the same points up to that rigid motion, and the fit's
residual is checked.

Pose: axis-angle (radians) per joint, as the body model consumes it. SMPL: the 24 joints of
``pose72`` (joint 0 the root). anny: per bone the *local* rotation ``R_b = W_parent^T W_b``
of the world-frame rotation deltas ``W`` its skinning takes (root: ``R_0 = W_0``); the
deltas are rebuilt as ``W_b = W_parent @ R_b``.
"""
from __future__ import annotations

import hashlib

from typing import Any

import numpy as np

from .visibility import project_points

__all__ = ["body_parameters", "joints_2d", "rigid_fit", "rotvecs", "vertex_visibility"]

RIGID_FIT_TOLERANCE_M = 1e-5  # the body-frame mesh must match the rendered one this closely
VISIBILITY_TOLERANCE_M = 1e-3  # a hit closer than this before the vertex is the vertex's own surface


def rotvecs(rotations: np.ndarray) -> np.ndarray:
    """(N, 3, 3) rotation matrices -> (N, 3) axis-angle vectors."""
    import cv2

    return np.stack([cv2.Rodrigues(np.asarray(r, dtype=np.float64))[0].ravel() for r in rotations])


def rigid_fit(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, float]:
    """The rotation + translation (4x4) moving `source` (N, 3) onto `target`, and the largest
    residual (metres). Kabsch: exact when the two are one rigid motion apart."""
    ms, mt = source.mean(axis=0), target.mean(axis=0)
    u, _, vt = np.linalg.svd((source - ms).T @ (target - mt))
    d = np.sign(np.linalg.det(vt.T @ u.T))
    rotation = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    transform = np.eye(4)
    transform[:3, :3], transform[:3, 3] = rotation, mt - rotation @ ms
    residual = float(np.abs(source @ rotation.T + transform[:3, 3] - target).max())
    return transform, residual


def _anny_parameters(person: dict[str, Any], body) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """(shape/pose record, pose axis-angle (B, 3), body-frame vertices) of one anny person,
    recomputed the way scene/person.py poses it."""
    from ..motion.retarget import ANNY_JOINT_MAP, retarget_pose
    from ..scene.person import _clip_frame

    model = body.model
    rest = model.rest(person["body"]["phenotype"])
    clip, pose72, trans = _clip_frame(person["motion"])
    world = retarget_pose(pose72, trans, rest.bone_heads, model.bone_parents, model.bone_labels, ANNY_JOINT_MAP,
                          source_rest_joints=clip.rest_joints).world_rotations
    local = np.array(world, dtype=np.float64)
    for bone in range(1, len(world)):
        local[bone] = world[model.bone_parents[bone]].T @ world[bone]
    vertices, _ = model.pose(rest, world)
    shape = {"phenotype": dict(person["body"]["phenotype"]), "bone_labels": list(model.bone_labels),
             "bone_parents": [int(p) for p in model.bone_parents]}
    return shape, rotvecs(local), vertices


def _smpl_parameters(person: dict[str, Any], body) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    from ..scene.person import _clip_frame

    _, pose72, _ = _clip_frame(person["motion"])
    smpl = body.model(person["body"]["gender"])
    out = smpl.pose(np.asarray(person["body"]["betas"]), pose72, np.zeros(3), blender=False)
    shape = {"gender": person["body"]["gender"], "betas": [float(b) for b in person["body"]["betas"]]}
    return shape, np.asarray(pose72, dtype=np.float64).reshape(-1, 3), out.vertices


_PARAMETERS = {"anny": _anny_parameters, "smpl": _smpl_parameters}


def body_parameters(person: dict[str, Any], body, world_vertices: np.ndarray,
                    world_to_camera: np.ndarray) -> dict[str, Any]:
    """Shape, pose and the body frame's pose in the camera frame, for one person.

    Returns {"kind", "shape" (JSON-able), "pose" (J, 3) axis-angle, "camera_from_body" (4, 4),
    "global_orient" (3,) axis-angle of the root joint's rotation in the camera frame,
    "transl" (3,) the body frame's origin in the camera frame}. RuntimeError when the
    recomputed mesh is not the rendered one (a posing change this module missed)."""
    kind = person["body"]["kind"]
    if kind not in _PARAMETERS:
        raise ValueError(f"body3d: no body parameters for body kind {kind!r} (known: {', '.join(_PARAMETERS)})")
    shape, pose, body_vertices = _PARAMETERS[kind](person, body)
    T = np.asarray(world_to_camera, dtype=np.float64)
    camera_vertices = world_vertices @ T[:3, :3].T + T[:3, 3]
    transform, residual = rigid_fit(body_vertices, camera_vertices)
    if residual > RIGID_FIT_TOLERANCE_M:
        raise RuntimeError(f"body3d: the {kind} body model does not reproduce the rendered mesh "
                           f"(residual {residual * 1000:.3f} mm)")
    import cv2

    root = cv2.Rodrigues(pose[0])[0]
    return {"kind": kind, "shape": shape, "pose": pose, "camera_from_body": transform,
            "global_orient": rotvecs((transform[:3, :3] @ root)[None])[0], "transl": transform[:3, 3].copy()}


def joints_2d(joints_camera: np.ndarray, K: np.ndarray, dist_coeffs: np.ndarray | None) -> np.ndarray:
    """Pixel positions (OpenCV: pixel (c, r)'s centre at (c, r)) of camera-frame points,
    through the lens distortion when there is one; NaN behind the camera."""
    xy, _ = project_points(joints_camera, K, np.eye(4))
    if dist_coeffs is not None:
        from ..appearance.lens import distort_points

        xy = distort_points(xy, K, dist_coeffs)
    return xy


def vertex_visibility(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray, near: float = 1e-3) -> np.ndarray:
    """Whether each camera-frame point (N, 3) is seen from the camera centre (the origin): no
    triangle of the scene (camera frame) is hit by the ray origin -> point before it
    (VISIBILITY_TOLERANCE_M short of the point: the faces a vertex is a corner of are hit at
    the vertex itself). Points at or behind the `near` plane are not visible.

    One ray per point through Blender's BVH tree (mathutils.bvhtree, in C; it ships with
    every Blender and the bpy module that renders the sample): a NumPy ray caster took about
    3 s per sample for two people, this about a tenth of a second."""
    from mathutils import Vector
    from mathutils.bvhtree import BVHTree

    points = np.asarray(points, dtype=np.float64)
    visible = points[:, 2] > near
    if not visible.any() or len(faces) == 0:
        return visible
    tree = BVHTree.FromPolygons(np.asarray(vertices, dtype=np.float64).tolist(), _face_list(faces),
                                all_triangles=True, epsilon=0.0)
    origin = Vector((0.0, 0.0, 0.0))
    distance = np.linalg.norm(points, axis=1)
    todo = np.flatnonzero(visible)
    # Plain lists into the C loop: converting per ray from NumPy cost as much as the casts.
    directions = (points[todo] / distance[todo, None]).tolist()
    reaches = (distance[todo] - VISIBILITY_TOLERANCE_M).tolist()
    ray_cast = tree.ray_cast
    hidden = [index for index, direction, reach in zip(todo.tolist(), directions, reaches)
              if reach > 0 and ray_cast(origin, direction, reach)[0] is not None]
    visible[hidden] = False
    return visible


_FACE_LISTS: dict[bytes, list] = {}  # the scene's faces change only with its people's body kinds


def _face_list(faces: np.ndarray) -> list:
    """`faces` as the nested list BVHTree takes, kept for the few face sets a run has."""
    faces = np.ascontiguousarray(faces, dtype=np.int64)
    key = hashlib.sha1(faces.tobytes()).digest() + bytes(str(faces.shape), "ascii")
    if key not in _FACE_LISTS:
        if len(_FACE_LISTS) >= 8:
            _FACE_LISTS.pop(next(iter(_FACE_LISTS)))
        _FACE_LISTS[key] = faces.tolist()
    return _FACE_LISTS[key]


