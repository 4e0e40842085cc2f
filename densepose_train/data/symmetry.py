"""Chart symmetry tables for horizontal flips: where (U, V) on part I lands on the mirror part.

A horizontally flipped person shows each part as its mirror twin (`FINE_FLIP`), and the
point at (U, V) on part I becomes some (U', V') on part FINE_FLIP[I]. DensePose stores that
map as two stacks of 24 images of 256 x 256, `U_transforms` and `V_transforms`, in
`UV_symmetry_transforms.mat`, and looks up texel `[I - 1][int(255 V), int(255 U)]` (row from
V, column from U, both truncated after scaling by 255; `densepose/structures/data_relative.py`
`_flip_iuv_semantics`), so a flipped U, V is quantised to the table's values.

The table only holds for the body its charts were drawn on: SMPL's for DensePose-COCO, anny's
for DenseSynth renders. Each `--data` source therefore carries its own tables (DensePose uses
one for every dataset): `load_densepose_symmetry` reads DensePose's file, `tables_from_surface`
regenerates the tables from the source's `charts.npz` by mirroring the rest mesh, as
DensePose's maintainer suggested for SMPL (UV_Processed plus the left-right correspondence).

Texel j of a table holds the image of its centre, (j + 0.5) / 255 (the last one of u = 1):
a flip then moves U, V by at most half a texel plus the mirror's own error, and flipping twice
lands back in the same texel. On anny the regenerated tables reproduce the charts' documented
mirror rule (same (U, V) on the mirror chart; U -> 1 - U on the torso charts 1, 2) within one
texel at all of 100,000 random chart points (max deviation 0.011).

Mirroring assumes the rest mesh is left-right symmetric about a plane x = const. The plane is
estimated as the mean x of the vertices (anny: symmetric about its head bone's x, which is 0;
SMPL's template is nearly symmetric about x = 0), never assumed to be 0.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from densepose_train.charts import ChartSurface
from densepose_train.errors import TrainUserError
from densesynth.core.parts import FINE_FLIP, NUM_FINE_PARTS

__all__ = ["SymmetryTables", "TABLE_SIZE", "load_densepose_symmetry", "tables_from_surface", "default_cache_dir"]

TABLE_SIZE = 256
# Bump when the generation algorithm changes, so that cached tables are rebuilt.
_ALGORITHM = "mirror-closest-point-v1"


@dataclass(frozen=True, eq=False)
class SymmetryTables:
    """U, V: (24, 256, 256) float32; entry [I - 1, row, col] is the mirrored U (V) of the texel.

    `flip` applies them exactly as DensePose does: I through FINE_FLIP, U and V read at
    `[I - 1][int(255 V), int(255 U)]` with float32 arithmetic and truncation.
    """

    U: np.ndarray
    V: np.ndarray

    def __post_init__(self) -> None:
        for name in ("U", "V"):
            table = np.ascontiguousarray(getattr(self, name), dtype=np.float32)
            if table.shape != (NUM_FINE_PARTS, TABLE_SIZE, TABLE_SIZE):
                raise TrainUserError(f"symmetry table {name} has shape {table.shape}, expected (24, 256, 256); "
                                     "regenerate it from the dataset's charts.npz")
            object.__setattr__(self, name, table)
        object.__setattr__(self, "_torch", (torch.from_numpy(self.U), torch.from_numpy(self.V)))

    def flip(self, I: torch.Tensor, U: torch.Tensor, V: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mirror chart coordinates: (I int64, U, V float32) of the points on the flipped person."""
        table_u, table_v = self._torch
        I = torch.as_tensor(I, dtype=torch.int64)
        U = torch.as_tensor(U, dtype=torch.float32)
        V = torch.as_tensor(V, dtype=torch.float32)
        if I.numel() and (I.min() < 1 or I.max() > NUM_FINE_PARTS):
            raise ValueError("flip needs part indices 1..24")
        col = (U * 255).long().clamp(0, TABLE_SIZE - 1)
        row = (V * 255).long().clamp(0, TABLE_SIZE - 1)
        flip_i = torch.from_numpy(FINE_FLIP.astype(np.int64))[I]
        return flip_i, table_u[I - 1, row, col], table_v[I - 1, row, col]

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        with open(tmp, "wb") as handle:
            np.savez(handle, U=self.U, V=self.V)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | Path) -> "SymmetryTables":
        with np.load(path, allow_pickle=False) as data:
            return cls(data["U"], data["V"])


