"""`charts.npz`: the body surface that gives a dataset's (I, U, V) their meaning.

A DensePose label names a point on a body surface. Evaluating predictions (geodesic point
similarity) and mirroring labels for flip augmentation both need that surface, and the
training machine has only the dataset folder, not the renderer or the user's body files.
So every output folder carries the rest mesh and its per-corner charts of the body kind
it was rendered with, in a plain NumPy file (no pickle, `allow_pickle=False` reads it).

Keys: `body_kind` (0-d str), `vertices` (V, 3) float32 metres, `faces` (F, 3) int32,
`corner_iuv` (F, 3, 3) float32 (I, U, V per face corner; I = 0 for a face without chart).
Both bodies' rest meshes have the person's left-right axis along x (anny: Z up, SMPL: Y up),
which is what mirroring relies on. For SMPL the template of the first loaded gender is
used: DensePose too measures every person's geodesics on one template.
"""
from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from ..io_utils import atomic_write_bytes

__all__ = ["CHARTS_FILE", "chart_surface_arrays", "write_chart_surface", "main"]

CHARTS_FILE = "charts.npz"


def chart_surface_arrays(body_cfg: dict[str, Any]) -> dict[str, np.ndarray]:
    """The charts.npz arrays of the body kind a config's `body` section draws."""
    from ..bodies.kinds import body_kind

    vertices, faces, corner_iuv = body_kind(body_cfg["kind"]).rest_surface(body_cfg)
    return {
        "body_kind": np.array(body_cfg["kind"]),
        "vertices": np.asarray(vertices, dtype=np.float32),
        "faces": np.asarray(faces, dtype=np.int32),
        "corner_iuv": np.asarray(corner_iuv, dtype=np.float32),
    }


def write_chart_surface(path: Path, body_cfg: dict[str, Any]) -> Path:
    """Write (atomically) the chart surface file; byte-identical for the same body."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **chart_surface_arrays(body_cfg))
    data = buffer.getvalue()
    if not (path.is_file() and path.read_bytes() == data):
        atomic_write_bytes(path, data)
    return path


def main(argv: list[str]) -> int:
    """`python -m farm charts --out FILE [--body smpl --smpl-dir DIR --gender G]`: for real
    DensePose-COCO, whose charts live on the user's SMPL template."""
    parser = argparse.ArgumentParser(prog="python -m farm charts", description=main.__doc__)
    parser.add_argument("--out", type=Path, required=True, help="the charts.npz file to write")
    from ..bodies.kinds import body_kind_names

    parser.add_argument("--body", choices=body_kind_names(), default="anny")
    parser.add_argument("--smpl-dir", default="", help="folder with the SMPL model files (--body smpl)")
    parser.add_argument("--gender", choices=("female", "male", "neutral"), default="female")
    args = parser.parse_args(argv)
    smpl_dir = str(Path(args.smpl_dir).expanduser().resolve()) if args.smpl_dir else ""
    try:
        path = write_chart_surface(args.out, {"kind": args.body, "smpl_dir": smpl_dir, "gender": args.gender})
    except UserError as exc:
        print(f"charts: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0
