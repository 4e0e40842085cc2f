"""Validate the NumPy reference rasteriser (tests/rasteriser.py) and the IUV comparison.

Every expectation here is computed independently of the rasteriser: analytic
ray-plane intersections, a brute-force per-pixel ray/triangle intersection,
``cv2.projectPoints`` for the lens distortion, hand-built label maps.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from iuv_compare import compare_iuv, read_exr_rgba, uniform_3x3  # noqa: E402
import rasteriser  # noqa: E402
from rasteriser import rasterise_iuv  # noqa: E402

cv2 = pytest.importorskip("cv2")


# --------------------------------------------------------------------------- helpers


def rodrigues(rvec):
    rvec = np.asarray(rvec, dtype=np.float64)
    th = np.linalg.norm(rvec)
    if th == 0:
        return np.eye(3)
    k = rvec / th
    Kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(th) * Kx + (1 - np.cos(th)) * Kx @ Kx


def rigid(rvec, t):
    T = np.eye(4)
    T[:3, :3] = rodrigues(rvec)
    T[:3, 3] = t
    return T


# OpenCV k1, k2, p1, p2, k3: strong barrel distortion.
DIST = np.array([-0.28, 0.09, 0.0012, -0.0016, -0.01])

# A deliberately non-trivial camera pose: geometry is built in the camera
# frame and mapped to world with the inverse, so world_to_camera must be used.
W2C = rigid([0.3, -0.5, 0.2], [0.4, -0.2, 1.5])


def cam_to_world(Xc, w2c=W2C):
    R, t = w2c[:3, :3], w2c[:3, 3]
    return (np.asarray(Xc) - t) @ R  # R^T (X - t), row-vector form


def make_K(fx, fy, cx, cy):
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def geom(vertices_cam, faces, corner_iuv, K, size, w2c=W2C, **extra):
    g = {
        "vertices": cam_to_world(vertices_cam, w2c),
        "faces": np.asarray(faces, dtype=np.int64),
        "corner_iuv": np.asarray(corner_iuv, dtype=np.float64),
        "K": K,
        "world_to_camera": w2c,
        "image_size": np.array(size),
    }
    g.update(extra)
    return g


def quad_mesh(O, a, b, part, n=1, m=1):
    """Planar parametric patch P(s,t) = O + s a + t b, s,t in [0,1] on an n x m grid.

    U = s, V = t at every vertex (so exactly linear in 3D), I = part.
    """
    s, t = np.meshgrid(np.linspace(0, 1, n + 1), np.linspace(0, 1, m + 1), indexing="xy")
    st = np.stack([s.ravel(), t.ravel()], 1)
    V = O + st[:, :1] * a + st[:, 1:] * b
    idx = np.arange((m + 1) * (n + 1)).reshape(m + 1, n + 1)
    q00, q10, q01, q11 = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
    F = np.concatenate([np.stack([q00, q10, q11], 1), np.stack([q00, q11, q01], 1)])
    civ = np.empty((len(F), 3, 3))
    civ[:, :, 0] = part
    civ[:, :, 1] = st[F, 0]
    civ[:, :, 2] = st[F, 1]
    return V, F, civ


def pixel_rays(K, W, H):
    rows, cols = np.mgrid[0:H, 0:W]
    pix = np.stack([cols, rows, np.ones_like(cols)], -1).astype(np.float64)
    return pix @ np.linalg.inv(K).T  # (H,W,3), z = 1


def analytic_plane(K, W, H, O, a, b):
    """Exact (s, t, depth) of the ray through every pixel centre hitting the plane O + s a + t b."""
    d = pixel_rays(K, W, H)
    n = np.cross(a, b)
    lam = (n @ O) / (d @ n)
    X = lam[..., None] * d
    M = np.stack([a, b], 1)  # 3x2
    st = np.linalg.lstsq(M, (X - O).reshape(-1, 3).T, rcond=None)[0].T.reshape(H, W, 2)
    return st[..., 0], st[..., 1], X[..., 2]


# --------------------------------------------------------------------------- (a) planar quads


def test_fronto_parallel_quad_matches_analytic():
    W, H = 64, 48
    K = make_K(40.0, 45.0, 31.3, 22.7)
    Z = 2.0
    x0, x1, y0, y1 = -0.55, 0.71, -0.43, 0.33
    O, a, b = np.array([x0, y0, Z]), np.array([x1 - x0, 0, 0]), np.array([0, y1 - y0, 0])
    V, F, civ = quad_mesh(O, a, b, part=7)
    r = rasterise_iuv(geom(V, F, civ, K, (W, H)))

    cols = np.arange(W)[None, :]
    rows = np.arange(H)[:, None]
    px0, px1 = 40.0 * x0 / Z + 31.3, 40.0 * x1 / Z + 31.3
    py0, py1 = 45.0 * y0 / Z + 22.7, 45.0 * y1 / Z + 22.7
    expect = (cols >= px0) & (cols <= px1) & (rows >= py0) & (rows <= py1)
    assert expect.sum() > 400
    np.testing.assert_array_equal(r["mask"], expect)
    np.testing.assert_array_equal(r["I"], np.where(expect, 7, 0))
    assert set(np.unique(r["face"][expect])) == {0, 1}
    assert np.all(r["face"][~expect] == -1)

    Xp = (cols - 31.3) / 40.0 * Z
    Yp = (rows - 22.7) / 45.0 * Z
    U_exp = np.broadcast_to((Xp - x0) / (x1 - x0), (H, W))
    V_exp = np.broadcast_to((Yp - y0) / (y1 - y0), (H, W))
    np.testing.assert_allclose(r["U"][expect], U_exp[expect], atol=1e-9)
    np.testing.assert_allclose(r["V"][expect], V_exp[expect], atol=1e-9)
    np.testing.assert_allclose(r["depth"][expect], Z, rtol=1e-12)
    assert np.all(np.isinf(r["depth"][~expect]))
    assert np.all(r["U"][~expect] == 0) and np.all(r["V"][~expect] == 0)


def _tilted_setup():
    W, H = 80, 60
    K = make_K(70.0, 70.0, 39.5, 29.5)
    # Strongly tilted plane: depth goes from ~1.2 to ~4 across the patch.
    O = np.array([-0.6, -0.45, 1.2])
    a = np.array([1.9, 0.25, 2.8])
    b = np.array([-0.2, 1.3, 0.4])
    return W, H, K, O, a, b


def test_tilted_plane_perspective_correct():
    W, H, K, O, a, b = _tilted_setup()
    V, F, civ = quad_mesh(O, a, b, part=3)
    r = rasterise_iuv(geom(V, F, civ, K, (W, H)))
    s, t, z = analytic_plane(K, W, H, O, a, b)
    eps = 1e-9
    inside = (s > eps) & (s < 1 - eps) & (t > eps) & (t < 1 - eps) & (z > 0)
    outside = (s < -eps) | (s > 1 + eps) | (t < -eps) | (t > 1 + eps) | (z <= 0)
    assert inside.sum() > 1000 and outside.sum() > 500
    assert np.all(r["mask"][inside]) and not np.any(r["mask"][outside])
    np.testing.assert_allclose(r["U"][inside], s[inside], atol=1e-9)
    np.testing.assert_allclose(r["V"][inside], t[inside], atol=1e-9)
    np.testing.assert_allclose(r["depth"][inside], z[inside], rtol=1e-9)

    # Sensitivity: screen-space (affine) interpolation would be far off here,
    # so the 1e-9 tolerance above really tests perspective correction.
    f0 = r["face"] == 0
    xy = np.stack(np.nonzero(f0)[::-1], 1).astype(np.float64)
    Pc = V[F[0]]
    P2 = (Pc @ K.T)[:, :2] / Pc[:, 2:3]
    T = np.array([P2[0] - P2[2], P2[1] - P2[2]]).T
    l01 = np.linalg.solve(T, (xy - P2[2]).T).T
    bary = np.column_stack([l01, 1 - l01.sum(1)])
    U_affine = bary @ civ[0, :, 1]
    assert np.max(np.abs(U_affine - s[f0])) > 0.02


def test_dense_and_irregular_meshes_are_watertight():
    # (1) A fronto-parallel grid whose vertices project exactly onto pixel
    # centres and half-pixels: many edges (incl. diagonals) pass exactly
    # through pixel centres. Every pixel in the closed rectangle must be hit.
    W, H = 50, 40
    K = make_K(20.0, 20.0, 0.0, 0.0)
    Z = 1.0
    O = np.array([5.0, 4.0, 20.0]) * Z / 20.0
    a = np.array([36.0, 0, 0]) / 20.0
    b = np.array([0, 30.0, 0]) / 20.0
    V, F, civ = quad_mesh(O, a, b, part=1, n=24, m=20)  # steps of 1.5 px
    r = rasterise_iuv(geom(V, F, civ, K, (W, H), w2c=np.eye(4)))
    expect = np.zeros((H, W), bool)
    expect[4:35, 5:42] = True
    np.testing.assert_array_equal(r["mask"], expect)
    rows, cols = np.mgrid[0:H, 0:W]
    np.testing.assert_allclose(r["U"][expect], ((cols - 5) / 36.0)[expect], atol=1e-12)
    np.testing.assert_allclose(r["V"][expect], ((rows - 4) / 30.0)[expect], atol=1e-12)

    # (2) An irregular Delaunay triangulation of a tilted square: the union
    # must cover the analytic projection with no holes, U,V exact everywhere.
    spatial = pytest.importorskip("scipy.spatial")
    rng = np.random.default_rng(1)
    W, H, K, O, a, b = _tilted_setup()
    st = np.concatenate([[[0, 0], [1, 0], [0, 1], [1, 1]], rng.random((400, 2))])
    edges = np.linspace(0, 1, 12)[1:-1]
    st = np.concatenate([st, np.stack([edges, 0 * edges], 1), np.stack([edges, 0 * edges + 1], 1),
                         np.stack([0 * edges, edges], 1), np.stack([0 * edges + 1, edges], 1)])
    tri = spatial.Delaunay(st).simplices
    Vt = O + st[:, :1] * a + st[:, 1:] * b
    civ = np.empty((len(tri), 3, 3))
    civ[:, :, 0] = 5
    civ[:, :, 1] = st[tri, 0]
    civ[:, :, 2] = st[tri, 1]
    r = rasterise_iuv(geom(Vt, tri, civ, K, (W, H)))
    s, t, _ = analytic_plane(K, W, H, O, a, b)
    eps = 1e-9
    inside = (s > eps) & (s < 1 - eps) & (t > eps) & (t < 1 - eps)
    outside = (s < -eps) | (s > 1 + eps) | (t < -eps) | (t > 1 + eps)
    assert np.all(r["mask"][inside]), "hole in a watertight mesh"
    assert not np.any(r["mask"][outside])
    np.testing.assert_allclose(r["U"][inside], s[inside], atol=1e-9)
    np.testing.assert_allclose(r["V"][inside], t[inside], atol=1e-9)


# --------------------------------------------------------------------------- (b) visibility


def test_nearer_quad_wins_in_any_order():
    W, H = 60, 50
    K = make_K(50.0, 50.0, 29.5, 24.5)
    far = quad_mesh(np.array([-0.8, -0.7, 3.0]), np.array([1.4, 0, 0]), np.array([0, 1.4, 0]), part=2)
    near = quad_mesh(np.array([-0.2, -0.3, 1.5]), np.array([0.9, 0, 0.3]), np.array([0, 0.8, 0]), part=9)
    for first, second in ((far, near), (near, far)):
        V = np.concatenate([first[0], second[0]])
        F = np.concatenate([first[1], second[1] + len(first[0])])
        civ = np.concatenate([first[2], second[2]])
        pof = np.array([0] * len(first[1]) + [1] * len(second[1]))
        r = rasterise_iuv(geom(V, F, civ, K, (W, H), person_of_face=pof))

        sf, tf, zf = analytic_plane(K, W, H, *(np.array([-0.8, -0.7, 3.0]), np.array([1.4, 0, 0]), np.array([0, 1.4, 0])))
        sn, tn, zn = analytic_plane(K, W, H, np.array([-0.2, -0.3, 1.5]), np.array([0.9, 0, 0.3]), np.array([0, 0.8, 0]))
        e = 1e-9
        in_f = (sf > e) & (sf < 1 - e) & (tf > e) & (tf < 1 - e)
        in_n = (sn > e) & (sn < 1 - e) & (tn > e) & (tn < 1 - e)
        both = in_f & in_n
        assert both.sum() > 200 and (in_f & ~in_n).sum() > 100
        assert np.all(r["I"][in_n] == 9)
        assert np.all(r["I"][in_f & ~in_n & ((sn < -e) | (sn > 1 + e) | (tn < -e) | (tn > 1 + e))] == 2)
        np.testing.assert_allclose(r["U"][in_n], sn[in_n], atol=1e-9)
        np.testing.assert_allclose(r["depth"][both], zn[both], rtol=1e-9)
        near_person = 1 if first is far else 0
        assert np.all(r["person"][in_n] == near_person)
        assert np.all(r["person"][~r["mask"]] == -1)


def test_faces_behind_or_crossing_the_camera_are_skipped():
    W, H = 40, 40
    K = make_K(30.0, 30.0, 19.5, 19.5)
    # Entirely behind the camera: a naive projection would flip it into view.
    behind = np.array([[-0.5, -0.5, -2.0], [0.5, -0.5, -2.0], [0.0, 0.6, -2.0]])
    # Straddling the camera plane.
    straddle = np.array([[-0.5, -0.2, 1.0], [0.5, -0.2, 1.0], [0.0, 0.3, -1.0]])
    ok = np.array([[-0.3, -0.3, 2.0], [0.3, -0.3, 2.0], [0.0, 0.3, 2.0]])
    V = np.concatenate([behind, straddle, ok])
    F = np.arange(9).reshape(3, 3)
    civ = np.zeros((3, 3, 3))
    civ[:, :, 0] = np.array([4, 6, 8])[:, None]
    r = rasterise_iuv(geom(V, F, civ, K, (W, H)))
    assert set(np.unique(r["I"])) == {0, 8}
    assert r["mask"].sum() > 30


def test_matches_bruteforce_ray_casting_on_random_soup():
    """Brute-force Moller-Trumbore over every (pixel, triangle) pair."""
    rng = np.random.default_rng(7)
    W, H = 48, 36
    K = make_K(40.0, 42.0, 23.2, 17.9)
    nt = 80
    centres = np.column_stack([rng.uniform(-0.8, 0.8, nt), rng.uniform(-0.6, 0.6, nt), rng.uniform(1.5, 4.0, nt)])
    V = (centres[:, None, :] + rng.normal(scale=0.35, size=(nt, 3, 3))).reshape(-1, 3)
    F = np.arange(3 * nt).reshape(nt, 3)
    civ = np.empty((nt, 3, 3))
    civ[:, :, 0] = rng.integers(1, 25, nt)[:, None]
    civ[:, :, 1:] = rng.random((nt, 3, 2))
    r = rasterise_iuv(geom(V, F, civ, K, (W, H)))

    d = pixel_rays(K, W, H).reshape(-1, 1, 3)  # rays from the origin (camera frame)
    P0, P1, P2 = V[F[:, 0]], V[F[:, 1]], V[F[:, 2]]
    e1, e2 = P1 - P0, P2 - P0
    pvec = np.cross(d, e2[None])
    det = np.einsum("ptk,tk->pt", pvec, e1)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / det
        tvec = -P0[None]
        u = np.einsum("ptk,ptk->pt", np.broadcast_to(tvec, pvec.shape), pvec) * inv
        qvec = np.cross(np.broadcast_to(tvec, pvec.shape), e1[None])
        v = np.einsum("pk,ptk->pt", d[:, 0], qvec) * inv
        lam = np.einsum("tk,ptk->pt", e2, qvec) * inv  # ray parameter == camera z (d_z = 1)
    hit = (u >= 0) & (v >= 0) & (u + v <= 1) & (lam > 0) & (np.abs(det) > 1e-14)
    zz = np.where(hit, lam, np.inf)
    best = zz.argmin(1)
    zbest = zz[np.arange(len(zz)), best]
    fg = np.isfinite(zbest)
    face = np.where(fg, best, -1)
    # Ambiguous pixels: ray within 1e-7 of a triangle edge, or a near-tie in depth.
    margin = np.min(np.stack([u, v, 1 - u - v]), 0)
    near_edge = np.any((np.abs(margin) < 1e-7) & (lam > 0), 1)
    zs = np.sort(zz, 1)
    with np.errstate(invalid="ignore"):
        near_tie = np.isfinite(zs[:, 1]) & (np.abs(zs[:, 1] - zs[:, 0]) < 1e-9)
    ok = ~(near_edge | near_tie)
    assert ok.mean() > 0.95 and fg.mean() > 0.3

    rf = r["face"].ravel()
    np.testing.assert_array_equal(rf[ok], face[ok])
    sel = ok & fg
    b = np.stack([1 - u - v, u, v], -1)[np.arange(len(u)), best][sel]
    c = civ[best[sel]]
    np.testing.assert_allclose(r["U"].ravel()[sel], np.einsum("mk,mk->m", b, c[:, :, 1]), atol=1e-9)
    np.testing.assert_allclose(r["V"].ravel()[sel], np.einsum("mk,mk->m", b, c[:, :, 2]), atol=1e-9)
    np.testing.assert_allclose(r["depth"].ravel()[sel], zbest[sel], rtol=1e-9)
    np.testing.assert_array_equal(r["I"].ravel()[sel], c[:, 0, 0].astype(int))


@pytest.mark.parametrize("with_dist", [False, True])
def test_chunking_does_not_change_the_result(monkeypatch, with_dist):
    """Depth resolution across chunk boundaries: tiny chunks == one chunk."""
    rng = np.random.default_rng(11)
    W, H = 40, 32
    K = make_K(35.0, 35.0, 19.6, 15.3)
    nt = 60
    centres = np.column_stack([rng.uniform(-0.4, 0.4, nt), rng.uniform(-0.3, 0.3, nt), rng.uniform(1.5, 3.0, nt)])
    V = (centres[:, None, :] + rng.normal(scale=0.4, size=(nt, 3, 3))).reshape(-1, 3)
    F = np.arange(3 * nt).reshape(nt, 3)
    civ = np.empty((nt, 3, 3))
    civ[:, :, 0] = rng.integers(1, 25, nt)[:, None]
    civ[:, :, 1:] = rng.random((nt, 3, 2))
    extra = {"dist_coeffs": DIST} if with_dist else {}
    g = geom(V, F, civ, K, (W, H), **extra)
    whole = rasterise_iuv(g)
    for chunk in (1, 37, 500):
        monkeypatch.setattr(rasteriser, "_CHUNK_PAIRS", chunk)
        part = rasterise_iuv(g)
        for k in ("I", "U", "V", "face", "depth", "mask"):
            np.testing.assert_array_equal(part[k], whole[k], err_msg=f"{k} chunk={chunk}")
    # The scene really has overlaps for the z-buffer to resolve.
    cover = sum(rasterise_iuv(geom(V, F[i : i + 1], civ[i : i + 1], K, (W, H), **extra))["mask"].astype(int) for i in range(nt))
    assert (cover >= 2).sum() > 200


# --------------------------------------------------------------------------- (c) lens distortion




def _distorted_boundary_distance(K, dist, w2c, O, a, b, W, H, n=4000):
    """Signed distance (px) of every pixel centre to the distorted image of the quad's outline."""
    tt = np.linspace(0, 1, n, endpoint=False)
    st = np.concatenate([np.stack([tt, 0 * tt], 1), np.stack([1 + 0 * tt, tt], 1),
                         np.stack([1 - tt, 1 + 0 * tt], 1), np.stack([0 * tt, 1 - tt], 1)])
    Xc = O + st[:, :1] * a + st[:, 1:] * b
    rvec, _ = cv2.Rodrigues(w2c[:3, :3])
    poly, _ = cv2.projectPoints(cam_to_world(Xc, w2c).reshape(-1, 1, 3), rvec, w2c[:3, 3], K, dist)
    poly = poly.reshape(-1, 2).astype(np.float32)
    rows, cols = np.mgrid[0:H, 0:W]
    return np.array([cv2.pointPolygonTest(poly, (float(c), float(r_)), True) for c, r_ in zip(cols.ravel(), rows.ravel())]).reshape(H, W)