def load_densepose_symmetry(mat_path: str | Path) -> SymmetryTables:
    """Read DensePose's `UV_symmetry_transforms.mat` (SMPL charts, for DensePose-COCO).

    Layout as DensePose's `DensePoseTransformData.load` reads it: keys `U_transforms` and
    `V_transforms`, each a (1, 24) MATLAB cell array of (256, 256) images.
    """
    import scipy.io

    path = Path(mat_path)
    fix = "pass DensePose's UV_symmetry_transforms.mat (keys U_transforms, V_transforms)"
    if not path.is_file():
        raise TrainUserError(f"{path}: symmetry file not found; {fix}")
    try:
        data = scipy.io.loadmat(str(path))
    except Exception as exc:  # scipy raises several unrelated types for a bad file
        raise TrainUserError(f"{path}: not a readable MATLAB file ({type(exc).__name__}); {fix}") from None
    tables = []
    for key in ("U_transforms", "V_transforms"):
        cells = data.get(key)
        if cells is None or cells.shape != (1, NUM_FINE_PARTS):
            raise TrainUserError(f"{path}: {key} missing or not a 1 x 24 cell array; {fix}")
        try:
            tables.append(np.stack([np.asarray(cells[0, i], dtype=np.float32) for i in range(NUM_FINE_PARTS)]))
        except ValueError:
            raise TrainUserError(f"{path}: {key} cells are not 256 x 256 images; {fix}") from None
    try:
        return SymmetryTables(*tables)
    except TrainUserError as exc:
        raise TrainUserError(f"{path}: {exc}") from None


def default_cache_dir() -> Path:
    """`$XDG_CACHE_HOME/densesynth/symmetry` (default `~/.cache/densesynth/symmetry`)."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "densesynth" / "symmetry"


def texel_centres() -> np.ndarray:
    """(256,) chart coordinate at the centre of each table texel along one axis.

    The lookup `int(255 u)` gives texel j for u in [j/255, (j+1)/255): its centre is
    (j + 0.5) / 255; the last texel holds only u = 1.
    """
    return np.minimum((np.arange(TABLE_SIZE) + 0.5) / 255.0, 1.0)


def tables_from_surface(surface: ChartSurface, cache_dir: str | Path | None = None,
                        use_cache: bool = True) -> SymmetryTables:
    """Regenerate the symmetry tables of a chart surface by mirroring its rest mesh.

    For each part p and each texel centre (u, v): the surface point at (p, u, v) (the chart
    triangle containing it, interpolated; texels outside the chart's image use the closest
    chart triangle), mirrored through the plane x = mean x of the vertices, then the closest
    point on the triangles of part FINE_FLIP[p], whose interpolated (U, V) is the entry.
    Where a chart folds (fingers, toes, anny's eyeballs and mouth insert inside the head
    charts) the entry follows one fold.

    Cached as `<cache_dir>/<surface digest>.npz` (default `default_cache_dir()`), since one
    surface takes several seconds; the key covers the mesh, the charts and the algorithm.
    """
    cache_path = None
    if use_cache:
        key = f"{surface.digest()[:32]}-{_ALGORITHM}"
        cache_path = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        cache_path = cache_path / f"{key}.npz"
        if cache_path.is_file():
            try:
                return SymmetryTables.load(cache_path)
            except (OSError, ValueError, KeyError, TrainUserError):
                pass  # a broken cache entry is rebuilt below
    centres = texel_centres()
    grid_u, grid_v = np.meshgrid(centres, centres)  # [row, col]: row from V, column from U
    grid_u, grid_v = grid_u.reshape(-1), grid_v.reshape(-1)
    mid_x = float(surface.vertices[:, 0].astype(np.float64).mean())
    parts_present = set(np.unique(surface.face_part).tolist())
    tables_u = np.zeros((NUM_FINE_PARTS, TABLE_SIZE, TABLE_SIZE), dtype=np.float32)
    tables_v = np.zeros_like(tables_u)
    for part in range(1, NUM_FINE_PARTS + 1):
        mirror = int(FINE_FLIP[part])
        if part not in parts_present or mirror not in parts_present:
            # No chart to map from or to: identity, so a flip leaves such points unchanged.
            tables_u[part - 1], tables_v[part - 1] = grid_u.reshape(256, 256), grid_v.reshape(256, 256)
            continue
        points, _, _ = surface.surface_points(np.full(grid_u.shape, part), grid_u, grid_v)
        points[:, 0] = 2.0 * mid_x - points[:, 0]
        _, _, uv = surface.closest_on_part(mirror, points)
        uv = np.clip(uv, 0.0, 1.0)
        tables_u[part - 1] = uv[:, 0].reshape(TABLE_SIZE, TABLE_SIZE)
        tables_v[part - 1] = uv[:, 1].reshape(TABLE_SIZE, TABLE_SIZE)
    tables = SymmetryTables(tables_u, tables_v)
    if cache_path is not None:
        try:
            tables.save(cache_path)
        except OSError:
            pass  # a read-only cache only costs the rebuild next time
    return tables
