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
from .clip import MotionClip, MotionFileError, load_clip, read_map_file, resample, save_clip
from .kinematics import forward_kinematics
from .smpl_skeleton import JOINT_INDEX, JOINT_NAMES

MAX_JOINT_SPEED = 15.0  # m/s
MAX_FLOOR_PENETRATION = 0.05  # m
_FEET = [JOINT_INDEX[f"{s}_{n}"] for s in ("left", "right") for n in ("ankle", "foot")]
SUFFIXES = (".bvh", ".c3d", ".npz")


def convert(path_in: Path | str, fps: float | None = None, joint_map: Mapping[str, str] | None = None,
            *, scale: float | None = None, report: dict | None = None, up: str | None = None,
            forward: str | None = None, rest_frame: int | None = None, markers: str | Mapping | None = None,
            skip_calibration: bool = True, ground: bool = True) -> MotionClip:
    """Read a .bvh, .c3d or .npz motion file as a canonical clip, resampled to `fps` if given.

    joint_map: {bvh_joint: smpl_joint_name} for BVH skeletons no built-in family names.
    scale: metres per BVH unit (default: detected). up / forward / rest_frame: the BVH
    file's axes and rest pose when detection is not wanted (see `bvh_to_clip`). markers: a
    C3D marker map (a built-in name or a mapping, see `c3d.py`). skip_calibration: drop a
    T- / A-pose at the clip's start. ground: keep a ground profile for non-flat floors.
    report: if given, filled with details: "lines" (the per-file report: mapping used,
    dropped joints and why, frame, calibration, ground), for C3D "failed_frames" and
    "mean_residual_m". Raises MotionFileError (a UserError) naming the file and the problem.
    """
    from .bvh import ConversionReport
    from .grounding import calibration_frames, clip_joints, ground_profile, trim_start, with_ground

    path = Path(path_in)
    suffix = path.suffix.lower()
    if fps is not None and (not np.isfinite(fps) or fps <= 0 or fps > 1000):
        raise UserError(f"--fps must be a positive number of at most 1000, got {fps:g}")
    info = ConversionReport(source=str(path))
    if suffix != ".bvh" and (joint_map is not None or up is not None or forward is not None or rest_frame is not None):
        raise UserError(f"{path}: --map, --up, --forward and --rest-frame apply to BVH files only")
    if suffix != ".c3d" and markers is not None:
        raise UserError(f"{path}: --markers applies to C3D files only")
    if suffix == ".bvh":
        from .bvh import bvh_to_clip

        clip = bvh_to_clip(path, fps=fps, joint_map=joint_map, scale=scale, up=up, forward=forward,
                           rest_frame=rest_frame, report=info)
    elif suffix == ".c3d":
        from .c3d import FitReport, c3d_to_clip

        fit = FitReport()
        clip = c3d_to_clip(path, fps=fps, report=fit, markers=markers, info=info)
        if report is not None:
            report.update(failed_frames=list(fit.failed_frames), mean_residual_m=fit.mean_residual)
    elif suffix == ".npz":
        clip = load_clip(path)
        clip = resample(clip, fps) if fps is not None else clip
    else:
        raise MotionFileError(f"motion file {path}: unknown type {path.suffix!r}; expected one of {', '.join(SUFFIXES)}")
    joints = clip_joints(clip)
    if skip_calibration:
        count = calibration_frames(clip, joints)
        if 0 < count < clip.num_frames:
            clip, joints = trim_start(clip, count), joints[count:]
            info.notes.append(f"calibration pose: frames 0-{count - 1} (T- or A-pose at the start) skipped")
            if report is not None and "failed_frames" in report:
                report["failed_frames"] = [f - count for f in report["failed_frames"] if f >= count]
        elif count == clip.num_frames:
            info.notes.append("every frame is a T- or A-pose: kept (no motion besides the calibration pose)")
    if ground and clip.ground is None:
        profile = ground_profile(clip, joints)
        if profile is not None:
            clip = with_ground(clip, profile)
            info.notes.append(f"ground not flat: from {profile.min():+.2f} m to {profile.max():+.2f} m "
                              "(stairs / platform / offset floor); the person stands on it per segment")
    if report is not None:
        report["lines"] = info.lines()
        report["mapping"] = dict(info.mapping)
        report["dropped"] = list(info.dropped)
        report["notes"] = list(info.notes)
    return clip


