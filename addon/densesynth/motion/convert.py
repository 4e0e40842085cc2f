"""Motion capture files (BVH, C3D, AMASS-style / our .npz) -> the canonical clip, and the
`python -m farm.motion convert IN --out clip.npz [--fps 30] [--map map.yaml]` command.

`convert` dispatches on the suffix; `motion_quality` flags frames a converted clip should
not be rendered from (non-finite values, implausible joint speeds, feet well below the floor).
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..errors import UserError
from .clip import MotionClip, MotionFileError, load_clip, resample, save_clip
from .kinematics import forward_kinematics
from .smpl_skeleton import JOINT_INDEX, JOINT_NAMES

MAX_JOINT_SPEED = 15.0  # m/s
MAX_FLOOR_PENETRATION = 0.05  # m
_FEET = [JOINT_INDEX[f"{s}_{n}"] for s in ("left", "right") for n in ("ankle", "foot")]
SUFFIXES = (".bvh", ".c3d", ".npz")


def convert(path_in: Path | str, fps: float | None = None, joint_map: Mapping[str, str] | None = None,
            *, scale: float | None = None, report: dict | None = None) -> MotionClip:
    """Read a .bvh, .c3d or .npz motion file as a canonical clip, resampled to `fps` if given.

    joint_map: {bvh_joint: smpl_joint_name} for BVH skeletons other than CMU / Mixamo.
    scale: metres per BVH unit (default: detected). report: if given, filled with details
    (for C3D: frames whose fit failed and the mean IK residual).
    Raises MotionFileError (a UserError) naming the file and the problem.
    """
    path = Path(path_in)
    suffix = path.suffix.lower()
    if fps is not None and (not np.isfinite(fps) or fps <= 0):
        raise UserError(f"--fps must be a positive number, got {fps}")
    if suffix == ".bvh":
        from .bvh import bvh_to_clip

        return bvh_to_clip(path, fps=fps, joint_map=joint_map, scale=scale)
    if joint_map is not None:
        raise UserError(f"{path}: a joint map applies to BVH files only")
    if suffix == ".c3d":
        from .c3d import FitReport, c3d_to_clip

        fit = FitReport()
        clip = c3d_to_clip(path, fps=fps, report=fit)
        if report is not None:
            report.update(failed_frames=list(fit.failed_frames), mean_residual_m=fit.mean_residual)
        return clip
    if suffix == ".npz":
        clip = load_clip(path)
        return resample(clip, fps) if fps is not None else clip
    raise MotionFileError(f"motion file {path}: unknown type {path.suffix!r}; expected one of {', '.join(SUFFIXES)}")


def motion_quality(clip: MotionClip, known_bad: Sequence[int] = ()) -> dict:
    """Per-frame check of a converted clip.

    A frame is bad if any pose / trans / joint value is NaN or inf, if any joint moves faster
    than MAX_JOINT_SPEED (15 m/s) from the previous frame, or if an ankle or ball of the foot
    is more than MAX_FLOOR_PENETRATION (5 cm) below the floor (y = 0), or if it is listed in
    `known_bad` (e.g. C3D frames whose fit failed and that hold the previous pose).
    Returns {"frames", "ok" (bool array), "bad", "non_finite", "too_fast", "below_floor",
    "known_bad"} (counts of frames).
    """
    poses = np.asarray(clip.poses, dtype=np.float64)
    trans = np.asarray(clip.trans, dtype=np.float64)
    finite = np.isfinite(poses).all(axis=1) & np.isfinite(trans).all(axis=1)
    safe_poses = np.where(np.isfinite(poses), poses, 0.0)
    _, joints = forward_kinematics(safe_poses, clip.rest_joints)
    joints = joints + np.where(np.isfinite(trans), trans, 0.0)[:, None, :]
    finite &= np.isfinite(joints).all(axis=(1, 2))
    speed = np.zeros(len(joints))
    if len(joints) > 1:
        speed[1:] = np.linalg.norm(np.diff(joints, axis=0), axis=2).max(axis=1) * clip.mocap_framerate
    too_fast = speed > MAX_JOINT_SPEED
    below = joints[:, _FEET, 1].min(axis=1) < -MAX_FLOOR_PENETRATION
    listed = np.zeros(len(joints), dtype=bool)
    listed[[int(f) for f in known_bad if 0 <= int(f) < len(joints)]] = True
    ok = finite & ~too_fast & ~below & ~listed
    return {"frames": int(len(ok)), "ok": ok, "bad": int((~ok).sum()), "non_finite": int((~finite).sum()),
            "too_fast": int((too_fast & finite).sum()), "below_floor": int((below & finite).sum()),
            "known_bad": int(listed.sum())}


def read_joint_map(path: Path | str) -> dict[str, str]:
    """A YAML (or JSON) mapping {bvh_joint: smpl_joint_name}."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"joint map {path} does not exist") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        reason = str(exc).replace("\n", " ")
        raise UserError(f"joint map {path} is not readable YAML: {reason}") from None
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise UserError(f"joint map {path} must be a mapping of BVH joint names to SMPL joint names")
    unknown = sorted(v for v in data.values() if v not in JOINT_NAMES)
    if unknown:
        raise UserError(f"joint map {path}: {', '.join(unknown)} are not SMPL joints (known: {', '.join(JOINT_NAMES)})")
    return data


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (no usage block)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m farm.motion", description="Convert motion capture to the canonical clip format.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    conv = sub.add_parser("convert", help="convert a .bvh, .c3d or .npz file to a canonical .npz clip")
    conv.add_argument("input", type=Path, help="motion file (.bvh, .c3d, .npz)")
    conv.add_argument("--out", type=Path, required=True, help="output clip (.npz)")
    conv.add_argument("--fps", type=float, default=None, help="resample to this frame rate (slerp)")
    conv.add_argument("--map", type=Path, default=None, help="YAML {bvh_joint: smpl_joint} for other skeletons")
    conv.add_argument("--scale", type=float, default=None, help="metres per BVH unit (default: detected)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        if args.out.suffix.lower() != ".npz":
            raise UserError(f"--out {args.out} must end in .npz")
        if not args.out.parent.is_dir():
            raise UserError(f"--out {args.out}: folder {args.out.parent} does not exist")
        if args.scale is not None and (not np.isfinite(args.scale) or args.scale <= 0):
            raise UserError(f"--scale must be a positive number, got {args.scale}")
        joint_map = read_joint_map(args.map) if args.map is not None else None
        details: dict = {}
        clip = convert(args.input, fps=args.fps, joint_map=joint_map, scale=args.scale, report=details)
        quality = motion_quality(clip, details.get("failed_frames", ()))
        try:
            save_clip(args.out, clip)
        except OSError as exc:
            raise UserError(f"cannot write --out {args.out}: {exc.strerror or exc}") from None
    except UserError as exc:
        message = " ".join(str(exc).split("\n")) or repr(exc)
        print(f"{parser.prog}: error: {message}", file=sys.stderr)
        return 2
    print(f"{args.out}: {clip.num_frames} frames at {clip.mocap_framerate:g} fps from {args.input.name}; "
          f"{quality['bad']} frames flagged (non-finite {quality['non_finite']}, too fast {quality['too_fast']}, "
          f"below floor {quality['below_floor']}, not fitted {quality['known_bad']})")
    return 0
