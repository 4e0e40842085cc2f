"""How close are the default body's charts to DensePose's SMPL charts?

`python bench/chart_closeness.py --smpl-dir DIR [--gender neutral]` prints, for each of the
24 fine parts, its share of the body surface on SMPL (DensePose's own charts on the user's
SMPL model, mean shape, rest pose) and on anny (DenseSynth's charts, default phenotype),
and the total variation distance between the two distributions (0 = identical shares,
1 = disjoint). SMPL's geometry is licensed, so the comparison needs the user's files;
without `--smpl-dir` only anny's shares are printed.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from farm.bootstrap import add_paths  # noqa: E402

add_paths()


def area_shares(vertices: np.ndarray, faces: np.ndarray, face_part: np.ndarray) -> np.ndarray:
    """(25,) share of the surface area per fine part (index 0 unused)."""
    tri = vertices[faces]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    shares = np.bincount(face_part, weights=area, minlength=25)[:25]
    return shares / shares.sum()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smpl-dir", help="folder with your SMPL model files")
    parser.add_argument("--gender", default="neutral", choices=("neutral", "female", "male"))
    args = parser.parse_args(argv)

    from densesynth.core.parts import FINE_PART_NAMES
    from densesynth.bodies.default_body import DefaultBody
    from densesynth.errors import UserError

    anny = DefaultBody.load()
    anny_shares = area_shares(anny.model.rest({}).vertices, anny.faces, anny.face_part)
    smpl_shares = None
    if args.smpl_dir:
        from densesynth.bodies.smpl_model import SmplBody

        try:
            smpl = SmplBody.load(args.smpl_dir, args.gender)
        except UserError as exc:
            print(f"chart_closeness: error: {exc}", file=sys.stderr)
            return 2
        smpl_shares = area_shares(smpl.model.rest()[0], smpl.faces, smpl.face_part)
    print(f"{'part':28s} {'anny':>7s}" + (f" {'SMPL':>7s} {'diff':>7s}" if smpl_shares is not None else ""))
    for part in range(1, 25):
        row = f"{part:2d} {FINE_PART_NAMES[part]:25s} {anny_shares[part]:7.2%}"
        if smpl_shares is not None:
            row += f" {smpl_shares[part]:7.2%} {anny_shares[part] - smpl_shares[part]:+7.2%}"
        print(row)
    if smpl_shares is not None:
        print(f"total variation distance between the part-area distributions: "
              f"{0.5 * np.abs(anny_shares - smpl_shares).sum():.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
