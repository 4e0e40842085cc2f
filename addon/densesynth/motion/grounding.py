"""Floors that are not flat, and calibration poses at the start of a clip.

Ground (stairs, platforms, a lab floor that is not at y = 0): the source's vertical motion is
kept; what changes is the height the person stands on. A foot is in contact where it is
nearly still (its slower joint, ankle or ball of the foot, under CONTACT_SPEED). The
support height of a frame is the lowest contact foot's height above its standing height
(each foot joint's height in the rest skeleton, which stands on y = 0). Frames are split
into segments by which foot supports the body; each segment's ground is its lowest
support height (the foot flat on the step, not rolled over the toes); frames without
contact (flights, jumps) take the ground interpolated between their neighbours. A clip with
contact in under MIN_CONTACT_FRACTION of its frames (no reliable contacts) keeps y = 0. A clip whose
ground stays within FLAT_TOLERANCE of y = 0 keeps the flat floor (ground None).

Calibration poses: captures often start in a T- or A-pose held for the system (cgspeed's CMU
conversions put a T-pose in frame 0). A frame is a calibration pose when both upper arms are
raised 35-110 degrees from the trunk, sideways (not forwards), with straight elbows and
knees and an upright trunk; the run of such frames at the start of a clip is skipped.
"""
from __future__ import annotations

import numpy as np

from .clip import MotionClip
from .kinematics import forward_kinematics
from .smpl_skeleton import JOINT_INDEX

J = JOINT_INDEX
CONTACT_SPEED = 0.35  # m/s
FLAT_TOLERANCE = 0.03  # m
MIN_SEGMENT_S = 0.08  # s: shorter contact runs are noise
MIN_CONTACT_FRACTION = 0.3  # of the frames: fewer contact frames give no ground profile
_FOOT_JOINTS = {"left": (J["left_ankle"], J["left_foot"]), "right": (J["right_ankle"], J["right_foot"])}


def clip_joints(clip: MotionClip) -> np.ndarray:
    """(T, 24, 3) joint positions of a clip."""
    return forward_kinematics(clip.poses, clip.rest_joints)[1] + clip.trans[:, None, :]


def ground_profile(clip: MotionClip, joints: np.ndarray | None = None) -> np.ndarray | None:
    """(T,) ground height per frame, or None when the clip's floor is flat at y = 0."""
    joints = clip_joints(clip) if joints is None else joints
    frames = len(joints)
    if frames < 2:
        return None
    fps = clip.mocap_framerate
    rest_y = clip.rest_joints[:, 1]
    height = {}
    still = {}
    for side, idx in _FOOT_JOINTS.items():
        idx = list(idx)
        pos = joints[:, idx]
        speed = np.zeros((frames, len(idx)))
        speed[1:-1] = np.linalg.norm(pos[2:] - pos[:-2], axis=2) * fps / 2.0
        speed[0], speed[-1] = np.linalg.norm(pos[1] - pos[0], axis=1) * fps, np.linalg.norm(pos[-1] - pos[-2], axis=1) * fps
        still[side] = speed.min(axis=1) < CONTACT_SPEED
        height[side] = (pos[:, :, 1] - rest_y[idx]).min(axis=1)
    support = np.full(frames, np.nan)
    which = np.full(frames, -1)
    for f in range(frames):
        options = [(height[s][f], k) for k, s in enumerate(_FOOT_JOINTS) if still[s][f]]
        if options:
            support[f], which[f] = min(options)
    ground = np.full(frames, np.nan)
    min_len = max(int(round(MIN_SEGMENT_S * fps)), 2)
    start = 0
    while start < frames:
        end = start
        while end + 1 < frames and which[end + 1] == which[start]:
            end += 1
        if which[start] >= 0 and end - start + 1 >= min_len:
            ground[start:end + 1] = np.nanmin(support[start:end + 1])
        start = end + 1
    known = np.flatnonzero(np.isfinite(ground))
    if len(known) < MIN_CONTACT_FRACTION * frames:  # no reliable contacts: keep the flat floor
        return None
    ground = np.interp(np.arange(frames), known, ground[known])
    if np.abs(ground).max() <= FLAT_TOLERANCE:
        return None
    return ground


def calibration_frames(clip: MotionClip, joints: np.ndarray | None = None) -> int:
    """How many frames at the start of the clip are a T- or A-pose calibration pose."""
    joints = clip_joints(clip) if joints is None else joints
    ok = is_calibration_pose(joints)
    count = 0
    while count < len(ok) and ok[count]:
        count += 1
    return count


def is_calibration_pose(joints: np.ndarray) -> np.ndarray:
    """(T,) bool: T- or A-pose frames (see the module docstring)."""
    def unit(v):
        return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)

    trunk = unit(joints[:, J["neck"]] - joints[:, J["pelvis"]])
    left = unit(joints[:, J["left_hip"]] - joints[:, J["right_hip"]])
    forward = unit(np.cross(left, trunk))
    upright = trunk[:, 1] > np.cos(np.radians(20))
    ok = upright.copy()
    raised = []
    for side in ("left", "right"):
        sh, el, wr = (joints[:, J[f"{side}_{n}"]] for n in ("shoulder", "elbow", "wrist"))
        upper, fore = unit(el - sh), unit(wr - el)
        abduction = np.degrees(np.arccos(np.clip(np.sum(upper * -trunk, axis=1), -1, 1)))
        straight = np.sum(upper * fore, axis=1) > np.cos(np.radians(25))
        sideways = np.abs(np.sum(upper * forward, axis=1)) < 0.5
        ok &= (abduction > 35) & (abduction < 110) & straight & sideways
        raised.append(abduction)
        hip, knee, ankle = (joints[:, J[f"{side}_{n}"]] for n in ("hip", "knee", "ankle"))
        ok &= np.sum(unit(knee - hip) * unit(ankle - knee), axis=1) > np.cos(np.radians(15))
    ok &= np.abs(raised[0] - raised[1]) < 20
    return ok


def trim_start(clip: MotionClip, count: int) -> MotionClip:
    """The clip without its first `count` frames."""
    if count <= 0:
        return clip
    return MotionClip(poses=clip.poses[count:], trans=clip.trans[count:], mocap_framerate=clip.mocap_framerate,
                      rest_joints=clip.rest_joints, source=clip.source,
                      ground=None if clip.ground is None else clip.ground[count:])


def with_ground(clip: MotionClip, ground: np.ndarray | None) -> MotionClip:
    return MotionClip(poses=clip.poses, trans=clip.trans, mocap_framerate=clip.mocap_framerate,
                      rest_joints=clip.rest_joints, source=clip.source, ground=ground)
