"""Lens distortion as a post-render warp (OpenCV's k1, k2, p1, p2, k3 model).

Blender renders an ideal pinhole image with intrinsics ``K``. A real lens maps the ideal
(normalised) image point ``x = ((u - cx) / fx, (v - cy) / fy)`` to the distorted point

    r2 = x^2 + y^2,   radial = 1 + k1 r2 + k2 r2^2 + k3 r2^3
    xd = x radial + 2 p1 x y + p2 (r2 + 2 x^2)
    yd = y radial + p1 (r2 + 2 y^2) + 2 p2 x y

and then through the same ``K`` back to pixels (``cv2.projectPoints``' model). The output
image therefore shows, at output pixel ``p``, what the pinhole render saw at
``undistort(p)``: that is how the test rasteriser (``tests/rasteriser.py``) defines it, and
the warp maps built here are exactly ``undistort(p)`` for every output pixel centre.

Exactness: ``undistort`` starts from ``cv2.undistortPoints`` (5 fixed-point iterations,
approximate to ~1e-2 px under strong distortion) and is polished with Newton steps on the
forward model above in float64, so ``distort(undistort(p)) == p`` to ~1e-8 px: the same
points as the rasteriser's ``exact_undistort=True`` (``cv2.undistortPointsIter`` run to
convergence), up to float32 storage of the maps, at a fraction of its cost.
Output pixels that have no pre-image on the same branch of the model as the image centre
(a too-strong distortion folds over) are marked invalid (map value -1e6): they come out as
background in the labels and as border in the image.

Images are resampled bilinearly. Labels must not be blended (two parts, or body and
background, never mix), and the nearest rendered pixel is not exact either: it belongs to a
surface point up to ~0.7 px (in the render) away from where the output pixel looks, a U, V
error of ~1e-3. So the pipeline looks every label up at its exact surface point
(:mod:`.lens_exact`): the camera ray through ``undistort(p)`` is cast on the posed scene
mesh, starting from the triangles the rendered pixels around it show, and each pass
recomputes its layers at the hit (U, V, depth, normal, face and barycentrics, part,
person), so that the median U, V error against the test rasteriser is ~1e-7.

:func:`distort_layers` (and :func:`distort_labels`) is the rule without geometry, and the
lookup's fallback where it finds no triangle (rare: folds, points far beyond the frame):
each output pixel takes the *nearest* rendered pixel
(``floor(undistort(p) + 0.5)``) and copies its I, U, V, alpha and person index together, so
every U, V stays an exact chart value of a real surface point. Away from part boundaries I
is exact either way.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import cv2
import numpy as np

from ..core.label_maps import IUVMaps

__all__ = [
    "distortion_maps",
    "distort_image",
    "distort_labels",
    "distort_layers",
    "distort_mask",
    "distort_points",
    "undistort_points",
    "draw_distortion",
    "is_identity",
    "INVALID",
]

# Map value for output pixels without a pre-image: far outside any image.
INVALID = -1.0e6
# Newton polish: iterations and the residual (normalised units) counted as converged.
_NEWTON_STEPS = 12
_RESIDUAL_TOL = 1e-10


def _coeffs(dist_coeffs: Any) -> np.ndarray:
    """Five float64 coefficients k1, k2, p1, p2, k3 (shorter inputs are zero-padded)."""
    d = np.zeros(5)
    if dist_coeffs is None:
        return d
    given = np.asarray(dist_coeffs, dtype=np.float64).ravel()
    if given.size > 5:
        if np.any(given[5:]):
            raise ValueError(f"only k1, k2, p1, p2, k3 are supported, got {given.size} coefficients")
        given = given[:5]
    d[: given.size] = given
    return d


def is_identity(dist_coeffs: Any) -> bool:
    """True when the coefficients are absent or all zero (the warp is then skipped)."""
    return not np.any(_coeffs(dist_coeffs))


def _intrinsics(K: Any) -> tuple[float, float, float, float]:
    K = np.asarray(K, dtype=np.float64).reshape(3, 3)
    if K[0, 1] != 0.0:
        raise ValueError("camera matrices with skew are not supported (OpenCV's model ignores it)")
    return float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2])


def _forward(x: np.ndarray, y: np.ndarray, d: np.ndarray):
    """Distorted normalised coordinates and the Jacobian of the model at (x, y)."""
    k1, k2, p1, p2, k3 = d
    r2 = x * x + y * y
    radial = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))
    dradial = k1 + r2 * (2.0 * k2 + 3.0 * k3 * r2)  # d radial / d r2
    xd = x * radial + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x)
    yd = y * radial + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y
    jxx = radial + 2.0 * x * x * dradial + 2.0 * p1 * y + 6.0 * p2 * x
    jxy = 2.0 * x * y * dradial + 2.0 * p1 * x + 2.0 * p2 * y
    jyx = 2.0 * x * y * dradial + 2.0 * p1 * x + 2.0 * p2 * y
    jyy = radial + 2.0 * y * y * dradial + 6.0 * p1 * y + 2.0 * p2 * x
    return xd, yd, jxx, jxy, jyx, jyy


def undistort_points(xy: Any, K: Any, dist_coeffs: Any) -> tuple[np.ndarray, np.ndarray]:
    """Exact inverse of :func:`distort_points`.

    Returns ``(ideal_xy (N, 2) float64, valid (N,) bool)``; invalid points (no pre-image on
    the image centre's branch of the model) hold NaN.
    """
    pts = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    d = _coeffs(dist_coeffs)
    if not np.any(d) or pts.size == 0:
        return pts.copy(), np.isfinite(pts).all(axis=1)
    fx, fy, cx, cy = _intrinsics(K)
    Kd = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    # OpenCV's 5 fixed-point iterations as the start (fast, ~1e-2 px), then Newton to 1e-10.
    start = cv2.undistortPoints(pts.reshape(-1, 1, 2), Kd, d).reshape(-1, 2)
    x, y = start[:, 0].astype(np.float64), start[:, 1].astype(np.float64)
    tx, ty = (pts[:, 0] - cx) / fx, (pts[:, 1] - cy) / fy
    tol = _RESIDUAL_TOL * (1.0 + np.abs(tx) + np.abs(ty))
    x, y = x.copy(), y.copy()
    active = np.arange(x.size)
    with np.errstate(all="ignore"):
        for _ in range(_NEWTON_STEPS):
            xa, ya = x[active], y[active]
            xd, yd, jxx, jxy, jyx, jyy = _forward(xa, ya, d)
            ex, ey = tx[active] - xd, ty[active] - yd
            todo = ~(np.maximum(np.abs(ex), np.abs(ey)) < tol[active] * 1e-2)  # NaN stays to do
            if not todo.any():
                break
            active, xa, ya, ex, ey = active[todo], xa[todo], ya[todo], ex[todo], ey[todo]
            jxx, jxy, jyx, jyy = jxx[todo], jxy[todo], jyx[todo], jyy[todo]
            det = jxx * jyy - jxy * jyx
            ok = np.isfinite(det) & (np.abs(det) > 1e-12)
            safe = np.where(ok, det, 1.0)
            x[active] = np.where(ok, xa + (jyy * ex - jxy * ey) / safe, xa)
            y[active] = np.where(ok, ya + (jxx * ey - jyx * ex) / safe, ya)
        xd, yd, jxx, jxy, jyx, jyy = _forward(x, y, d)
        residual = np.maximum(np.abs(tx - xd), np.abs(ty - yd))
        det = jxx * jyy - jxy * jyx
        valid = np.isfinite(residual) & (residual < tol) & (det > 0)
    out = np.column_stack([x * fx + cx, y * fy + cy])
    out[~valid] = np.nan
    return out, valid


def distort_points(xy: Any, K: Any, dist_coeffs: Any) -> np.ndarray:
    """Ideal (pinhole) pixel positions (N, 2) -> where the distorted image shows them.

    The same result as ``cv2.projectPoints`` of the 3D points with these ``K`` and
    coefficients (used for keypoints, boxes and any other 2D annotation of the render).
    Non-finite inputs stay non-finite.
    """
    pts = np.asarray(xy, dtype=np.float64)
    shape = pts.shape
    pts = pts.reshape(-1, 2)
    d = _coeffs(dist_coeffs)
    if not np.any(d):
        return pts.reshape(shape).copy()
    fx, fy, cx, cy = _intrinsics(K)
    xd, yd, *_ = _forward((pts[:, 0] - cx) / fx, (pts[:, 1] - cy) / fy, d)
    return np.column_stack([xd * fx + cx, yd * fy + cy]).reshape(shape)


def distortion_maps(K: Any, dist_coeffs: Any, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """``(map_x, map_y)``, (H, W) float32: output pixel p samples the pinhole render at these.

    ``map[row, col] = undistort((col, row))`` exactly (see the module doc); invalid pixels
    hold :data:`INVALID`. All-zero coefficients give the identity grid.
    """
    rows, cols = np.mgrid[0:height, 0:width]
    pts = np.column_stack([cols.ravel(), rows.ravel()]).astype(np.float64)
    und, valid = undistort_points(pts, K, dist_coeffs)
    und[~valid] = INVALID
    map_x = und[:, 0].reshape(height, width).astype(np.float32)
    map_y = und[:, 1].reshape(height, width).astype(np.float32)
    return map_x, map_y


def distort_image(image: np.ndarray, maps: tuple[np.ndarray, np.ndarray], border: str = "reflect",
                  value: float | tuple = 0) -> np.ndarray:
    """Bilinear warp of an (H, W[, C]) image with :func:`distortion_maps`; dtype kept.

    ``border`` is ``"reflect"`` (barrel corners that look past the rendered frame mirror
    the image; fine for a backdrop) or ``"constant"`` (``value``; use 0 on a straight-alpha
    RGBA beauty pass to keep the person's coverage exact, then composite).
    """
    map_x, map_y = maps
    modes = {"reflect": cv2.BORDER_REFLECT_101, "constant": cv2.BORDER_CONSTANT, "replicate": cv2.BORDER_REPLICATE}
    if border not in modes:
        raise ValueError(f"border must be one of {sorted(modes)}, got {border!r}")
    mode = modes[border]
    if border != "constant":
        # Invalid pixels still go to the constant value rather than a reflected guess.
        invalid = map_x <= INVALID / 2
    out = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=mode,
                    borderValue=value if isinstance(value, tuple) else (value,) * 4)
    if border != "constant" and invalid.any():
        out[invalid] = value
    return out


def _nearest_source(maps: tuple[np.ndarray, np.ndarray], src_shape: tuple[int, int]):
    """Flat index of the nearest rendered pixel per output pixel, and whether it exists."""
    map_x, map_y = maps
    h, w = src_shape
    with np.errstate(invalid="ignore"):
        col = np.floor(map_x.astype(np.float64) + 0.5)
        row = np.floor(map_y.astype(np.float64) + 0.5)
        inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
    flat = np.where(inside, row * w + col, 0).astype(np.int64)
    return flat, inside


def distort_mask(mask: np.ndarray, maps: tuple[np.ndarray, np.ndarray], fill: Any = 0) -> np.ndarray:
    """Nearest-neighbour warp of any (H, W) per-pixel map (masks, label images)."""
    mask = np.asarray(mask)
    flat, inside = _nearest_source(maps, mask.shape[:2])
    out = mask.reshape(-1)[flat.ravel()].reshape(flat.shape)
    return np.where(inside, out, np.asarray(fill, dtype=mask.dtype))


def distort_layers(layers: Mapping[str, np.ndarray], rules: Mapping[str, str],
                   maps: tuple[np.ndarray, np.ndarray]) -> dict[str, np.ndarray]:
    """Warp a sample's named per-pixel layers, each by its resampling rule (``passes.base``).

    ``linear`` layers (the photograph) are warped bilinearly (:func:`distort_image`).
    ``nearest`` and ``exact`` layers all take the value of the same nearest rendered pixel
    (see the module doc), so one output pixel's part, U, V, coverage and person all belong to
    one surface point and background stays exactly 0; output pixels that look outside the
    render are background. (With the posed scene, :func:`.lens_exact.exact_distort_layers`
    recomputes every label at the pixel's exact surface point and uses this only where it finds
    none.) ``vector`` layers need the warp's Jacobian and are refused until a pass brings one.
    """
    out: dict[str, np.ndarray] = {}
    nearest = None
    for name, layer in layers.items():
        rule = rules[name]
        if rule == "linear":
            out[name] = distort_image(layer, maps)
            continue
        if rule not in ("nearest", "exact"):
            raise NotImplementedError(f"layer {name!r}: no lens resampling for rule {rule!r} yet")
        if nearest is None:
            nearest = _nearest_source(maps, np.asarray(layer).shape[:2])
        flat, inside = nearest
        a = np.asarray(layer)
        taken = a.reshape(flat.size, *a.shape[2:])[flat.ravel()].reshape(flat.shape + a.shape[2:])
        keep = inside.reshape(inside.shape + (1,) * (a.ndim - 2))
        out[name] = np.where(keep, taken, np.zeros((), dtype=a.dtype))
    return out


def distort_labels(labels: IUVMaps, maps: tuple[np.ndarray, np.ndarray]) -> IUVMaps:
    """Nearest-neighbour warp of the decoded IUV pass (see the module doc for why).

    I, U, V, alpha and the person index all come from the same nearest rendered pixel, so
    every output U, V is the exact chart value of a real surface point and background
    stays exactly 0. Output pixels looking outside the render are background.
    """
    layers = {"I": labels.I, "U": labels.U, "V": labels.V, "alpha": labels.alpha}
    if labels.person_index is not None:
        layers["person_index"] = labels.person_index
    warped = distort_layers(layers, {name: "nearest" for name in layers}, maps)
    return dataclasses.replace(labels, I=warped["I"], U=warped["U"], V=warped["V"], alpha=warped["alpha"],
                               person_index=warped.get("person_index"))


def draw_distortion(rng: np.random.Generator, strength: float = 1.0, K: Any = None,
                    image_size: tuple[int, int] | None = None, max_shift_fraction: float = 0.08) -> list[float]:
    """Plausible ``[k1, k2, p1, p2, k3]`` for a real lens; ``strength`` in [0, 1] scales them.

    Two families, as real lenses show: barrel (wide-angle and zoom lenses at the wide end:
    k1 in [-0.35, -0.02], k2 a partly compensating [0, 0.15]) in 70% of draws, pincushion
    (tele end: k1 in [0.02, 0.15], k2 in [-0.05, 0.05]) otherwise; k3 in [-0.02, 0.02] and
    tangential decentring p1, p2 in [-1e-3, 1e-3]. Whether a sample is distorted at all is the
    caller's choice (draw a probability first).

    With ``K`` and ``image_size`` = (W, H), the draw is scaled down (by halves, at most 8
    times) until the model is invertible over the whole frame (monotone in the radius up to
    the corner, no folded pixels) and moves no pixel by more than ``max_shift_fraction`` of
    the image diagonal: the coefficients act on normalised coordinates, so the same draw is
    mild on a tele lens and extreme on a wide one. All values are JSON-able floats.
    """
    s = float(np.clip(strength, 0.0, 1.0))
    if rng.random() < 0.7:
        k1, k2 = rng.uniform(-0.35, -0.02), rng.uniform(0.0, 0.15)
    else:
        k1, k2 = rng.uniform(0.02, 0.15), rng.uniform(-0.05, 0.05)
    k3 = rng.uniform(-0.02, 0.02)
    p1, p2 = rng.uniform(-1e-3, 1e-3, 2)
    d = np.array([k1, k2, p1, p2, k3]) * s
    if K is not None and image_size is not None and s > 0:
        for _ in range(8):
            if _acceptable(d, K, image_size, max_shift_fraction):
                break
            d = d * 0.5
        else:
            d = np.zeros(5)
    return [float(v) for v in d]


def _acceptable(d: np.ndarray, K: Any, image_size: tuple[int, int], max_shift_fraction: float) -> bool:
    """Invertible over the frame (radially monotone, positive Jacobian) and bounded shift."""
    w, h = int(image_size[0]), int(image_size[1])
    fx, fy, cx, cy = _intrinsics(K)
    # Ideal radius needed to cover the frame's corners, with margin for barrel (which pulls in).
    corner = max(np.hypot(max(cx, w - 1 - cx) / fx, max(cy, h - 1 - cy) / fy), 1e-6)
    r = np.linspace(0.0, 2.0 * corner, 400)
    k1, k2, p1, p2, k3 = d
    rd = r * (1 + k1 * r**2 + k2 * r**4 + k3 * r**6)
    if np.any(np.diff(rd) <= 0):
        return False
    # The frame must be covered by ideal points within 2 * corner (else nothing to sample).
    if rd[-1] < corner:
        return False
    edge = np.concatenate([
        np.column_stack([np.arange(w), np.zeros(w)]), np.column_stack([np.arange(w), np.full(w, h - 1)]),
        np.column_stack([np.zeros(h), np.arange(h)]), np.column_stack([np.full(h, w - 1), np.arange(h)]),
    ]).astype(np.float64)
    Kd = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]])
    und, valid = undistort_points(edge, Kd, d)
    if not valid.all():
        return False
    shift = np.abs(und - edge).max()
    return bool(shift <= max_shift_fraction * np.hypot(w, h))
