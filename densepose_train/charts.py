"""The body surface a dataset's chart coordinates live on: `charts.npz`.

DensePose's (I, U, V) are coordinates on 24 charts cut from one body mesh. Flip augmentation
(mirror symmetry of the charts) and GPS evaluation (geodesic distances on the body) both need
that mesh and its charts, so every DenseSynth output folder carries them as `charts.npz`
(for real DensePose-COCO the user builds one from their SMPL file). Keys, read with
`np.load(path, allow_pickle=False)`:

- `body_kind`: 0-d str array ("anny" or "smpl")
- `vertices`: (V, 3) float32 rest mesh in metres; x is the body's left-right axis
- `faces`: (F, 3) int32 vertex indices
- `corner_iuv`: (F, 3, 3) float32 chart (I, U, V) per face corner; I is per face, 1..24,
  0 = face without a chart (SMPL's two toe triangles). IUV is per face corner, not per
  vertex, because chart seams duplicate vertices.

Two lookups from chart coordinates back to the surface:

- `locate` (nearest chart corner within part I in (U, V), one cKDTree per part) returns a mesh
  vertex. This is DensePose's own lookup (on its once-subdivided SMPL), and what geodesic
  distances between vertices need. Its error is the distance from the true surface point to
  the vertex found. Measured on anny (13,718 vertices) at 20,000 area-uniform random
  barycentric points of chart faces: mean 8.7 mm, median 7.5 mm, 95th percentile 19.5 mm,
  against 7.2 mm mean for the best any nearest-vertex lookup can do (the nearest corner of
  the true face); the area-weighted mean edge is 21 mm
  (`tests/test_train_data.py::test_locate_error_is_below_an_edge`).
- `surface_points` finds the chart triangle containing (U, V) and interpolates
  barycentrically: the exact surface point wherever the chart is one-to-one (the symmetry
  tables use it). Same anny points: within 1 mm at 96 % (99.7 % outside hands, feet and
  head, whose charts fold or overlap: fingers, toes, eyeballs, mouth insert).
"""
from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from densepose_train.errors import TrainUserError

__all__ = ["ChartSurface", "find_charts", "closest_point_barycentric", "CHARTS_FILE"]

CHARTS_FILE = "charts.npz"
NUM_PARTS = 24
_KEYS = ("body_kind", "vertices", "faces", "corner_iuv")
_FIX = "re-create it (every DenseSynth render writes DIR/charts.npz; for SMPL build one from your SMPL file)"
# Candidate triangles tried per query by `surface_points` / `closest_on_part`.
_CANDIDATES = 16
# A candidate closer than this (chart units / metres) is taken without trying more.
_TOUCH = {"uv": 1e-9, "xyz": 1e-6}


