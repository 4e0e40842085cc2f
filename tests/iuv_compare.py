"""Compare a rendered IUV EXR against the NumPy reference rasteriser.

``compare_iuv`` scores only pixels "away from part boundaries": pixels whose
3x3 neighbourhood holds one single I label in BOTH the EXR and the reference
(background counts as label 0; the neighbourhood is clamped at the image
border, i.e. edge-replicated).  On those pixels it reports

* ``agreement``: fraction with identical I,
* ``median_uv_error``: median of max(|dU|, |dV|) over the pixels that are
  foreground in both with the same I (NaN when there are none),
* ``num_pixels``: number of scored pixels,

plus a few extras (``num_uv_pixels``, ``max_uv_error``, ``p95_uv_error``,
``num_disagree``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = ["compare_iuv", "read_exr_rgba", "uniform_3x3"]


def read_exr_rgba(path) -> np.ndarray:
    """Read an EXR as float32 (H, W, 4) RGBA with the ``OpenEXR`` package.

    OpenEXR >= 3.3 returns R,G,B,A of an RGBA file merged into a single
    ``"RGBA"`` channel of shape (H, W, 4) (or ``"RGB"`` (H, W, 3)); other
    layouts come back as separate channels, possibly with a layer prefix such
    as ``"View Layer.Combined.R"``.  All are handled; a missing alpha is
    filled with 1, a missing colour channel raises ``KeyError``.
    """
    import OpenEXR

    f = OpenEXR.File(str(path))
    try:
        channels = f.channels()
        arrays = {name: np.asarray(ch.pixels) for name, ch in channels.items()}
    finally:
        close = getattr(f, "close", None)
        if close is not None:
            close()

    def as_rgba(a):
        a = np.asarray(a, dtype=np.float32)
        if a.shape[2] == 3:
            a = np.concatenate([a, np.ones(a.shape[:2] + (1,), np.float32)], axis=2)
        return a

    # Merged arrays: "RGBA"/"RGB", or a layer prefix such as
    # "ViewLayer.Combined" (OpenEXR merges "<prefix>.R/G/B/A" into one array).
    merged = {n: a for n, a in arrays.items() if a.ndim == 3 and a.shape[2] in (3, 4)}
    for name in ("RGBA", "RGB"):
        if name in merged:
            return as_rgba(merged[name])
    if len(merged) == 1:
        return as_rgba(next(iter(merged.values())))
    if len(merged) > 1:
        raise KeyError(f"several multi-channel layers in {path}: {sorted(merged)}")

    def find(letter):
        if letter in arrays:
            return arrays[letter]
        hits = [n for n in arrays if n.rsplit(".", 1)[-1] == letter]
        if len(hits) == 1:
            return arrays[hits[0]]
        if len(hits) > 1:
            raise KeyError(f"ambiguous channel {letter!r} in {path}: {sorted(hits)}")
        return None

    planes = []
    for letter in "RGB":
        p = find(letter)
        if p is None:
            raise KeyError(f"channel {letter!r} not found in {path}: {sorted(arrays)}")
        planes.append(np.asarray(p, dtype=np.float32))
    a = find("A")
    planes.append(np.ones_like(planes[0]) if a is None else np.asarray(a, dtype=np.float32))
    return np.stack(planes, axis=-1)


def uniform_3x3(labels: np.ndarray) -> np.ndarray:
    """True where the (edge-replicated) 3x3 neighbourhood holds one label."""
    lab = np.asarray(labels)
    H, W = lab.shape
    p = np.pad(lab, 1, mode="edge")
    out = np.ones((H, W), dtype=bool)
    for dy in range(3):
        for dx in range(3):
            out &= p[dy : dy + H, dx : dx + W] == lab
    return out


def one_part(labels: np.ndarray) -> np.ndarray:
    """Labelled pixels (> 0) whose 3x3 neighbourhood holds that one label: away from edges."""
    return uniform_3x3(labels) & (np.asarray(labels) > 0)


def _labels(I) -> np.ndarray:
    I = np.asarray(I, dtype=np.float64)
    I = np.where(np.isfinite(I), I, 0.0)
    return np.rint(I).astype(np.int64)


def compare_iuv(exr_I, exr_U, exr_V, ref: Mapping) -> dict:
    """Score rendered (exr_I, exr_U, exr_V) maps against ``ref`` from rasterise_iuv.

    ``exr_I`` is the float part index from the EXR's R channel (0 =
    background, rounded to the nearest integer).  ``ref`` needs ``I``, ``U``,
    ``V`` and optionally ``mask`` (pixels outside it are background).
    """
    Ie = _labels(exr_I)
    Ue = np.asarray(exr_U, dtype=np.float64)
    Ve = np.asarray(exr_V, dtype=np.float64)
    Ir = _labels(ref["I"])
    if "mask" in ref and ref["mask"] is not None:
        Ir = np.where(np.asarray(ref["mask"], dtype=bool), Ir, 0)
    Ur = np.asarray(ref["U"], dtype=np.float64)
    Vr = np.asarray(ref["V"], dtype=np.float64)
    if not (Ie.shape == Ir.shape == Ue.shape == Ve.shape == Ur.shape == Vr.shape):
        raise ValueError(f"shape mismatch: exr {Ie.shape}/{Ue.shape}/{Ve.shape}, ref {Ir.shape}/{Ur.shape}/{Vr.shape}")

    sel = uniform_3x3(Ie) & uniform_3x3(Ir)
    n = int(sel.sum())
    same = sel & (Ie == Ir)
    agreement = float(same.sum() / n) if n else float("nan")

    uvsel = same & (Ie > 0)
    err = np.maximum(np.abs(Ue - Ur), np.abs(Ve - Vr))[uvsel]
    err = np.where(np.isfinite(err), err, np.inf)
    m = int(err.size)
    return {
        "agreement": agreement,
        "median_uv_error": float(np.median(err)) if m else float("nan"),
        "num_pixels": n,
        "num_disagree": int(n - same.sum()),
        "num_uv_pixels": m,
        "p95_uv_error": float(np.percentile(err, 95)) if m else float("nan"),
        "max_uv_error": float(err.max()) if m else float("nan"),
    }
