"""COCO keypoint visibility from the posed mesh: project, then ray-cast.

Conventions:

* ``world_to_camera`` is a 4x4 OpenCV camera transform (x right, y down, z forward) and
  ``K_intr`` OpenCV intrinsics in which the centre of pixel (col, row) is at (col, row)
  (a Blender camera's principal point must be converted accordingly). The returned ``xy``
  are therefore directly COCO keypoint coordinates (see ``coco_densepose``).
* A keypoint is inside the image when its projection falls on a pixel:
  -0.5 <= x < W - 0.5 and -0.5 <= y < H - 0.5 (and it is in front of the camera).

COCO's flags: 0 = not in the image, 1 = in the image but hidden, 2 = visible.

Why a ray cast and not the rendered labels: joints lie *inside* limbs, so the rendered
pixel at a joint always shows some skin; what matters is whether that skin belongs to the
limb around the joint (visible) or to something in front of it (occluded). The test:

* cast the ray camera centre -> keypoint through all triangles (no back-face culling) and
  take the first hit;
* nothing hit in front of the keypoint -> visible;
* the first hit is more than ``tolerance`` in front of the keypoint -> hidden (something
  lies between camera and keypoint); tolerance = ``joint_tolerance`` (0.15 m, the limb
  radius scale) for joints, ``surface_tolerance`` (3 cm) for surface points (nose, eyes,
  ears), whose first hit must be the skin at the point itself;
* the first hit is within the tolerance but on a part not in ``keypoint_parts[k]``
  (e.g. a hand over the face) -> hidden, else visible;
* an ``occlusion_mask`` pixel (an occluder composited after rendering) -> hidden.

Faces whose ``face_part`` is 0 (or any label not in a keypoint's parts: props, other
people) act as occluders only.

Why NumPy and not a library: trimesh's ray module needs ``rtree`` (and embree for speed),
which the Blender-extension build cannot ship, and 17 rays against ~30k triangles take a
few milliseconds with a vectorised Moller-Trumbore; a BVH would not pay for itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["in_image", "project_points", "first_hits", "keypoint_visibility"]

_DET_EPS = 1e-12  # |det| below this: ray parallel to the triangle plane
_BARY_EPS = 1e-9  # barycentric slack so rays through shared edges/vertices still hit
_T_EPS = 1e-9  # hits closer than this to the camera centre are ignored (metres)


def in_image(xy: np.ndarray, width: int, height: int) -> np.ndarray:
    """Which points (N, 2) fall on a pixel: -0.5 <= x < W - 0.5 and -0.5 <= y < H - 0.5."""
    return (xy[:, 0] >= -0.5) & (xy[:, 0] < width - 0.5) & (xy[:, 1] >= -0.5) & (xy[:, 1] < height - 0.5)


def project_points(points_world: np.ndarray, K_intr: np.ndarray,
                   world_to_camera: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World points (N, 3) -> (xy (N, 2) pixels, camera depth z (N,)).

    Points with z <= 0 (behind the camera) get xy = NaN.
    """
    pts = np.asarray(points_world, dtype=np.float64).reshape(-1, 3)
    T = np.asarray(world_to_camera, dtype=np.float64)
    cam = pts @ T[:3, :3].T + T[:3, 3]
    z = cam[:, 2]
    uvw = cam @ np.asarray(K_intr, dtype=np.float64).T
    xy = np.full((pts.shape[0], 2), np.nan)
    front = z > 0
    xy[front] = uvw[front, :2] / uvw[front, 2:3]
    return xy, z


