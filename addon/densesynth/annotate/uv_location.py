"""UV location maps: the 3D surface position at every texel of a body's texture UV layout.

A texel (col, row) of a size x size map has its centre at u = (col + 0.5) / size,
v = 1 - (row + 0.5) / size (row 0 at the top, as an image of the texture is stored; the
texture UV's v points up, as in Blender). A texel covered by a UV triangle takes the
barycentric interpolation (in UV space) of that triangle's three corner positions; texels no
triangle covers are NaN. Where UV triangles overlap, the highest face index wins
(deterministic).

Why by hand and not a library: a UV-space rasteriser is a few lines of vectorised
barycentrics; OpenCV's fillPoly cannot interpolate attributes, and the GPU rasterisers
(nvdiffrast, pytorch3d) are not shippable in the Blender extension.
"""
from __future__ import annotations

import numpy as np

__all__ = ["texel_centres", "uv_location_map"]

_CHUNK = 1 << 20  # (triangle, texel) candidate pairs processed at once
_EPS = 1e-9       # barycentric slack: texels on a shared edge are claimed by one of the two


def texel_centres(size: int) -> tuple[np.ndarray, np.ndarray]:
    """(u, v) of every texel centre, each (size, size), row 0 at the top (v near 1)."""
    cols, rows = np.meshgrid(np.arange(size), np.arange(size))
    return (cols + 0.5) / size, 1.0 - (rows + 0.5) / size


def uv_location_map(corner_uv: np.ndarray, faces: np.ndarray, positions: np.ndarray, size: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Rasterise `positions` (V, 3) over the UV layout `corner_uv` (F, 3, 2).

    Returns (map (size, size, 3) float32, NaN where no triangle lies; face (size, size)
    int32, the face at each texel, -1 where none)."""
    corner_uv = np.asarray(corner_uv, dtype=np.float64).reshape(-1, 3, 2)
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    positions = np.asarray(positions, dtype=np.float64)
    # Texel coordinates: x = u * size - 0.5 (column), y = (1 - v) * size - 0.5 (row).
    px = corner_uv[..., 0] * size - 0.5
    py = (1.0 - corner_uv[..., 1]) * size - 0.5
    c0 = np.clip(np.ceil(px.min(axis=1)), 0, size).astype(np.int64)
    c1 = np.clip(np.floor(px.max(axis=1)), -1, size - 1).astype(np.int64)
    r0 = np.clip(np.ceil(py.min(axis=1)), 0, size).astype(np.int64)
    r1 = np.clip(np.floor(py.max(axis=1)), -1, size - 1).astype(np.int64)
    nc, nr = np.maximum(c1 - c0 + 1, 0), np.maximum(r1 - r0 + 1, 0)
    area2 = ((px[:, 1] - px[:, 0]) * (py[:, 2] - py[:, 0]) - (px[:, 2] - px[:, 0]) * (py[:, 1] - py[:, 0]))
    candidates = np.flatnonzero((nc * nr > 0) & (np.abs(area2) > 1e-12))
    out = np.full((size * size, 3), np.nan)
    face_of = np.full(size * size, -1, dtype=np.int64)
    counts = (nc * nr)[candidates]
    start = 0
    while start < len(candidates):
        stop = start + max(1, int(np.searchsorted(np.cumsum(counts[start:]), _CHUNK)))
        tris, n = candidates[start:stop], counts[start:stop]
        tri = np.repeat(tris, n)
        k = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
        col = c0[tri] + k % nc[tri]
        row = r0[tri] + k // nc[tri]
        x, y = col.astype(np.float64), row.astype(np.float64)
        ax, ay = px[tri], py[tri]
        w0 = ((ax[:, 1] - x) * (ay[:, 2] - y) - (ax[:, 2] - x) * (ay[:, 1] - y)) / area2[tri]
        w1 = ((ax[:, 2] - x) * (ay[:, 0] - y) - (ax[:, 0] - x) * (ay[:, 2] - y)) / area2[tri]
        w2 = 1.0 - w0 - w1
        inside = (w0 >= -_EPS) & (w1 >= -_EPS) & (w2 >= -_EPS)
        tri, col, row = tri[inside], col[inside], row[inside]
        weights = np.stack([w0[inside], w1[inside], w2[inside]], axis=1)
        texel = row * size + col
        points = np.einsum("nk,nkd->nd", weights, positions[faces[tri]])
        # Highest face wins: tri increases within a chunk and chunks go in face order.
        out[texel] = points
        face_of[texel] = tri
        start = stop
    return out.reshape(size, size, 3).astype(np.float32), face_of.reshape(size, size).astype(np.int32)
