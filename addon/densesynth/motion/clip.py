"""The project's one motion format, its file form, and sampling at any time.

A clip holds SMPL-layout motion:
- `poses` (T, 72): axis-angle rotations relative to SMPL's rest (T-)pose, root first,
  each joint relative to its parent (as SMPL's pose parameters);
- `trans` (T, 3): metres, added to every joint after forward kinematics, in SMPL's Y-up
  world (the person faces +Z at zero root rotation, the person's left is +X);
- `mocap_framerate`: frames per second;
- `rest_joints` (24, 3): the rest skeleton the motion is defined on, so
  `forward_kinematics(poses[t], rest_joints)[1] + trans[t]` are the joint positions;
- `source`: where it came from (free text).
The floor is y = 0 and rest skeletons stand on it (`GENERIC_REST_JOINTS` does), so a clip
whose trans is zero stands at the origin.

Files are `.npz` with those keys plus `densesynth_motion` (the format version). `load_clip`
also reads AMASS-style files (see its docstring for how they are brought into this frame).
"""
from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from ..errors import UserError
from ..io_utils import atomic_write_bytes
from .smpl_skeleton import GENERIC_REST_JOINTS, NUM_JOINTS, SMPL_TEMPLATE_PELVIS

FORMAT_VERSION = 1
POSE_WIDTH = 3 * NUM_JOINTS
# SMPL+H (156 wide) and SMPL-X (165 wide) share SMPL's first 22 joints; their next values
# are finger / jaw rotations, not SMPL's two hand joints.
_BODY_WIDTH_22 = 66

# Z-up world (AMASS) -> SMPL's Y-up world: (x, y, z) -> (x, z, -y), a rotation of -90
# degrees about X.
Z_UP_TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


class MotionFileError(UserError, ValueError):
    """A motion file that cannot be read as a clip; the message names the file."""


def read_map_file(path: Path, what: str, error: type[Exception] = MotionFileError):
    """The YAML (or JSON) in a small map file the user names (`what`: "joint map", "marker
    map"); a missing or unreadable file raises `error` with one line naming it."""
    import yaml  # local: only the map options need it

    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise error(f"{what} {path} is not readable YAML: {' '.join(str(exc).split())}") from None


@dataclass(frozen=True, eq=False)  # array fields: no element-wise ==
class MotionClip:
    poses: np.ndarray  # (T, 72)
    trans: np.ndarray  # (T, 3)
    mocap_framerate: float
    rest_joints: np.ndarray  # (24, 3)
    source: str = ""
    # (T,) height of the ground under the person per frame (metres, SMPL frame) for clips
    # whose floor is not flat (stairs, platforms: see `grounding.py`); None: the floor y = 0.
    ground: np.ndarray | None = None

    def __post_init__(self) -> None:
        poses = np.asarray(self.poses, dtype=np.float64)
        trans = np.asarray(self.trans, dtype=np.float64)
        rest = np.asarray(self.rest_joints, dtype=np.float64)
        problem = _problem(poses, trans, float(self.mocap_framerate), rest)
        if problem:
            raise ValueError(f"invalid MotionClip from {self.source!r}: {problem}")
        object.__setattr__(self, "poses", poses)
        object.__setattr__(self, "trans", trans)
        object.__setattr__(self, "rest_joints", rest)
        object.__setattr__(self, "mocap_framerate", float(self.mocap_framerate))
        object.__setattr__(self, "source", str(self.source))
        if self.ground is not None:
            ground = np.asarray(self.ground, dtype=np.float64)
            if ground.shape != (len(poses),) or not np.all(np.isfinite(ground)):
                raise ValueError(f"invalid MotionClip from {self.source!r}: ground must be ({len(poses)},) finite "
                                 f"heights, got {ground.shape}")
            object.__setattr__(self, "ground", ground)

    @property
    def num_frames(self) -> int:
        return len(self.poses)

    @property
    def duration(self) -> float:
        """Seconds from the first to the last frame."""
        return (self.num_frames - 1) / self.mocap_framerate


def _problem(poses: np.ndarray, trans: np.ndarray, fps: float, rest: np.ndarray) -> str:
    if poses.ndim != 2 or poses.shape[1] != POSE_WIDTH:
        return f"poses must be (T, {POSE_WIDTH}), got {poses.shape}"
    if len(poses) < 1:
        return "poses has no frames"
    if trans.shape != (len(poses), 3):
        return f"trans must be ({len(poses)}, 3) to match poses, got {trans.shape}"
    if not np.isfinite(fps) or fps <= 0:
        return f"mocap_framerate must be a positive number, got {fps}"
    if rest.shape != (NUM_JOINTS, 3):
        return f"rest_joints must be ({NUM_JOINTS}, 3), got {rest.shape}"
    for name, array in (("poses", poses), ("trans", trans), ("rest_joints", rest)):
        if not np.all(np.isfinite(array)):
            return f"{name} holds non-finite values (NaN or inf)"
    return ""


