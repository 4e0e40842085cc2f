"""Independent NumPy rasteriser for DensePose IUV ground truth (test oracle).

Written from first principles and deliberately sharing no code with the
``densesynth`` package, so the tests can use it as an independent reference
for what Blender should have rendered into ``iuv/<stem>.exr``.

Model of the renderer being reproduced
--------------------------------------
* One sample per pixel through the pixel centre; OpenCV pixel convention: the
  centre of pixel (col, row) sits at image coordinates (col, row).
* The pixel shows the nearest surface hit by the ray through that point (no
  back-face culling).  Along one ray, "nearest" is the same as "smallest
  camera z", so a z-buffer over camera-space depth is exact.
* Attributes are interpolated with barycentric weights of the hit point on
  the 3D triangle (perspective-correct): screen-space weights ``b_i`` are
  converted with ``l_i = (b_i / z_i) / sum_j (b_j / z_j)``.
* ``I`` is constant per face (taken from corner 0 of ``corner_iuv``).
* Faces with any vertex at camera z <= ``near`` are skipped (no clipping).
* With ``dist_coeffs``, output pixel p shows what the ideal pinhole camera saw
  at the ideal image point that distorts to p: each output pixel centre is
  undistorted with ``cv2.undistortPoints(P=K)`` and that point is ray-cast.
* ``occlusion_mask`` pixels are background in the result.

Shared edges
------------
Each edge function is evaluated with the edge's endpoints in a canonical
(lexicographic by projected x, then y) order and then sign-flipped to the
triangle's orientation.  Two triangles sharing an edge (same projected
endpoints) therefore evaluate bit-identical edge values of opposite
orientation, and the inclusive test (``>= 0``) guarantees that every sample
on or across a shared edge is claimed by at least one of them: no cracks.

Algorithm / vectorisation
-------------------------
Sample points are binned into unit cells ``floor(x + 0.5), floor(y + 0.5)``
(for the regular pixel grid every cell holds exactly its pixel).  Each
triangle enumerates the cells of its bounding box; (triangle, cell) pairs are
generated flat with ``np.repeat`` in chunks of bounded size, tested with the
edge functions, and the surviving fragments are resolved per sample with a
lexicographic sort on (sample, depth, face).  Ties in depth go to the lower
face index.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = ["rasterise_iuv", "project_vertices", "ideal_sample_points"]

# Upper bound on (triangle, cell) candidate pairs processed at once.
_CHUNK_PAIRS = 1 << 20
# Triangles whose doubled screen area is below this (pixels^2) are skipped.
_MIN_AREA2 = 1e-12


def project_vertices(vertices, K, world_to_camera):
    """World points (N,3) -> (xy (N,2) pixel coordinates, z (N,) camera depth)."""
    v = np.asarray(vertices, dtype=np.float64).reshape(-1, 3)
    T = np.asarray(world_to_camera, dtype=np.float64).reshape(4, 4)
    K = np.asarray(K, dtype=np.float64).reshape(3, 3)
    cam = v @ T[:3, :3].T + T[:3, 3]
    z = cam[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        h = cam @ K.T
        xy = h[:, :2] / h[:, 2:3]
    return xy, z


def ideal_sample_points(K, dist_coeffs, width, height, exact_undistort=False):
    """Ideal (pinhole) image coordinates seen by each output pixel centre.

    Returns (sx, sy), each (H*W,) float64 in row-major pixel order.  Without
    distortion these are just the integer pixel centres.  With distortion,
    each output pixel centre is undistorted with ``cv2.undistortPoints``
    (``P=K``, OpenCV's default 5 fixed-point iterations) or, with
    ``exact_undistort=True``, with ``cv2.undistortPointsIter`` run to
    convergence (the exact inverse of the distortion model).
    """
    rows, cols = np.mgrid[0:height, 0:width]
    sx = cols.ravel().astype(np.float64)
    sy = rows.ravel().astype(np.float64)
    if dist_coeffs is None:
        return sx, sy
    d = np.asarray(dist_coeffs, dtype=np.float64).ravel()
    if not np.any(d):
        return sx, sy
    import cv2

    K = np.asarray(K, dtype=np.float64).reshape(3, 3)
    pts = np.stack([sx, sy], axis=-1).reshape(-1, 1, 2)
    if exact_undistort:
        crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 200, 1e-15)
        und = cv2.undistortPointsIter(pts, K, d, None, K, crit)
    else:
        und = cv2.undistortPoints(pts, K, d, P=K)
    und = und.reshape(-1, 2).astype(np.float64)
    return und[:, 0].copy(), und[:, 1].copy()


def _get(geometry, key, default=None):
    if key not in geometry:
        return default
    val = geometry[key]
    if val is None:
        return None
    val = np.asarray(val)
    if val.dtype == object and val.ndim == 0 and val.item() is None:
        return None  # np.savez(..., key=None) round trip
    return val


def rasterise_iuv(geometry: Mapping, near: float = 1e-3, exact_undistort: bool = False) -> dict:
    """Rasterise the debug geometry of one sample into DensePose IUV maps.

    ``geometry`` is a mapping (dict or ``np.load`` result) with ``vertices``,
    ``faces``, ``corner_iuv``, ``K``, ``world_to_camera``, ``image_size``
    (W, H) and optionally ``dist_coeffs``, ``occlusion_mask`` and
    ``person_of_face``.

    Returns a dict of (H, W) arrays:
      ``I`` int64 (0 = background), ``U``/``V`` float64 (0 on background),
      ``mask`` bool (foreground), ``face`` int64 (-1 = none), ``depth``
      float64 camera z of the hit (inf on background), ``bary`` (H, W, 3)
      perspective-correct barycentrics (0 on background) and, when
      ``person_of_face`` is given, ``person`` int64 (-1 = none).
    Occluded pixels (``occlusion_mask``) are background in every output.
    """
    vertices = np.asarray(geometry["vertices"], dtype=np.float64).reshape(-1, 3)
    faces = np.asarray(geometry["faces"]).astype(np.int64).reshape(-1, 3)
    corner_iuv = np.asarray(geometry["corner_iuv"], dtype=np.float64).reshape(-1, 3, 3)
    K = np.asarray(geometry["K"], dtype=np.float64).reshape(3, 3)
    w2c = np.asarray(geometry["world_to_camera"], dtype=np.float64).reshape(4, 4)
    W, H = (int(x) for x in np.asarray(geometry["image_size"]).ravel()[:2])
    dist = _get(geometry, "dist_coeffs")
    occ = _get(geometry, "occlusion_mask")
    person_of_face = _get(geometry, "person_of_face")
    if corner_iuv.shape[0] != faces.shape[0]:
        raise ValueError(f"corner_iuv has {corner_iuv.shape[0]} faces, faces has {faces.shape[0]}")

    S = W * H
    sx, sy = ideal_sample_points(K, dist, W, H, exact_undistort=exact_undistort)
    zbuf = np.full(S, np.inf)
    fbuf = np.full(S, -1, dtype=np.int64)
    bbuf = np.zeros((S, 3))

    xy, z = project_vertices(vertices, K, w2c)
    F = faces.shape[0]
    if F and S:
        _rasterise(xy, z, faces, sx, sy, W, H, near, zbuf, fbuf, bbuf)

    if occ is not None:
        occ_flat = np.asarray(occ, dtype=bool).reshape(H, W).ravel()
        fbuf[occ_flat] = -1
        zbuf[occ_flat] = np.inf
        bbuf[occ_flat] = 0.0

    hit = fbuf >= 0
    I = np.zeros(S, dtype=np.int64)
    U = np.zeros(S)
    V = np.zeros(S)
    if hit.any():
        f = fbuf[hit]
        c = corner_iuv[f]  # (M,3 corners,3 channels)
        lam = bbuf[hit]
        I[hit] = np.rint(c[:, 0, 0]).astype(np.int64)
        U[hit] = np.einsum("mk,mk->m", lam, c[:, :, 1])
        V[hit] = np.einsum("mk,mk->m", lam, c[:, :, 2])
    out = {
        "I": I.reshape(H, W),
        "U": U.reshape(H, W),
        "V": V.reshape(H, W),
        "mask": hit.reshape(H, W),
        "face": fbuf.reshape(H, W),
        "depth": zbuf.reshape(H, W),
        "bary": bbuf.reshape(H, W, 3),
    }
    if person_of_face is not None:
        pof = np.asarray(person_of_face).astype(np.int64).ravel()
        person = np.full(S, -1, dtype=np.int64)
        person[hit] = pof[fbuf[hit]]
        out["person"] = person.reshape(H, W)
    return out


def _rasterise(xy, z, faces, sx, sy, W, H, near, zbuf, fbuf, bbuf):
    S = sx.size
    # ---- sample binning (cells of unit size centred on integer coords) ----
    cx_s = np.floor(sx + 0.5).astype(np.int64)
    cy_s = np.floor(sy + 0.5).astype(np.int64)
    gx0, gx1 = int(cx_s.min()), int(cx_s.max())
    gy0, gy1 = int(cy_s.min()), int(cy_s.max())
    GW, GH = gx1 - gx0 + 1, gy1 - gy0 + 1
    cell_of_sample = (cy_s - gy0) * GW + (cx_s - gx0)
    regular = GW == W and GH == H and np.array_equal(cell_of_sample, np.arange(S))
    if not regular:
        order = np.argsort(cell_of_sample, kind="stable")
        counts = np.bincount(cell_of_sample, minlength=GW * GH)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])

    # ---- per-triangle setup ----
    v = xy[faces]  # (F,3,2)
    vz = z[faces]  # (F,3)
    ok = np.all(vz > near, axis=1) & np.all(np.isfinite(v), axis=(1, 2))
    x0, y0 = v[:, 0, 0], v[:, 0, 1]
    area2 = (v[:, 1, 0] - x0) * (v[:, 2, 1] - y0) - (v[:, 1, 1] - y0) * (v[:, 2, 0] - x0)
    ok &= np.abs(area2) > _MIN_AREA2
    with np.errstate(invalid="ignore"):
        bx0 = np.floor(v[..., 0].min(1) + 0.5)
        bx1 = np.floor(v[..., 0].max(1) + 0.5)
        by0 = np.floor(v[..., 1].min(1) + 0.5)
        by1 = np.floor(v[..., 1].max(1) + 0.5)
    ok &= (bx1 >= gx0) & (bx0 <= gx1) & (by1 >= gy0) & (by0 <= gy1)
    tris = np.nonzero(ok)[0]
    if tris.size == 0:
        return
    bx0 = np.clip(bx0[tris], gx0, gx1).astype(np.int64)
    bx1 = np.clip(bx1[tris], gx0, gx1).astype(np.int64)
    by0 = np.clip(by0[tris], gy0, gy1).astype(np.int64)
    by1 = np.clip(by1[tris], gy0, gy1).astype(np.int64)
    bw = bx1 - bx0 + 1
    bh = by1 - by0 + 1
    ncell = bw * bh
    v = v[tris]
    vz = vz[tris]
    orient = np.sign(area2[tris])

    # Edge e is opposite vertex e: (v1,v2), (v2,v0), (v0,v1), endpoints in
    # canonical lexicographic order, with sign restoring the triangle order.
    P = v[:, [1, 2, 0], :]
    Q = v[:, [2, 0, 1], :]
    swap = (P[..., 0] > Q[..., 0]) | ((P[..., 0] == Q[..., 0]) & (P[..., 1] > Q[..., 1]))
    A = np.where(swap[..., None], Q, P)
    B = np.where(swap[..., None], P, Q)
    esign = np.where(swap, -1.0, 1.0) * orient[:, None]  # inside <=> esign*E >= 0
    Ax, Ay = A[..., 0], A[..., 1]
    Dx, Dy = B[..., 0] - Ax, B[..., 1] - Ay
    inv_z = 1.0 / vz

    # ---- chunks of triangles with bounded candidate count ----
    cum = np.cumsum(ncell)
    n = tris.size
    start = 0
    while start < n:
        base = cum[start - 1] if start else 0
        stop = int(np.searchsorted(cum, base + _CHUNK_PAIRS, side="right"))
        stop = max(stop, start + 1)
        sl = slice(start, stop)
        start = stop

        nc = ncell[sl]
        tot = int(nc.sum())
        tl = np.repeat(np.arange(sl.start, sl.stop), nc)  # local triangle index
        offs = np.cumsum(nc) - nc
        k = np.arange(tot) - np.repeat(offs, nc)
        bwl = bw[tl]
        cx = bx0[tl] + k % bwl
        cy = by0[tl] + k // bwl
        cell = (cy - gy0) * GW + (cx - gx0)
        if regular:
            s = cell
        else:
            cnt = counts[cell]
            keep = cnt > 0
            tl, cell, cnt = tl[keep], cell[keep], cnt[keep]
            tot = int(cnt.sum())
            if tot == 0:
                continue
            first = np.repeat(starts[cell], cnt)
            o2 = np.cumsum(cnt) - cnt
            s = order[first + np.arange(tot) - np.repeat(o2, cnt)]
            tl = np.repeat(tl, cnt)
        px = sx[s]
        py = sy[s]

        # Edge functions, inclusive test, progressively compacting.
        inside = np.ones(px.size, dtype=bool)
        E = []
        for e in range(3):
            Ee = (Dx[tl, e] * (py - Ay[tl, e]) - Dy[tl, e] * (px - Ax[tl, e])) * esign[tl, e]
            inside &= Ee >= 0
            E.append(Ee)
        if not inside.any():
            continue
        s = s[inside]
        tl = tl[inside]
        w = np.stack([Ee[inside] for Ee in E], axis=1)  # (M,3) >= 0, weight of vertex e
        wsum = w.sum(1)
        good = wsum > 0
        if not good.all():
            s, tl, w, wsum = s[good], tl[good], w[good], wsum[good]
        b = w / wsum[:, None]  # screen-space barycentrics
        l = b * inv_z[tl]
        lsum = l.sum(1)
        depth = 1.0 / lsum
        lam = l / lsum[:, None]  # perspective-correct barycentrics

        # Resolve per sample: nearest, then lowest face index.
        face_global = tris[tl]
        o = np.lexsort((face_global, depth, s))
        s_o = s[o]
        firsts = np.ones(o.size, dtype=bool)
        firsts[1:] = s_o[1:] != s_o[:-1]
        win = o[firsts]
        sw = s[win]
        dw = depth[win]
        upd = dw < zbuf[sw]
        sw = sw[upd]
        win = win[upd]
        zbuf[sw] = dw[upd]
        fbuf[sw] = face_global[win]
        bbuf[sw] = lam[win]
