"""A person in the world: body shape from the phenotype, pose from a motion clip.

The world is Blender's: Z up, metres, ground at z = 0. The person stands on the ground
(lowest vertex at z = 0), centred at the origin; the camera, not the person, moves around.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..bodies.default_body import DefaultBody
from ..motion.catalogue import clip_by_spec, clip_errors
from ..motion.clip import MotionClip, sample_grounded
from ..motion.kinematics import forward_kinematics
from ..motion.mirror import mirror_pose
from ..motion.retarget import ANNY_JOINT_MAP, retarget_pose

NUM_COCO_KEYPOINTS = 17
FOOT_ROLL_M = 0.02


@dataclass(frozen=True)
class PosedPerson:
    vertices: np.ndarray  # (V, 3) world: the body
    keypoints: np.ndarray  # (17, 3) world, COCO order
    surface: np.ndarray | None = None  # (V, 3) the outer surface with garments and hair, when dressed

    @property
    def outer(self) -> np.ndarray:
        """What the camera sees: the dressed surface (same topology and labels), else the body."""
        return self.vertices if self.surface is None else self.surface


def _airborne_height(pose72: np.ndarray, trans: np.ndarray, rest_joints: np.ndarray) -> float:
    """How far the motion's lowest joint rises above its standing height (jumps), in metres.

    Grounded motion puts the body's lowest vertex on the floor; only a real jump lifts it.
    Measured on the motion's own skeleton (SMPL frame, Y up), where the floor is y = 0.
    Rolling over the toes raises every foot joint by up to ~2 cm while the sole still
    touches the floor, so rises below FOOT_ROLL_M count as standing.
    """
    _, joints = forward_kinematics(pose72, rest_joints)
    lowest = float((joints[:, 1] + trans[1]).min())
    return max(0.0, lowest - float(rest_joints[:, 1].min()) - FOOT_ROLL_M)


def _jump_lift(pose72: np.ndarray, trans: np.ndarray, clip: MotionClip, body_span: float) -> float:
    """The jump height on the body: the motion's airborne height scaled by the body's rest
    joint span over the motion skeleton's (a taller body jumps proportionally higher)."""
    motion_span = float(np.ptp(clip.rest_joints[:, 1]))
    ratio = body_span / motion_span if motion_span > 0 else 1.0
    return _airborne_height(pose72, trans, clip.rest_joints) * ratio


def clip_time(clip: MotionClip, phase: float) -> float:
    duration = (len(clip.poses) - 1) / clip.mocap_framerate
    return float(phase) * duration


def pose_person(person: dict, bodies: dict) -> PosedPerson:
    """Shape, pose and place one person exactly as its spec says.

    `bodies` maps a body kind (the spec's `body.kind`) to its loaded model.
    """
    from ..bodies.kinds import body_kind

    kind = person["body"]["kind"]
    posing = body_kind(kind)  # ValueError for an unknown kind
    with clip_errors(person["motion"]):  # errors name the clip file and frame
        posed = posing.pose(person, bodies[kind])
    return place(posed, person.get("placement"))


def _clip_frame(motion: dict) -> tuple[MotionClip, np.ndarray, np.ndarray]:
    clip = clip_by_spec(motion.get("source", "builtin"), motion["clip"], motion.get("folder", ""))
    if "frame" in motion:
        time = motion["frame"] / clip.mocap_framerate
    else:
        time = clip_time(clip, motion["phase"])
    pose72, trans = sample_grounded(clip, time)  # trans from the ground under the person
    if motion["mirror"]:
        pose72, trans = mirror_pose(pose72, trans)
    return clip, pose72, trans


def _pose_smpl(person: dict, body) -> PosedPerson:
    """SMPL plays SMPL-format motion natively; then stand it on the ground at the origin."""
    clip, pose72, trans = _clip_frame(person["motion"])
    vertices, keypoints = body.pose(person["body"], pose72, np.zeros(3))
    hips = 0.5 * (keypoints[11] + keypoints[12])
    lift = _jump_lift(pose72, trans, clip, float(np.ptp(body.rest_joints(person["body"])[:, 1])))
    offset = np.array([-hips[0], -hips[1], lift - vertices[:, 2].min()])
    return PosedPerson(vertices=vertices + offset, keypoints=keypoints + offset)


def place(posed: PosedPerson, placement: dict | None) -> PosedPerson:
    """Turn the person about the vertical axis and move it on the ground."""
    if not placement:
        return posed
    yaw = np.deg2rad(placement["yaw_deg"])
    rotation = np.array([[np.cos(yaw), -np.sin(yaw), 0.0], [np.sin(yaw), np.cos(yaw), 0.0], [0.0, 0.0, 1.0]])
    offset = np.array([placement["x_m"], placement["y_m"], 0.0])
    return PosedPerson(vertices=posed.vertices @ rotation.T + offset, keypoints=posed.keypoints @ rotation.T + offset)


def _pose_anny(person: dict, body: DefaultBody) -> PosedPerson:
    model = body.model
    rest = model.rest(person["body"]["phenotype"])
    clip, pose72, trans = _clip_frame(person["motion"])
    retargeted = retarget_pose(
        pose72, trans, rest.bone_heads, model.bone_parents, model.bone_labels, ANNY_JOINT_MAP,
        source_rest_joints=clip.rest_joints,
    )
    vertices, _ = model.pose(rest, retargeted.world_rotations)
    root = rest.bone_heads[0]
    lift = _jump_lift(pose72, trans, clip, float(np.ptp(rest.bone_heads[:, 2])))
    offset = np.array([-root[0], -root[1], lift - vertices[:, 2].min()])
    vertices = vertices + offset
    keypoints = model.keypoints(vertices)[:NUM_COCO_KEYPOINTS]
    return PosedPerson(vertices=vertices, keypoints=keypoints)