def save_clip(path: Path | str, clip: MotionClip) -> None:
    """Write `clip` as an .npz file, atomically (complete new file or the old one)."""
    buffer = io.BytesIO()
    np.savez(
        buffer,
        densesynth_motion=np.int32(FORMAT_VERSION),
        poses=clip.poses,
        trans=clip.trans,
        mocap_framerate=np.float64(clip.mocap_framerate),
        rest_joints=clip.rest_joints,
        source=np.array(clip.source),
        **({"ground": clip.ground} if clip.ground is not None else {}),
    )
    atomic_write_bytes(Path(path), buffer.getvalue())


def load_clip(path: Path | str, *, up_axis: str | None = None) -> MotionClip:
    """Read a clip written by `save_clip`, or an AMASS-style `.npz`.

    AMASS-style files hold `poses` (T, >= 72), `trans` (T, 3) and `mocap_framerate` or
    `mocap_frame_rate` (other keys are ignored). Widths above 72 are SMPL+H (156) or
    SMPL-X (165) layouts: their first 66 values are the 22 body joints shared with SMPL,
    the rest are fingers / face, so SMPL's two hand joints are set to rest. They have no
    skeleton, so they are put on `GENERIC_REST_JOINTS`; trans is re-based from SMPL's
    template pelvis (about 22 cm below its origin) to the generic skeleton's pelvis.

    up_axis: the file's world up axis, "y" or "z". Default: "y" for our own files, "z" for
    foreign ones (AMASS worlds are Z up); Z-up motion is rotated into the Y-up frame.
    Raises MotionFileError (a ValueError) naming the file and what is wrong.
    """
    path = Path(path)
    try:
        loaded = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise MotionFileError(f"motion file {path} does not exist") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise MotionFileError(f"motion file {path} is not a readable .npz archive: {exc}") from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise MotionFileError(f"motion file {path} holds a single array, not an .npz archive")
    wanted = ("densesynth_motion", "poses", "trans", "mocap_framerate", "mocap_frame_rate",
              "rest_joints", "source", "ground")
    try:
        with loaded:
            arrays = {key: loaded[key] for key in wanted if key in loaded.files}
            present = sorted(loaded.files)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise MotionFileError(f"motion file {path}: cannot read its arrays: {exc}") from None

    def fail(message: str) -> MotionFileError:
        return MotionFileError(f"motion file {path}: {message}")

    ours = "densesynth_motion" in arrays
    if up_axis is None:
        up_axis = "y" if ours else "z"
    if up_axis not in ("y", "z"):
        raise ValueError(f"up_axis must be 'y' or 'z', got {up_axis!r}")
    for key in ("poses", "trans"):
        if key not in arrays:
            raise fail(f"missing {key!r} (keys present: {present})")
    rate_key = next((k for k in ("mocap_framerate", "mocap_frame_rate") if k in arrays), None)
    if rate_key is None:
        raise fail(f"missing 'mocap_framerate' or 'mocap_frame_rate' (keys present: {present})")
    try:
        poses = np.asarray(arrays["poses"], dtype=np.float64)
        trans = np.asarray(arrays["trans"], dtype=np.float64)
        fps = float(np.asarray(arrays[rate_key]).reshape(()))
    except (TypeError, ValueError) as exc:
        raise fail(f"poses, trans or frame rate is not numeric: {exc}") from None
    if poses.ndim != 2 or poses.shape[1] < POSE_WIDTH:
        raise fail(f"'poses' must be (T, 72 or more), got {poses.shape}")
    if poses.shape[1] > POSE_WIDTH:
        body = poses[:, :_BODY_WIDTH_22]
        poses = np.concatenate([body, np.zeros((len(poses), POSE_WIDTH - _BODY_WIDTH_22))], axis=1)
    if trans.shape != (len(poses), 3):
        raise fail(f"'trans' must be ({len(poses)}, 3) to match 'poses', got {trans.shape}")

    if "rest_joints" in arrays:
        rest = np.asarray(arrays["rest_joints"], dtype=np.float64)
        pelvis_offset = rest[0] if rest.shape == (NUM_JOINTS, 3) else np.zeros(3)
    else:
        rest = np.array(GENERIC_REST_JOINTS)
        pelvis_offset = SMPL_TEMPLATE_PELVIS
    if up_axis == "z":
        # The root rotates about the pelvis joint, so re-base through the pelvis position.
        pelvis_world = trans + pelvis_offset
        root = Rotation.from_matrix(Z_UP_TO_Y_UP) * Rotation.from_rotvec(poses[:, :3])
        poses = poses.copy()
        poses[:, :3] = root.as_rotvec()
        trans = pelvis_world @ Z_UP_TO_Y_UP.T - rest[0]
    elif "rest_joints" not in arrays:
        trans = trans + pelvis_offset - rest[0]

    source = str(arrays["source"]) if "source" in arrays else f"file:{path.name}"
    try:
        ground = np.asarray(arrays["ground"], dtype=np.float64) if "ground" in arrays and ours else None
        return MotionClip(poses=poses, trans=trans, mocap_framerate=fps, rest_joints=rest, source=source,
                          ground=ground)
    except ValueError as exc:
        raise fail(str(exc)) from None


