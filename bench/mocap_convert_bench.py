"""Conversion time of a 10,000-frame clip: BVH (target < 10 s) and C3D (target < 60 s).

`python bench/mocap_convert_bench.py [--frames 10000]` writes a CMU-like BVH (zero-offset
joints, 120 Hz style motion, the fixture of tests/test_mocap_wild.py) and a Plug-in Gait C3D
with subject measurements (100 Hz, mm, Z up, the fixture of tests/test_mocap_c3d.py), then
times `convert` on each (the whole command: parse, retarget or joint centres + IK,
calibration and ground checks) and prints the figures.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
from farm.bootstrap import add_paths  # noqa: E402

add_paths()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=10_000)
    args = parser.parse_args()
    from test_mocap_c3d import markers_from
    from test_mocap_wild import CMU_HIERARCHY, make_motion, parse_hierarchy, write, write_pig_c3d

    from densesynth.motion.builtin_clips import builtin_clip
    from densesynth.motion.clip import MotionClip, resample
    from densesynth.motion.convert import convert
    from densesynth.motion.smpl_skeleton import GENERIC_REST_JOINTS

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        names, _, _, chans = parse_hierarchy(CMU_HIERARCHY)
        motion = make_motion(names, chans, frames=args.frames, fps=120.0)
        bvh = tmp / "long.bvh"
        write(bvh, CMU_HIERARCHY, motion, fps=120.0)
        start = time.perf_counter()
        clip = convert(bvh)
        bvh_s = time.perf_counter() - start
        print(f"BVH  {clip.num_frames:6d} frames (CMU-like, 31 joints): {bvh_s:6.2f} s  (target < 10 s)")

        walk = resample(builtin_clip("walk"), 100.0)
        reps = int(np.ceil(args.frames / walk.num_frames))
        poses = np.tile(walk.poses, (reps, 1))[:args.frames]
        trans = np.tile(walk.trans, (reps, 1))[:args.frames]
        long = MotionClip(poses, trans, 100.0, GENERIC_REST_JOINTS)
        markers, _ = markers_from(long, np.array(GENERIC_REST_JOINTS))
        c3d_path = tmp / "long.c3d"
        write_pig_c3d(c3d_path, markers, 100.0)
        start = time.perf_counter()
        clip = convert(c3d_path)
        c3d_s = time.perf_counter() - start
        print(f"C3D  {clip.num_frames:6d} frames (Plug-in Gait, {len(markers)} markers): {c3d_s:6.2f} s  "
              "(target < 60 s)")


if __name__ == "__main__":
    main()
