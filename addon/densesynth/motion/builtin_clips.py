"""Built-in motion clips made by code (no data files, deterministic), 30 fps.

Every clip is in the canonical format on `GENERIC_REST_JOINTS` (Y up, facing +Z, floor at
y = 0). Joint angles come from textbook descriptions of the movements (for walking and
running, typical sagittal joint-angle curves over the gait cycle as in Perry's and Winter's
gait analyses), interpolated with periodic splines. The translation is not invented
separately: its height keeps the lowest of the ankles / balls of the feet at its rest
height (so feet neither float nor sink and the pelvis bob comes out of the leg angles), and
for walking and running the forward speed is the one at which the stance foot does not slide.

Sign conventions in SMPL's frame (local rotations are about the parent's axes, which at
rest are the world axes): flexion of hip / shoulder (limb forward) is a rotation about -X,
knee flexion about +X, ankle dorsiflexion about -X, lowering the left arm from the T-pose
about -Z (the right arm about +Z), elbow flexion about -Y for the left arm (+Y right).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from scipy.interpolate import CubicSpline
from scipy.ndimage import gaussian_filter1d
from scipy.spatial.transform import Rotation

from .clip import MotionClip
from .kinematics import forward_kinematics
from .smpl_skeleton import GENERIC_REST_JOINTS, JOINT_INDEX, NUM_JOINTS

FPS = 30.0
J = JOINT_INDEX
_AXES = {"x": np.array([1.0, 0.0, 0.0]), "y": np.array([0.0, 1.0, 0.0]), "z": np.array([0.0, 0.0, 1.0])}
_ARM_DOWN = 78.0  # degrees below the T-pose: arms hang at the sides, clear of the hips


def _rot(axis: str, degrees) -> Rotation:
    angles = np.radians(np.atleast_1d(np.asarray(degrees, dtype=np.float64)))
    return Rotation.from_rotvec(angles[:, None] * _AXES[axis])


def _compose(*rotations: Rotation) -> Rotation:
    """rotations[0] * rotations[1] * ...: the last one is applied to a vector first."""
    out = rotations[0]
    for rotation in rotations[1:]:
        out = out * rotation
    return out


def _periodic(keys: list[tuple[float, float]]) -> Callable[[np.ndarray], np.ndarray]:
    """Smooth periodic curve (degrees) through (phase, value) keys on [0, 1]."""
    phases, values = np.array(keys, dtype=np.float64).T
    if phases[0] != 0.0 or phases[-1] != 1.0 or values[0] != values[-1]:
        raise ValueError("periodic keys must run from phase 0 to 1 with equal end values")
    spline = CubicSpline(phases, values, bc_type="periodic")
    return lambda phase: spline(np.mod(phase, 1.0))


def _bump(t: np.ndarray, duration: float) -> np.ndarray:
    """0 -> 1 -> 0 smoothly over the clip (holds briefly at the top)."""
    u = np.clip(t / duration, 0.0, 1.0)
    raw = 0.5 - 0.5 * np.cos(2.0 * np.pi * u)
    return np.clip(raw * 1.15, 0.0, 1.0)


class _PoseBuilder:
    def __init__(self, frames: int):
        self.rotvecs = np.zeros((frames, NUM_JOINTS, 3))

    def set(self, joint: str, rotation: Rotation) -> None:
        """Local rotation of `joint`: one for every frame, or a single one for all."""
        self.rotvecs[:, J[joint]] = rotation.as_rotvec().reshape(-1, 3)

    def arm(self, side: str, down=_ARM_DOWN, flexion=0.0, elbow=15.0) -> None:
        """Arm lowered `down` degrees from the T-pose, swung forward by `flexion` degrees,
        elbow bent by `elbow` degrees (scalars or per-frame arrays)."""
        n = len(self.rotvecs)
        sign = 1.0 if side == "left" else -1.0
        lower, flex, bend = (np.broadcast_to(np.asarray(v, dtype=np.float64), (n,)) for v in (down, flexion, elbow))
        self.set(f"{side}_shoulder", _compose(_rot("x", -flex), _rot("z", -sign * lower)))
        self.set(f"{side}_elbow", _rot("y", -sign * bend))

    def arms(self, down=_ARM_DOWN, flexion=0.0, elbow=15.0) -> None:
        for side in ("left", "right"):
            self.arm(side, down, flexion, elbow)

    def pose(self) -> np.ndarray:
        return self.rotvecs.reshape(len(self.rotvecs), 3 * NUM_JOINTS)


def _ground_height(poses: np.ndarray) -> np.ndarray:
    """Vertical trans that puts the lowest ankle / ball of the foot at its rest height."""
    rest = GENERIC_REST_JOINTS
    _, joints = forward_kinematics(poses, rest)
    contacts = [J["left_ankle"], J["right_ankle"], J["left_foot"], J["right_foot"]]
    drop = joints[:, contacts, 1] - rest[contacts, 1]
    return -drop.min(axis=1)


def _planted_feet(poses: np.ndarray) -> np.ndarray:
    """Horizontal trans that keeps the midpoint of the ankles where it is at rest."""
    rest = GENERIC_REST_JOINTS
    _, joints = forward_kinematics(poses, rest)
    ankles = [J["left_ankle"], J["right_ankle"]]
    return rest[ankles].mean(axis=0) - joints[:, ankles].mean(axis=1)


def _stationary_trans(poses: np.ndarray, lift: np.ndarray | None = None) -> np.ndarray:
    trans = _planted_feet(poses)
    trans[:, 1] = _ground_height(poses) + (0.0 if lift is None else lift)
    return trans


def _gait(name: str, *, cycle: float, cycles: int, stance: float, hip, knee, ankle, toe,
          arm_swing: float, arm_mean: float, elbow_mean: float, elbow_swing: float,
          trunk_lean: float, pelvis_yaw: float, pelvis_roll: float, sway: float,
          flight_height: float) -> MotionClip:
    cycle_frames = cycle * FPS
    if abs(cycle_frames - round(cycle_frames)) > 1e-9:
        raise ValueError(f"a {name} cycle of {cycle} s is not a whole number of frames at {FPS} fps")
    frames = int(round(cycle_frames)) * cycles + 1  # closed: the last pose equals the first
    t = np.arange(frames) / FPS
    phase = t / cycle  # left heel strike at phase 0, right at 0.5
    b = _PoseBuilder(frames)
    for side, offset in (("left", 0.0), ("right", 0.5)):
        p = phase - offset
        b.set(f"{side}_hip", _rot("x", -hip(p)))
        b.set(f"{side}_knee", _rot("x", knee(p)))
        b.set(f"{side}_ankle", _rot("x", -ankle(p)))
        b.set(f"{side}_foot", _rot("x", -toe(p)))
    cos = np.cos(2.0 * np.pi * phase)
    sin = np.sin(2.0 * np.pi * phase)
    # Pelvis turns its left side forward as the left leg reaches forward (heel strike) and
    # drops on the swing side; the trunk counter-rotates and stays upright.
    b.set("pelvis", _compose(_rot("y", -pelvis_yaw * cos), _rot("z", pelvis_roll * sin)))
    b.set("spine1", _compose(_rot("x", trunk_lean), _rot("z", -pelvis_roll * sin), _rot("y", 0.6 * pelvis_yaw * cos)))
    b.set("spine2", _rot("y", 0.6 * pelvis_yaw * cos))
    b.set("spine3", _rot("y", 0.6 * pelvis_yaw * cos))
    b.set("neck", _compose(_rot("x", -0.6 * trunk_lean), _rot("y", -0.8 * pelvis_yaw * cos)))
    # Each arm swings forward with the opposite leg (the left arm is back at left heel
    # strike), slightly lagging; the elbow bends more as the arm comes forward.
    left_back = np.cos(2.0 * np.pi * (phase - 0.05))
    b.arm("left", flexion=arm_mean - arm_swing * left_back, elbow=elbow_mean - elbow_swing * left_back)
    b.arm("right", flexion=arm_mean + arm_swing * left_back, elbow=elbow_mean + elbow_swing * left_back)
    poses = b.pose()

    # Forward travel that keeps the stance feet from sliding: frame to frame, the body
    # moves forward by as much as the stance foot's contact point (heel / ankle, or the
    # ball of the foot once the heel has risen) moves backward relative to it.
    _, joints = forward_kinematics(poses, GENERIC_REST_JOINTS)
    rest_y = GENERIC_REST_JOINTS[:, 1]
    steps = np.zeros(frames - 1)
    counts = np.zeros(frames - 1)
    for (ankle_joint, ball_joint), offset in (((J["left_ankle"], J["left_foot"]), 0.0),
                                              ((J["right_ankle"], J["right_foot"]), 0.5)):
        in_stance = np.mod(phase - offset, 1.0) < stance
        both = in_stance[:-1] & in_stance[1:]
        heel_lower = (joints[:-1, ankle_joint, 1] - rest_y[ankle_joint]) <= (joints[:-1, ball_joint, 1] - rest_y[ball_joint])
        contact = np.where(heel_lower, ankle_joint, ball_joint)
        frame = np.arange(frames - 1)
        slide = joints[frame + 1, contact, 2] - joints[frame, contact, 2]
        steps[both] -= slide[both]
        counts[both] += 1
    supported = counts > 0
    steps[supported] /= counts[supported]
    steps[~supported] = steps[supported].mean()  # flight: carry on at the average speed
    # Soften the jumps where the contact passes from heel to ball or from foot to foot
    # (whole cycles, so the wrap-around is seamless); costs a few millimetres of slide.
    steps = gaussian_filter1d(steps, sigma=1.5, mode="wrap")

    trans = np.zeros((frames, 3))
    trans[1:, 2] = np.cumsum(steps)
    trans[:, 0] = sway * np.sin(2.0 * np.pi * phase)  # over the stance leg
    trans[:, 1] = _ground_height(poses)
    if flight_height > 0.0:
        # Both feet off the ground between one stance and the next: a ballistic arc.
        for offset in (0.0, 0.5):
            u = (np.mod(phase - offset, 1.0) - stance) / (0.5 - stance)
            inside = (u > 0.0) & (u < 1.0)
            trans[inside, 1] += 4.0 * flight_height * u[inside] * (1.0 - u[inside])
    return MotionClip(poses=poses, trans=trans, mocap_framerate=FPS,
                      rest_joints=np.array(GENERIC_REST_JOINTS), source=f"builtin:{name}")


def walk() -> MotionClip:
    """Two strides of level walking (1.1 s per stride, about 1.2 m/s)."""
    return _gait(
        "walk", cycle=1.1, cycles=2, stance=0.6,
        hip=_periodic([(0, 30), (0.1, 28), (0.2, 20), (0.3, 10), (0.4, 0), (0.5, -8), (0.56, -10),
                       (0.62, -4), (0.7, 14), (0.8, 27), (0.9, 32), (1, 30)]),
        knee=_periodic([(0, 5), (0.1, 15), (0.16, 18), (0.3, 10), (0.4, 6), (0.5, 12), (0.6, 37),
                        (0.7, 60), (0.76, 58), (0.84, 40), (0.92, 14), (1, 5)]),
        ankle=_periodic([(0, 0), (0.06, -5), (0.12, -2), (0.2, 3), (0.3, 7), (0.42, 10), (0.5, 7),
                         (0.56, 0), (0.62, -15), (0.67, -18), (0.74, -9), (0.82, -1), (0.9, 1), (1, 0)]),
        toe=_periodic([(0, 0), (0.4, 0), (0.55, 22), (0.66, 5), (0.75, 0), (1, 0)]),
        arm_swing=16.0, arm_mean=4.0, elbow_mean=22.0, elbow_swing=8.0, trunk_lean=3.0,
        pelvis_yaw=5.0, pelvis_roll=3.0, sway=0.02, flight_height=0.0,
    )


def run() -> MotionClip:
    """Three strides of jogging (0.7 s per stride, about 2.6 m/s, with a flight phase)."""
    return _gait(
        "run", cycle=0.7, cycles=3, stance=0.38,
        hip=_periodic([(0, 32), (0.2, 10), (0.38, -12), (0.5, -4), (0.7, 40), (0.85, 44), (1, 32)]),
        knee=_periodic([(0, 20), (0.15, 40), (0.38, 16), (0.55, 75), (0.7, 100), (0.85, 50), (0.97, 22), (1, 20)]),
        ankle=_periodic([(0, 5), (0.15, 15), (0.38, -22), (0.55, -6), (0.8, 5), (1, 5)]),
        toe=_periodic([(0, 0), (0.25, 0), (0.36, 20), (0.45, 3), (0.55, 0), (1, 0)]),
        arm_swing=24.0, arm_mean=8.0, elbow_mean=85.0, elbow_swing=12.0, trunk_lean=8.0,
        pelvis_yaw=6.0, pelvis_roll=3.0, sway=0.015, flight_height=0.04,
    )


def idle() -> MotionClip:
    """Standing with the arms down, swaying slightly, breathing, looking around (3 s)."""
    frames = int(3.0 * FPS) + 1
    t = np.arange(frames) / FPS
    w = 2.0 * np.pi * t / 3.0
    b = _PoseBuilder(frames)
    lateral = 1.5 * np.sin(w)
    b.set("left_hip", _rot("z", lateral))
    b.set("right_hip", _rot("z", lateral))
    b.set("left_ankle", _rot("z", -lateral))
    b.set("right_ankle", _rot("z", -lateral))
    b.set("left_knee", _rot("x", 3.0 + 2.0 * np.sin(w)))
    b.set("right_knee", _rot("x", 3.0 - 2.0 * np.sin(w)))
    b.set("spine1", _rot("z", -0.5 * lateral))
    b.set("spine3", _rot("x", 1.0 * np.sin(3.0 * w)))  # breathing
    b.set("neck", _rot("y", 6.0 * np.sin(w + 0.5)))
    b.arms(down=_ARM_DOWN + 2.0 * np.sin(w), elbow=12.0 + 3.0 * np.sin(3.0 * w))
    poses = b.pose()
    return MotionClip(poses=poses, trans=_stationary_trans(poses), mocap_framerate=FPS,
                      rest_joints=np.array(GENERIC_REST_JOINTS), source="builtin:idle")


def wave() -> MotionClip:
    """Standing, the right hand raised beside the head, waving (2.4 s, 4 waves)."""
    frames = int(2.4 * FPS) + 1
    t = np.arange(frames) / FPS
    b = _PoseBuilder(frames)
    w = 2.0 * np.pi * t / 2.4
    b.arm("left", elbow=12.0)
    # Right arm: twisted so the elbow bends upwards (palm to the front), raised 20 degrees
    # above horizontal, forearm near vertical and swinging side to side.
    b.set("right_shoulder", _compose(_rot("z", -20.0), _rot("x", -90.0)))
    b.set("right_elbow", _rot("y", 80.0 + 22.0 * np.sin(4.0 * w)))
    b.set("right_wrist", _rot("y", 10.0 * np.sin(4.0 * w - 0.6)))
    b.set("spine1", _rot("z", 1.0 * np.sin(w)))
    b.set("neck", _rot("x", -3.0))
    b.set("left_knee", _rot("x", 3.0))
    b.set("right_knee", _rot("x", 3.0))
    poses = b.pose()
    return MotionClip(poses=poses, trans=_stationary_trans(poses), mocap_framerate=FPS,
                      rest_joints=np.array(GENERIC_REST_JOINTS), source="builtin:wave")


def squat() -> MotionClip:
    """One deep squat, down and up, heels on the ground, arms forward for balance (2.5 s)."""
    duration = 2.5
    frames = int(duration * FPS) + 1
    t = np.arange(frames) / FPS
    d = _bump(t, duration)
    pelvis_tilt, hip, knee = 25.0 * d, 115.0 * d, 120.0 * d
    ankle = pelvis_tilt - hip + knee  # dorsiflexion that keeps the feet flat
    b = _PoseBuilder(frames)
    b.set("pelvis", _rot("x", pelvis_tilt))
    b.set("spine1", _rot("x", 5.0 * d))
    b.set("neck", _rot("x", -20.0 * d))
    for side, sign in (("left", 1.0), ("right", -1.0)):
        b.set(f"{side}_hip", _compose(_rot("z", sign * 8.0 * d), _rot("x", -hip)))
        b.set(f"{side}_knee", _rot("x", knee))
        b.set(f"{side}_ankle", _compose(_rot("x", -ankle), _rot("z", -sign * 8.0 * d)))
    b.arms(flexion=85.0 * d, elbow=15.0 - 5.0 * d)
    poses = b.pose()
    return MotionClip(poses=poses, trans=_stationary_trans(poses), mocap_framerate=FPS,
                      rest_joints=np.array(GENERIC_REST_JOINTS), source="builtin:squat")


def reach() -> MotionClip:
    """Reaching forward and up with the right hand, then back (2 s)."""
    duration = 2.0
    frames = int(duration * FPS) + 1
    t = np.arange(frames) / FPS
    d = _bump(t, duration)
    b = _PoseBuilder(frames)
    b.arm("left", elbow=15.0)
    b.arm("right", down=_ARM_DOWN - 10.0 * d, flexion=120.0 * d, elbow=15.0 - 10.0 * d)
    b.set("right_collar", _rot("y", 8.0 * d))  # shoulder girdle protracts
    b.set("spine1", _compose(_rot("x", 10.0 * d), _rot("y", 8.0 * d)))
    b.set("spine3", _rot("y", 6.0 * d))
    b.set("neck", _rot("x", -12.0 * d))
    b.set("left_knee", _rot("x", 3.0))
    b.set("right_knee", _rot("x", 3.0))
    poses = b.pose()
    return MotionClip(poses=poses, trans=_stationary_trans(poses), mocap_framerate=FPS,
                      rest_joints=np.array(GENERIC_REST_JOINTS), source="builtin:reach")


def jumping_jacks() -> MotionClip:
    """Two jumping jacks (1 s each): feet apart with the arms overhead, then back."""
    period, reps = 1.0, 2
    frames = int(period * reps * FPS) + 1
    t = np.arange(frames) / FPS
    u = np.mod(t / period, 1.0)
    # Closed on the ground, jump out (0.15-0.35), open on the ground, jump back (0.65-0.85).
    jumps = ((0.15, 0.35), (0.65, 0.85))
    ramps = [np.clip((u - a) / (b - a), 0.0, 1.0) for a, b in jumps]
    smooth = [r * r * (3.0 - 2.0 * r) for r in ramps]
    open_ = smooth[0] - smooth[1]
    # Ballistic hop during each jump: 0.2 s of flight rises g t^2 / 8 = 5 cm.
    hop = sum(4.0 * 0.05 * r * (1.0 - r) for r in ramps)
    crouch = sum(np.exp(-0.5 * ((u - c) / 0.05) ** 2) for c in (0.12, 0.38, 0.62, 0.88))  # push off / land
    b = _PoseBuilder(frames)
    b.arms(down=_ARM_DOWN - 148.0 * open_, elbow=10.0)
    for side, sign in (("left", 1.0), ("right", -1.0)):
        b.set(f"{side}_hip", _compose(_rot("z", sign * 14.0 * open_), _rot("x", -8.0 * crouch)))
        b.set(f"{side}_knee", _rot("x", 5.0 + 16.0 * crouch))
        b.set(f"{side}_ankle", _compose(_rot("x", -5.0 - 8.0 * crouch), _rot("z", -sign * 14.0 * open_)))
    b.set("neck", _rot("x", -3.0))
    poses = b.pose()
    return MotionClip(poses=poses, trans=_stationary_trans(poses, lift=hop), mocap_framerate=FPS,
                      rest_joints=np.array(GENERIC_REST_JOINTS), source="builtin:jumping_jacks")


BUILTIN_CLIPS: dict[str, Callable[[], MotionClip]] = {
    "walk": walk,
    "run": run,
    "idle": idle,
    "wave": wave,
    "squat": squat,
    "reach": reach,
    "jumping_jacks": jumping_jacks,
}


def builtin_clip(name: str) -> MotionClip:
    """A freshly generated built-in clip by name (see `BUILTIN_CLIPS`)."""
    try:
        factory = BUILTIN_CLIPS[name]
    except KeyError:
        raise ValueError(f"unknown built-in clip {name!r}; known: {sorted(BUILTIN_CLIPS)}") from None
    return factory()