def closest_point_barycentric(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Barycentric coordinates (..., 3) of the point of triangle (a, b, c) closest to p.

    Works in any dimension (2-D chart space or 3-D); Ericson's region test ("Real-Time
    Collision Detection" 5.1.5), vectorised over the leading axes. Regions are assigned in
    reverse precedence so that the first matching region of the sequential algorithm wins.
    Degenerate triangles fall back to a vertex or edge instead of dividing by zero.
    """
    ab, ac, ap = b - a, c - a, p - a
    bp, cp = p - b, p - c
    d1, d2 = (ab * ap).sum(-1), (ac * ap).sum(-1)
    d3, d4 = (ab * bp).sum(-1), (ac * bp).sum(-1)
    d5, d6 = (ab * cp).sum(-1), (ac * cp).sum(-1)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2

    def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
        safe = np.where(np.abs(den) > 1e-30, den, 1.0)
        return np.clip(np.where(np.abs(den) > 1e-30, num / safe, 0.0), 0.0, 1.0)

    bary = np.empty(d1.shape + (3,), dtype=np.float64)
    total = va + vb + vc
    v, w = ratio(vb, total), ratio(vc, total)
    bary[..., 0], bary[..., 1], bary[..., 2] = 1.0 - v - w, v, w
    regions = []
    t = ratio(d4 - d3, (d4 - d3) + (d5 - d6))
    regions.append(((va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0), (0.0 * t, 1.0 - t, t)))  # edge BC
    t = ratio(d2, d2 - d6)
    regions.append(((vb <= 0) & (d2 >= 0) & (d6 <= 0), (1.0 - t, 0.0 * t, t)))  # edge AC
    regions.append(((d6 >= 0) & (d5 <= d6), (0.0, 0.0, 1.0)))  # vertex C
    t = ratio(d1, d1 - d3)
    regions.append(((vc <= 0) & (d1 >= 0) & (d3 <= 0), (1.0 - t, t, 0.0 * t)))  # edge AB
    regions.append(((d3 >= 0) & (d4 <= d3), (0.0, 1.0, 0.0)))  # vertex B
    regions.append(((d1 <= 0) & (d2 <= 0), (1.0, 0.0, 0.0)))  # vertex A
    for mask, values in regions:
        for k, value in enumerate(values):
            value = np.broadcast_to(value, mask.shape)
            bary[..., k] = np.where(mask, value, bary[..., k])
    return bary


@dataclass(frozen=True, eq=False)
class ChartSurface:
    """A rest mesh with DensePose charts per face corner (see the module docstring).

    Arrays are normalised to float32 / int32 and validated on construction; a bad surface
    raises TrainUserError. Lookup structures (one cKDTree per part) are built on first use
    and cached on the instance.
    """

    body_kind: str
    vertices: np.ndarray
    faces: np.ndarray
    corner_iuv: np.ndarray
    _cache: dict[Any, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "body_kind", str(self.body_kind))
        object.__setattr__(self, "vertices", np.ascontiguousarray(self.vertices, dtype=np.float32))
        object.__setattr__(self, "faces", np.ascontiguousarray(self.faces, dtype=np.int32))
        object.__setattr__(self, "corner_iuv", np.ascontiguousarray(self.corner_iuv, dtype=np.float32))
        problem = _problem(self.vertices, self.faces, self.corner_iuv)
        if problem:
            raise TrainUserError(f"chart surface ({self.body_kind}): {problem}; {_FIX}")

    # ----------------------------------------------------------------- file I/O
    @classmethod
    def load(cls, path: str | Path) -> "ChartSurface":
        """Read and validate a `charts.npz`; every problem is one TrainUserError line naming the file."""
        path = Path(path)
        if not path.is_file():
            raise TrainUserError(f"{path}: chart surface file not found; {_FIX}")
        try:
            with np.load(path, allow_pickle=False) as data:
                missing = [key for key in _KEYS if key not in data.files]
                if missing:
                    raise TrainUserError(f"{path}: chart surface lacks {', '.join(missing)}; {_FIX}")
                arrays = {key: data[key] for key in _KEYS}
        except TrainUserError:
            raise
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
            raise TrainUserError(f"{path}: not a readable .npz chart surface ({type(exc).__name__}); {_FIX}") from None
        kind = arrays["body_kind"]
        if kind.shape != () or kind.dtype.kind != "U":
            raise TrainUserError(f"{path}: body_kind must be a 0-d string array; {_FIX}")
        for key, kinds in (("vertices", "f"), ("faces", "iu"), ("corner_iuv", "f")):
            if arrays[key].dtype.kind not in kinds:
                raise TrainUserError(f"{path}: {key} has dtype {arrays[key].dtype}, expected "
                                     f"{'float' if kinds == 'f' else 'integer'}; {_FIX}")
        try:
            return cls(str(kind), arrays["vertices"], arrays["faces"], arrays["corner_iuv"])
        except TrainUserError as exc:
            raise TrainUserError(f"{path}: {exc}") from None

    def save(self, path: str | Path) -> None:
        """Write the four keys (uncompressed, so loading is a plain read)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as handle:
            np.savez(handle, body_kind=np.array(self.body_kind), vertices=self.vertices, faces=self.faces,
                     corner_iuv=self.corner_iuv)

    # ----------------------------------------------------------------- properties
    @property
    def face_part(self) -> np.ndarray:
        """(F,) int64 chart index of every face (0 = no chart)."""
        return self.corner_iuv[:, 0, 0].astype(np.int64)

    def digest(self) -> str:
        """SHA-256 of the geometry and charts (cache key for anything derived from them)."""
        if "digest" not in self._cache:
            h = hashlib.sha256()
            for array in (self.vertices, self.faces, self.corner_iuv):
                h.update(str(array.shape).encode())
                h.update(array.tobytes())
            self._cache["digest"] = h.hexdigest()
        return self._cache["digest"]

    def _part_corners(self, part: int) -> tuple[cKDTree, np.ndarray] | None:
        """Unique (vertex, U, V) corners of one part and a cKDTree over their (U, V)."""
        key = ("corners", part)
        if key not in self._cache:
            faces = np.flatnonzero(self.face_part == part)
            if len(faces) == 0:
                self._cache[key] = None
            else:
                vid = self.faces[faces].reshape(-1).astype(np.int64)
                uv = self.corner_iuv[faces, :, 1:].reshape(-1, 2).astype(np.float64)
                rows = np.unique(np.column_stack([vid, uv]), axis=0)
                self._cache[key] = (cKDTree(rows[:, 1:]), rows[:, 0].astype(np.int64))
        return self._cache[key]

    def _part_triangles(self, part: int, space: str) -> tuple[cKDTree, np.ndarray] | None:
        """Faces of one part and a cKDTree over their centroids in 'uv' or 'xyz' space."""
        key = ("triangles", part, space)
        if key not in self._cache:
            faces = np.flatnonzero(self.face_part == part)
            if len(faces) == 0:
                self._cache[key] = None
            else:
                tri = self._triangles(faces, space)
                self._cache[key] = (cKDTree(tri.mean(axis=1)), faces)
        return self._cache[key]

    def _triangles(self, faces: np.ndarray, space: str) -> np.ndarray:
        if space == "uv":
            return self.corner_iuv[faces, :, 1:].astype(np.float64)
        return self.vertices[self.faces[faces]].astype(np.float64)

    # ----------------------------------------------------------------- lookups
    def locate(self, I: np.ndarray, U: np.ndarray, V: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Surface points (N, 3) float32 in metres and nearest vertex ids (N,) int64 for chart coordinates.

        The nearest chart corner of part I in (U, V) (DensePose's lookup); the point is that
        corner's vertex. Points with I outside 1..24 or on a part without faces get NaN / -1.
        """
        I, U, V = _as_queries(I, U, V)
        points = np.full((len(I), 3), np.nan, dtype=np.float32)
        vertex = np.full(len(I), -1, dtype=np.int64)
        for part in np.unique(I):
            lookup = self._part_corners(int(part)) if 1 <= part <= NUM_PARTS else None
            if lookup is None:
                continue
            tree, vids = lookup
            sel = np.flatnonzero(I == part)
            _, nearest = tree.query(np.column_stack([U[sel], V[sel]]))
            vertex[sel] = vids[nearest]
            points[sel] = self.vertices[vids[nearest]]
        return points, vertex

    def surface_points(self, I: np.ndarray, U: np.ndarray, V: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Exact surface points for chart coordinates: (points (N, 3) float64, face ids (N,), barycentrics (N, 3)).

        Finds the triangle of part I whose (U, V) image contains the query (or, outside the
        chart's image, the closest one) among the nearest few by centroid, and interpolates
        the rest positions. Where charts fold (fingers, toes) one of the folds is returned.
        Points without a chart get NaN / -1.
        """
        I, U, V = _as_queries(I, U, V)
        points = np.full((len(I), 3), np.nan)
        face = np.full(len(I), -1, dtype=np.int64)
        bary = np.full((len(I), 3), np.nan)
        for part in np.unique(I):
            lookup = self._part_triangles(int(part), "uv") if 1 <= part <= NUM_PARTS else None
            if lookup is None:
                continue
            sel = np.flatnonzero(I == part)
            f, b = self._closest(lookup, np.column_stack([U[sel], V[sel]]), "uv")
            face[sel], bary[sel] = f, b
            points[sel] = np.einsum("nk,nkd->nd", b, self._triangles(f, "xyz"))
        return points, face, bary

    def closest_on_part(self, part: int, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Closest surface point of chart `part` to each 3-D point: (face ids, barycentrics, (U, V) (N, 2)).

        Candidate triangles are the nearest few by centroid, so a point far from the part may
        get a near-closest rather than the closest triangle; for points on or near the
        surface this is exact.
        """
        lookup = self._part_triangles(int(part), "xyz")
        if lookup is None:
            raise ValueError(f"chart surface has no faces of part {part}")
        face, bary = self._closest(lookup, np.asarray(points, dtype=np.float64), "xyz")
        uv = np.einsum("nk,nkd->nd", bary, self._triangles(face, "uv"))
        return face, bary, uv

    def _closest(self, lookup: tuple[cKDTree, np.ndarray], query: np.ndarray, space: str,
                 chunk: int = 8192) -> tuple[np.ndarray, np.ndarray]:
        """Closest point among candidate triangles: first the 4 nearest by centroid, then the
        queries whose best candidate is not (almost) touching them again with 16."""
        tree, faces = lookup
        out_face = np.empty(len(query), dtype=np.int64)
        out_bary = np.empty((len(query), 3))
        out_dist = np.full(len(query), np.inf)
        todo = np.arange(len(query))
        for k in (min(4, len(faces)), min(_CANDIDATES, len(faces))):
            for start in range(0, len(todo), chunk):
                idx = todo[start:start + chunk]
                q = query[idx]
                _, cand = tree.query(q, k=k)
                cand = faces[np.asarray(cand).reshape(len(q), k)]
                tri = self._triangles(cand.reshape(-1), space).reshape(len(q), k, 3, -1)
                b = closest_point_barycentric(q[:, None, :], tri[:, :, 0], tri[:, :, 1], tri[:, :, 2])
                foot = np.einsum("nkc,nkcd->nkd", b, tri)
                dist = ((foot - q[:, None, :]) ** 2).sum(-1)
                best = np.argmin(dist, axis=1)
                rows = np.arange(len(q))
                out_face[idx], out_bary[idx], out_dist[idx] = cand[rows, best], b[rows, best], dist[rows, best]
            todo = np.flatnonzero(out_dist > _TOUCH[space] ** 2)
            if len(todo) == 0 or k == len(faces):
                break
        return out_face, out_bary


def _as_queries(I: np.ndarray, U: np.ndarray, V: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    I = np.rint(np.asarray(I, dtype=np.float64)).astype(np.int64).reshape(-1)
    U = np.asarray(U, dtype=np.float64).reshape(-1)
    V = np.asarray(V, dtype=np.float64).reshape(-1)
    if not len(I) == len(U) == len(V):
        raise ValueError(f"I, U, V have different lengths: {len(I)}, {len(U)}, {len(V)}")
    return I, U, V


def _problem(vertices: np.ndarray, faces: np.ndarray, corner_iuv: np.ndarray) -> str | None:
    """What is wrong with the arrays, or None."""
    if vertices.ndim != 2 or vertices.shape[1] != 3 or len(vertices) == 0:
        return f"vertices has shape {vertices.shape}, expected (V, 3)"
    if not np.isfinite(vertices).all():
        return "vertices contain NaN or infinite values"
    if faces.ndim != 2 or faces.shape[1] != 3 or len(faces) == 0:
        return f"faces has shape {faces.shape}, expected (F, 3)"
    if faces.min() < 0 or faces.max() >= len(vertices):
        return f"faces index vertices outside 0..{len(vertices) - 1}"
    if corner_iuv.shape != (len(faces), 3, 3):
        return f"corner_iuv has shape {corner_iuv.shape}, expected ({len(faces)}, 3, 3)"
    if not np.isfinite(corner_iuv).all():
        return "corner_iuv contains NaN or infinite values"
    part = corner_iuv[..., 0]
    if not (part == np.rint(part)).all() or part.min() < 0 or part.max() > NUM_PARTS:
        return "corner_iuv I values must be integers 0..24"
    if not (part == part[:, :1]).all():
        return "corner_iuv I differs between the corners of a face (I is per face)"
    uv = corner_iuv[..., 1:][part > 0]
    if len(uv) == 0:
        return "no face has a chart (all I are 0)"
    if uv.min() < 0.0 or uv.max() > 1.0:
        return "corner_iuv U, V values outside [0, 1]"
    return None


def find_charts(source: str | Path) -> Path | None:
    """The `charts.npz` belonging to a dataset folder or COCO json, or None.

    A folder: `DIR/charts.npz`; a json: `charts.npz` in the json's folder (DenseSynth's
    `annotations_train.json` and `annotations_val.json` sit next to it). Nothing further up
    is searched, so an unrelated surface is never picked up.
    """
    source = Path(source)
    candidate = (source if source.is_dir() else source.parent) / CHARTS_FILE
    return candidate if candidate.is_file() else None