@pytest.mark.parametrize("exact", [True, False])
def test_distortion_matches_opencv_projection(exact):
    W, H = 80, 60
    K = make_K(55.0, 55.0, 40.3, 29.1)
    O, a, b = np.array([-1.1, -0.85, 1.5]), np.array([2.3, 0.1, 0.9]), np.array([-0.1, 1.7, 0.3])
    V, F, civ = quad_mesh(O, a, b, part=4, n=3, m=2)
    g = geom(V, F, civ, K, (W, H), dist_coeffs=DIST)
    r = rasterise_iuv(g, exact_undistort=exact)
    r0 = rasterise_iuv(geom(V, F, civ, K, (W, H)))
    # The distortion is strong enough to matter.
    assert (r["mask"] != r0["mask"]).sum() > 100

    # Every foreground pixel shows a plane point that cv2.projectPoints maps
    # (through the lens distortion) back onto that pixel's centre.
    m = r["mask"]
    rows, cols = np.nonzero(m)
    Xc = O + r["U"][m][:, None] * a + r["V"][m][:, None] * b
    rvec, _ = cv2.Rodrigues(W2C[:3, :3])
    proj, _ = cv2.projectPoints(cam_to_world(Xc).reshape(-1, 1, 3), rvec, W2C[:3, 3], K, DIST)
    err = np.abs(proj.reshape(-1, 2) - np.column_stack([cols, rows])).max(1)
    tol = 1e-6 if exact else 0.05  # OpenCV's default 5 undistortion iterations are approximate
    assert err.max() < tol, err.max()
    np.testing.assert_allclose(r["depth"][m], Xc[:, 2], rtol=1e-9)

    # Coverage equals the distorted outline (pixels well away from it).
    dist_px = _distorted_boundary_distance(K, DIST, W2C, O, a, b, W, H)
    margin = 1e-3 if exact else 0.05
    assert np.all(m[dist_px > margin]) and not np.any(m[dist_px < -margin])
    assert (dist_px > margin).sum() > 1000

    # All-zero coefficients are the same as none.
    rz = rasterise_iuv(geom(V, F, civ, K, (W, H), dist_coeffs=np.zeros(5)))
    for k in ("I", "U", "V", "face"):
        np.testing.assert_array_equal(rz[k], r0[k])


