"""Choose the DensePose annotation points of one person.

Uniform random sampling clusters points and leaves holes; annotators (and the GPS metric)
want the points spread over the whole visible body. This is a jittered grid: the image is
cut into square cells of side ``s`` (random grid offset), one random body pixel is taken
per cell that touches the body, and ``s`` is chosen (bisection) as the largest size that
still yields at least ``num_points`` occupied cells. Surplus cells are dropped with
probability favouring sparsely covered (boundary) cells, so the interior stays evenly
covered. Everything is driven by one ``numpy.random.Generator`` seeded with ``seed``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["sample_points"]

_BISECTION_STEPS = 16


def _cell_ids(rows: np.ndarray, cols: np.ndarray, size: float, offset: np.ndarray,
              width: int) -> np.ndarray:
    """Dense integer id of the grid cell holding each pixel centre."""
    cr = np.floor((rows + 0.5 + offset[0]) / size).astype(np.int64)
    cc = np.floor((cols + 0.5 + offset[1]) / size).astype(np.int64)
    ncols = int(np.floor((width + offset[1]) / size)) + 2
    return cr * ncols + cc


def _occupied(ids: np.ndarray) -> int:
    """Number of distinct cells in ``ids``."""
    return int(np.count_nonzero(np.bincount(ids - ids.min())))


def _cell_size(rows: np.ndarray, cols: np.ndarray, n: int, offset_frac: np.ndarray,
               width: int, height: int) -> float:
    """Largest cell side (pixels) whose grid has >= n occupied cells.

    Side 1 gives one cell per pixel (>= n occupied since n <= pixel count); a side larger
    than the image gives 1 cell. The occupied count is monotone enough in practice for a
    bisection; the lower end always satisfies the constraint.
    """
    lo, hi = 1.0, float(max(width, height)) + 1.0
    for _ in range(_BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        if _occupied(_cell_ids(rows, cols, mid, offset_frac * mid, width)) >= n:
            lo = mid
        else:
            hi = mid
    return lo


def sample_points(mask: np.ndarray, num_points: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Spread ``min(num_points, mask.sum())`` distinct pixels over a boolean mask.

    Args:
        mask: (H, W) bool, the visible body pixels.
        num_points: wanted number of points (<= 0 gives none).
        seed: the same (mask, num_points, seed) always gives the same points.

    Returns:
        (rows, cols): int64 arrays, distinct pixels, in raster order.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {mask.shape}")
    rows, cols = np.nonzero(mask)
    n = min(int(num_points), rows.size)
    if n <= 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty.copy()
    if n == rows.size:
        return rows.astype(np.int64), cols.astype(np.int64)

    rng = np.random.default_rng(seed)
    height, width = mask.shape
    offset_frac = rng.random(2)
    size = _cell_size(rows, cols, n, offset_frac, width, height)
    ids = _cell_ids(rows, cols, size, offset_frac * size, width)

    # One random pixel per occupied cell: sort by (cell, random key), keep each cell's first.
    keys = rng.random(rows.size)
    order = np.lexsort((keys, ids))
    sorted_ids = ids[order]
    first = np.ones(sorted_ids.size, dtype=bool)
    first[1:] = sorted_ids[1:] != sorted_ids[:-1]
    chosen = order[first]
    counts = np.diff(np.append(np.flatnonzero(first), sorted_ids.size))

    if chosen.size > n:
        # Drop surplus cells, preferring to drop thinly covered ones (body outline cells).
        weights = counts.astype(np.float64)
        keep = rng.choice(chosen.size, size=n, replace=False, p=weights / weights.sum())
        chosen = chosen[np.sort(keep)]

    chosen = np.sort(chosen)  # np.nonzero order == raster order
    return rows[chosen].astype(np.int64), cols[chosen].astype(np.int64)