def motion_quality(clip: MotionClip, known_bad: Sequence[int] = ()) -> dict:
    """Per-frame check of a converted clip.

    A frame is bad if any pose / trans / joint value is NaN or inf, if any joint moves faster
    than MAX_JOINT_SPEED (15 m/s) from the previous frame, or if an ankle or ball of the foot
    is more than MAX_FLOOR_PENETRATION (5 cm) below the floor (y = 0, or the clip's ground
    profile: on stairs, a foot reaching down to the next step is below the step it stands on),
    if it is part of a T- / A-pose calibration run at the clip's start, or if it is listed in
    `known_bad` (e.g. C3D frames whose fit failed and that hold the previous pose).
    Returns {"frames", "ok" (bool array), "bad", "non_finite", "too_fast", "below_floor",
    "calibration", "known_bad"} (counts of frames).
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
    floor = clip.ground if clip.ground is not None else np.zeros(len(joints))
    below = joints[:, _FEET, 1].min(axis=1) - floor < -MAX_FLOOR_PENETRATION
    from .grounding import calibration_frames

    calibration = np.zeros(len(joints), dtype=bool)
    if finite.all():
        count = calibration_frames(clip, joints)
        if count < len(joints):
            calibration[:count] = True
    listed = np.zeros(len(joints), dtype=bool)
    listed[[int(f) for f in known_bad if 0 <= int(f) < len(joints)]] = True
    ok = finite & ~too_fast & ~below & ~listed & ~calibration
    return {"frames": int(len(ok)), "ok": ok, "bad": int((~ok).sum()), "non_finite": int((~finite).sum()),
            "too_fast": int((too_fast & finite).sum()), "below_floor": int((below & finite).sum()),
            "calibration": int(calibration.sum()), "known_bad": int(listed.sum())}


def read_joint_map(path: Path | str) -> dict[str, str]:
    """A YAML (or JSON) mapping {bvh_joint: smpl_joint_name}."""
    path = Path(path)
    data = read_map_file(path, "joint map", UserError)
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
    conv.add_argument("--up", default=None, help="BVH: the file's up axis (x, y, z, -x, -y, -z; default: detected)")
    conv.add_argument("--forward", default=None, help="BVH: the axis the skeleton faces (default: detected)")
    conv.add_argument("--rest-frame", type=int, default=None,
                      help="BVH: use this frame (a T-pose) as the rest pose instead of the zero-rotation pose")
    conv.add_argument("--markers", default=None,
                      help="C3D: marker map, a built-in name (" + "pig, isb, davis" + ") or a YAML file")
    conv.add_argument("--keep-calibration", action="store_true", help="keep a T- / A-pose at the clip's start")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        if args.out.suffix.lower() != ".npz":
            raise UserError(f"--out {args.out} must end in .npz")
        if not args.out.parent.is_dir():
            raise UserError(f"--out {args.out}: folder {args.out.parent} does not exist")
        if args.out.exists() and Path(args.input).exists() and args.out.samefile(args.input):
            raise UserError(f"--out {args.out} is the input file: name another file, the input is kept")
        if args.scale is not None and (not np.isfinite(args.scale) or args.scale <= 0):
            raise UserError(f"--scale must be a positive number, got {args.scale}")
        joint_map = read_joint_map(args.map) if args.map is not None else None
        details: dict = {}
        markers = args.markers
        if markers is not None and (markers.endswith((".yaml", ".yml", ".json")) or Path(markers).is_file()):
            from .c3d import read_marker_map

            markers = read_marker_map(markers)
        clip = convert(args.input, fps=args.fps, joint_map=joint_map, scale=args.scale, report=details, up=args.up,
                       forward=args.forward, rest_frame=args.rest_frame, markers=markers,
                       skip_calibration=not args.keep_calibration)
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
    for line in details.get("lines", []):
        print(line)
    return 0