def first_hits(origin: np.ndarray, directions: np.ndarray, vertices: np.ndarray,
               faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First intersection of each ray with the triangle soup (two-sided Moller-Trumbore).

    Args:
        origin: (3,) common ray origin.
        directions: (R, 3) unit directions.
        vertices, faces: the mesh.

    Returns:
        (distance (R,), face index (R,)): distance along the ray to the nearest hit with
        distance > 1e-9, ``inf`` and -1 when the ray hits nothing.
    """
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    dirs = np.asarray(directions, dtype=np.float64).reshape(-1, 3)
    dist = np.full(dirs.shape[0], np.inf)
    face = np.full(dirs.shape[0], -1, dtype=np.int64)
    if f.size == 0:
        return dist, face
    v0 = v[f[:, 0]]
    e1 = v[f[:, 1]] - v0
    e2 = v[f[:, 2]] - v0
    s = np.asarray(origin, dtype=np.float64) - v0  # (F, 3), shared by all rays
    q = np.cross(s, e1)  # (F, 3), independent of the ray direction
    t_num = np.einsum("ij,ij->i", e2, q)
    for r, d in enumerate(dirs):  # 17 rays: a loop keeps memory at O(F)
        p = np.cross(d, e2)
        det = np.einsum("ij,ij->i", e1, p)
        ok = np.abs(det) > _DET_EPS
        inv = np.zeros_like(det)
        inv[ok] = 1.0 / det[ok]
        b1 = np.einsum("ij,ij->i", s, p) * inv
        b2 = (q @ d) * inv
        t = t_num * inv
        hit = (ok & (b1 >= -_BARY_EPS) & (b2 >= -_BARY_EPS) & (b1 + b2 <= 1.0 + _BARY_EPS)
               & (t > _T_EPS))
        if hit.any():
            idx = np.flatnonzero(hit)
            best = idx[np.argmin(t[idx])]
            dist[r], face[r] = t[best], best
    return dist, face


def keypoint_visibility(
    keypoints_world: np.ndarray,
    vertices: np.ndarray,
    faces: np.ndarray,
    face_part: np.ndarray,
    K_intr: np.ndarray,
    world_to_camera: np.ndarray,
    image_size: tuple[int, int],
    keypoint_parts: Sequence[set[int] | frozenset[int]],
    surface_keypoints: np.ndarray,
    occlusion_mask: np.ndarray | None = None,
    *,
    joint_tolerance: float = 0.15,
    surface_tolerance: float = 0.03,
) -> tuple[np.ndarray, np.ndarray]:
    """Project keypoints and give each a COCO visibility flag.

    Args:
        keypoints_world: (K, 3) keypoint positions, world units = metres.
        vertices, faces: the posed mesh (all geometry that may occlude), world space.
        face_part: (F,) fine part 1..24 of each face; 0 for non-body occluders.
        K_intr: (3, 3) OpenCV intrinsics (pixel centre (c, r) at (c, r)).
        world_to_camera: (4, 4) OpenCV camera (x right, y down, z forward).
        image_size: (W, H).
        keypoint_parts: K sets of fine parts on which keypoint k may be seen
            (``parts.KEYPOINT_PARTS`` for COCO-17).
        surface_keypoints: (K,) bool, True for keypoints on the skin (``parts.SURFACE_KEYPOINTS``).
        occlusion_mask: optional (H, W) bool, True where an occluder covers the image.
        joint_tolerance, surface_tolerance: see the module docstring (metres).

    Returns:
        (xy (K, 2) float64 pixel positions, NaN behind the camera; vis (K,) int64 in {0,1,2}).
    """
    kp = np.asarray(keypoints_world, dtype=np.float64).reshape(-1, 3)
    surface = np.asarray(surface_keypoints, dtype=bool).reshape(-1)
    face_part = np.asarray(face_part).reshape(-1)
    if len(keypoint_parts) != kp.shape[0] or surface.shape[0] != kp.shape[0]:
        raise ValueError("keypoint_parts and surface_keypoints need one entry per keypoint")
    if face_part.shape[0] != np.asarray(faces).reshape(-1, 3).shape[0]:
        raise ValueError("face_part needs one entry per face")
    width, height = int(image_size[0]), int(image_size[1])

    xy, z = project_points(kp, K_intr, world_to_camera)
    inside = (z > 0) & in_image(xy, width, height)
    vis = np.where(inside, 2, 0).astype(np.int64)
    if not inside.any():
        return xy, vis

    T = np.asarray(world_to_camera, dtype=np.float64)
    centre = -T[:3, :3].T @ T[:3, 3]
    rays = kp[inside] - centre
    joint_dist = np.linalg.norm(rays, axis=1)
    hit_dist, hit_face = first_hits(centre, rays / joint_dist[:, None], vertices, faces)

    for j, k in enumerate(np.flatnonzero(inside)):
        if not _seen(hit_dist[j], hit_face[j], joint_dist[j], face_part, keypoint_parts[k],
                     surface_tolerance if surface[k] else joint_tolerance):
            vis[k] = 1

    if occlusion_mask is not None:
        occ = np.asarray(occlusion_mask, dtype=bool)
        if occ.shape != (height, width):
            raise ValueError(f"occlusion_mask shape {occ.shape} != (H, W) {(height, width)}")
        idx = np.flatnonzero(inside)
        cols = np.clip(np.floor(xy[idx, 0] + 0.5).astype(np.int64), 0, width - 1)
        rows = np.clip(np.floor(xy[idx, 1] + 0.5).astype(np.int64), 0, height - 1)
        vis[idx[occ[rows, cols]]] = 1
    return xy, vis


def _seen(hit_dist: float, hit_face: int, joint_dist: float, face_part: np.ndarray,
          parts: set[int] | frozenset[int], tolerance: float) -> bool:
    """The visibility rule for one in-image keypoint (see the module docstring)."""
    if hit_face < 0 or hit_dist >= joint_dist:
        return True  # nothing between the camera and the keypoint
    if hit_dist < joint_dist - tolerance:
        return False  # a surface well in front of it
    return int(face_part[hit_face]) in parts