# --------------------------------------------------------------------------- (d) occlusion


def test_occlusion_mask_pixels_are_background():
    W, H, K, O, a, b = _tilted_setup()
    V, F, civ = quad_mesh(O, a, b, part=11, n=4, m=4)
    r0 = rasterise_iuv(geom(V, F, civ, K, (W, H)))
    occ = np.zeros((H, W), bool)
    occ[10:35, 20:50] = True
    occ[np.random.default_rng(3).random((H, W)) < 0.1] = True
    r = rasterise_iuv(geom(V, F, civ, K, (W, H), occlusion_mask=occ))
    assert (occ & r0["mask"]).sum() > 300
    assert not r["mask"][occ].any()
    assert np.all(r["I"][occ] == 0) and np.all(r["face"][occ] == -1)
    assert np.all(r["U"][occ] == 0) and np.all(r["V"][occ] == 0)
    for k in ("I", "U", "V", "face", "mask"):
        np.testing.assert_array_equal(r[k][~occ], r0[k][~occ])


# --------------------------------------------------------------------------- (e) compare_iuv / EXR


def _two_part_ref():
    W, H, K, O, a, b = _tilted_setup()
    V1, F1, c1 = quad_mesh(O, a * 0.5, b, part=3, n=4, m=4)
    V2, F2, c2 = quad_mesh(O + 0.5 * a, a * 0.5, b, part=14, n=4, m=4)
    V = np.concatenate([V1, V2])
    F = np.concatenate([F1, F2 + len(V1)])
    return rasterise_iuv(geom(V, F, np.concatenate([c1, c2]), K, (W, H)))