def _slerp_rotvecs(a: np.ndarray, b: np.ndarray, alpha: np.ndarray | float) -> np.ndarray:
    """Slerp between axis-angle rotations a and b (..., 3) at fraction alpha (broadcast)."""
    ra = Rotation.from_rotvec(a.reshape(-1, 3))
    rb = Rotation.from_rotvec(b.reshape(-1, 3))
    step = (ra.inv() * rb).as_rotvec()  # shortest arc from a to b
    alpha = np.broadcast_to(np.asarray(alpha, dtype=np.float64)[..., None], a.shape[:-1] + (1,))
    out = ra * Rotation.from_rotvec(step * alpha.reshape(-1, 1))
    return out.as_rotvec().reshape(a.shape)


def _sample(clip: MotionClip, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    frames = np.clip(np.asarray(times, dtype=np.float64) * clip.mocap_framerate, 0.0, clip.num_frames - 1)
    lo = np.floor(frames).astype(np.int64)
    lo = np.minimum(lo, clip.num_frames - 1)
    hi = np.minimum(lo + 1, clip.num_frames - 1)
    alpha = frames - lo
    pose_lo = clip.poses[lo].reshape(len(lo), NUM_JOINTS, 3)
    pose_hi = clip.poses[hi].reshape(len(lo), NUM_JOINTS, 3)
    poses = _slerp_rotvecs(pose_lo, pose_hi, np.repeat(alpha[:, None], NUM_JOINTS, axis=1))
    trans = clip.trans[lo] * (1.0 - alpha[:, None]) + clip.trans[hi] * alpha[:, None]
    return poses.reshape(len(lo), POSE_WIDTH), trans


def ground_at(clip: MotionClip, t_seconds: float | np.ndarray) -> np.ndarray | float:
    """Height of the ground under the person at time t (0 for flat-floor clips)."""
    if clip.ground is None:
        return np.zeros(np.shape(t_seconds)) if np.ndim(t_seconds) else 0.0
    frames = np.clip(np.asarray(t_seconds, dtype=np.float64) * clip.mocap_framerate, 0.0, clip.num_frames - 1)
    out = np.interp(frames, np.arange(clip.num_frames), clip.ground)
    return float(out) if np.ndim(out) == 0 else out


def sample_grounded(clip: MotionClip, t_seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """`sample_frame` with trans measured from the ground under the person (stairs and
    platforms render with the supporting foot on the floor; flat clips are unchanged)."""
    pose, trans = sample_frame(clip, t_seconds)
    if clip.ground is not None:
        trans = trans.copy()
        trans[1] -= ground_at(clip, t_seconds)
    return pose, trans


def sample_frame(clip: MotionClip, t_seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """Pose (72,) and trans (3,) at time t (seconds from the first frame).

    Between frames, every joint's rotation is slerped (shortest arc) and trans is linearly
    interpolated; times outside the clip are clamped to its first / last frame.
    """
    poses, trans = _sample(clip, np.array([float(t_seconds)]))
    return poses[0], trans[0]


def resample(clip: MotionClip, fps: float) -> MotionClip:
    """The clip at another frame rate, by slerp (no frame skipping or repetition)."""
    fps = float(fps)
    if not np.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be a positive number, got {fps}")
    count = int(np.floor(clip.duration * fps + 1e-9)) + 1
    times = np.arange(count) / fps
    poses, trans = _sample(clip, times)
    return MotionClip(
        poses=poses,
        trans=trans,
        mocap_framerate=fps,
        rest_joints=clip.rest_joints,
        source=clip.source,
        ground=None if clip.ground is None else ground_at(clip, times),
    )