def test_compare_iuv_identical_and_corrupted():
    ref = _two_part_ref()
    I = ref["I"].astype(np.float32)
    U = ref["U"].astype(np.float32)
    V = ref["V"].astype(np.float32)
    assert set(np.unique(ref["I"])) == {0, 3, 14}

    res = compare_iuv(I, U, V, ref)
    assert res["agreement"] == 1.0
    assert res["median_uv_error"] < 1e-6
    assert res["num_pixels"] > 0.8 * I.size

    # Corrupt a 10x10 block well inside part 3: its 8x8 interior is uniform
    # in both maps with a different label, so exactly 64 pixels disagree.
    rows, cols = np.nonzero(uniform_3x3(ref["I"]) & (ref["I"] == 3))
    r0, c0 = int(np.median(rows)) - 5, int(np.median(cols)) - 5
    assert np.all(ref["I"][r0 - 1 : r0 + 11, c0 - 1 : c0 + 11] == 3)
    Ic = I.copy()
    Ic[r0 : r0 + 10, c0 : c0 + 10] = 9
    res = compare_iuv(Ic, U, V, ref)
    assert res["num_disagree"] == 64
    assert res["agreement"] == pytest.approx(1 - 64 / res["num_pixels"])
    assert res["agreement"] < 1.0

    # Boundary pixels are excluded: a one-pixel shift of the label map
    # changes only boundary pixels, so agreement stays 1.
    res = compare_iuv(np.roll(I, 1, axis=1), U, V, ref)
    assert res["agreement"] == 1.0

    # UV corruption shows up in the median error.
    Uc = np.where(ref["mask"], U + 0.1, U).astype(np.float32)
    res = compare_iuv(I, Uc, V, ref)
    assert res["agreement"] == 1.0
    assert res["median_uv_error"] == pytest.approx(0.1, abs=1e-5)
    # Background treated as a label: dropping a foreground block is detected.
    Ib = I.copy()
    Ib[r0 : r0 + 10, c0 : c0 + 10] = 0
    assert compare_iuv(Ib, U, V, ref)["num_disagree"] == 64


@pytest.mark.parametrize("layout", ["merged", "separate", "prefixed"])
def test_read_exr_rgba_roundtrip(tmp_path, layout):
    OpenEXR = pytest.importorskip("OpenEXR")
    ref = _two_part_ref()
    rgba = np.stack([ref["I"], ref["U"], ref["V"], ref["mask"]], -1).astype(np.float32)
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    if layout == "merged":
        chans = {"RGBA": rgba}
    elif layout == "separate":
        chans = {c: np.ascontiguousarray(rgba[..., i]) for i, c in enumerate("RGBA")}
    else:
        chans = {f"ViewLayer.Combined.{c}": np.ascontiguousarray(rgba[..., i]) for i, c in enumerate("RGBA")}
    path = tmp_path / "x.exr"
    OpenEXR.File(header, chans).write(str(path))
    back = read_exr_rgba(path)
    assert back.shape == rgba.shape and back.dtype == np.float32
    np.testing.assert_array_equal(back, rgba)
    res = compare_iuv(back[..., 0], back[..., 1], back[..., 2], ref)
    assert res["agreement"] == 1.0 and res["median_uv_error"] < 1e-6


# --------------------------------------------------------------------------- performance


def _uv_sphere(nu, nv, c, rad):
    th = np.linspace(0, np.pi, nv + 1)
    ph = np.linspace(0, 2 * np.pi, nu + 1)
    T, P = np.meshgrid(th, ph, indexing="ij")
    V = np.stack([rad * np.sin(T) * np.cos(P), rad * np.cos(T), rad * np.sin(T) * np.sin(P)], -1).reshape(-1, 3) + c
    idx = np.arange((nv + 1) * (nu + 1)).reshape(nv + 1, nu + 1)
    a, b_, c_, d = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
    return V, np.concatenate([np.stack([a, b_, d], 1), np.stack([a, d, c_], 1)])


def test_30k_triangles_512_is_fast():
    Vs, Fs, off = [], [], 0
    for i in range(3):
        V, F = _uv_sphere(100, 50, np.array([(i - 1) * 0.6, 0.1 * i, 3 + 0.3 * i]), 0.45)
        Vs.append(V)
        Fs.append(F + off)
        off += len(V)
    V, F = np.concatenate(Vs), np.concatenate(Fs)
    assert len(F) == 30000
    civ = np.zeros((len(F), 3, 3))
    civ[:, :, 0] = (np.arange(len(F)) % 24 + 1)[:, None]
    civ[:, :, 1:] = np.random.default_rng(0).random((len(F), 3, 2))
    K = make_K(600.0, 600.0, 255.5, 255.5)
    g = geom(V, F, civ, K, (512, 512))
    t0 = time.perf_counter()
    r = rasterise_iuv(g)
    dt = time.perf_counter() - t0
    assert r["mask"].mean() > 0.15
    assert dt < 5.0, dt
    # Closed surfaces: the silhouettes have no holes (all pixels enclosed by
    # the foreground are foreground).
    ndimage = pytest.importorskip("scipy.ndimage")
    assert np.array_equal(ndimage.binary_fill_holes(r["mask"]), r["mask"])


def test_accepts_npz_geometry(tmp_path):
    W, H, K, O, a, b = _tilted_setup()
    V, F, civ = quad_mesh(O, a, b, part=6, n=3, m=3)
    occ = np.zeros((H, W), bool)
    occ[5:15, 5:60] = True
    g = geom(V, F.astype(np.int32), civ.astype(np.float32), K, (W, H), dist_coeffs=DIST * 0.5, occlusion_mask=occ,
             person_of_face=np.zeros(len(F), np.int32))
    np.savez_compressed(tmp_path / "g.npz", **g)
    with np.load(tmp_path / "g.npz") as z:
        r = rasterise_iuv(z)
    r0 = rasterise_iuv(g)
    for k in ("I", "U", "V", "face", "mask", "person"):
        np.testing.assert_array_equal(r[k], r0[k])
    assert r["mask"].sum() > 1000 and not r["mask"][occ].any()
