"""BVH -> canonical clip: round trips through foreign skeletons, units, axes and rates.

The BVH files are written here from SMPL-layout motion (the built-in clips) on a skeleton
that differs from the generic one (other proportions, A-pose arms as its rest pose, CMU /
Mixamo / custom names and extra joints), in another unit, up axis and frame rate. The
expectation is the generating motion's own forward kinematics, not the converter's output.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from densesynth.motion.builtin_clips import builtin_clip
from densesynth.motion.bvh import CMU_MAP, MIXAMO_MAP, bvh_to_clip, read_bvh
from densesynth.motion.clip import MotionClip, MotionFileError, resample
from densesynth.motion.kinematics import forward_kinematics
from densesynth.motion.smpl_skeleton import GENERIC_REST_JOINTS, JOINT_INDEX, JOINT_NAMES, NUM_JOINTS, PARENTS

J = JOINT_INDEX
SMPL_TO_ZUP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # facing -Y, Z up
CMU_UNIT = 0.056444


def names_from(table: dict[str, str], prefix: str = "") -> list[str]:
    inverse = {smpl: prefix + bvh for bvh, smpl in table.items()}
    return [inverse[name] for name in JOINT_NAMES]


def variant_skeleton(collars_at_spine: bool = False) -> np.ndarray:
    """A T-pose skeleton unlike the generic one: longer legs, shorter arms, wider hips."""
    s = np.array(GENERIC_REST_JOINTS)
    for side in ("left", "right"):
        sign = 1.0 if side == "left" else -1.0
        s[J[f"{side}_hip"], 0] += sign * 0.01
        for name in ("elbow", "wrist", "hand"):
            s[J[f"{side}_{name}"], 0] -= sign * 0.02 * (1 + ("wrist" in name) + 2 * ("hand" in name))
        if collars_at_spine:
            s[J[f"{side}_collar"]] = s[J["spine3"]]
    legs = [J[f"{side}_{n}"] for side in ("left", "right") for n in ("knee", "ankle", "foot")]
    s[legs, 1] -= 0.04  # 4 cm longer shins
    s[:, 1] += 0.04
    return s


def write_bvh(path: Path, clip: MotionClip, skeleton: np.ndarray, names: list[str], *, unit: float = 0.01,
              basis: np.ndarray = np.eye(3), fps: float = 120.0, order: str = "ZXY", arm_down_deg: float = 45.0,
              extra: dict[int, tuple[str, float]] | None = None) -> np.ndarray:
    """Write `clip` (on `skeleton`, a T-pose) as BVH whose rest pose has the arms lowered by
    `arm_down_deg`; basis: SMPL frame -> file frame; unit: metres per file unit; extra:
    {smpl_joint: (name, fraction)} inserts a joint with zero rotation at `fraction` of the
    bone from the joint's parent. Returns the expected joint positions (T, 24, 3) (metres,
    SMPL frame) of the frames written."""
    clip = resample(clip, fps)
    world, joints = forward_kinematics(clip.poses, skeleton)
    joints = joints + clip.trans[:, None, :]
    rest_rot = np.tile(np.eye(3), (NUM_JOINTS, 1, 1))
    for side, sign in (("left", 1.0), ("right", -1.0)):
        lower = Rotation.from_rotvec([0.0, 0.0, -sign * np.radians(arm_down_deg)]).as_matrix()
        for name in ("shoulder", "elbow", "wrist", "hand"):
            rest_rot[J[f"{side}_{name}"]] = lower
    a_rest = np.empty_like(skeleton)
    a_rest[0] = skeleton[0]
    for j in range(1, NUM_JOINTS):
        p = PARENTS[j]
        a_rest[j] = a_rest[p] + rest_rot[p] @ (skeleton[j] - skeleton[p])
    glob = world @ np.linalg.inv(rest_rot)[None]  # G_j = W_j Rrest_j^-1
    glob = np.einsum("ab,tjbc,dc->tjad", basis, glob, basis)
    extra = extra or {}

    kids = [[c for c in range(NUM_JOINTS) if PARENTS[c] == j] for j in range(NUM_JOINTS)]
    lines = ["HIERARCHY"]
    columns: list[np.ndarray] = []
    chans = " ".join(f"{axis}rotation" for axis in order)

    def fmt(v):
        return " ".join(f"{x:.6f}" for x in v)

    def euler(local):
        return Rotation.from_matrix(local).as_euler(order, degrees=True)

    def emit(j: int, depth: int, offset: np.ndarray, parent_glob: np.ndarray | None) -> None:
        pad = "  " * depth
        lines.append(f"{pad}{'ROOT' if parent_glob is None else 'JOINT'} {names[j]}")
        lines.append(pad + "{")
        lines.append(f"{pad}  OFFSET {fmt(offset)}")
        if parent_glob is None:
            lines.append(f"{pad}  CHANNELS 6 Xposition Yposition Zposition {chans}")
            columns.append(joints[:, 0] @ basis.T / unit)
            columns.append(euler(glob[:, 0]))
        else:
            lines.append(f"{pad}  CHANNELS 3 {chans}")
            columns.append(euler(np.einsum("tba,tbc->tac", parent_glob, glob[:, j])))
        for c in kids[j]:
            bone = basis @ (a_rest[c] - a_rest[j]) / unit
            if c in extra:
                name, frac = extra[c]
                lines.append(f"{pad}  JOINT {name}")
                lines.append(pad + "  {")
                lines.append(f"{pad}    OFFSET {fmt(frac * bone)}")
                lines.append(f"{pad}    CHANNELS 3 {chans}")
                columns.append(np.zeros((len(joints), 3)))
                emit(c, depth + 2, (1 - frac) * bone, glob[:, j])
                lines.append(pad + "  }")
            else:
                emit(c, depth + 1, bone, glob[:, j])
        if not kids[j]:
            lines.extend([f"{pad}  End Site", pad + "  {", f"{pad}    OFFSET {fmt(basis @ [0, 0.05, 0] / unit)}",
                          pad + "  }"])
        lines.append(pad + "}")

    emit(0, 0, basis @ a_rest[0] / unit, None)
    motion = np.concatenate(columns, axis=1)
    lines += ["MOTION", f"Frames: {len(motion)}", f"Frame Time: {1.0 / fps:.10f}"]
    lines += [fmt(row) for row in motion]
    path.write_text("\n".join(lines) + "\n")
    return joints


def clip_joints(clip: MotionClip) -> np.ndarray:
    return forward_kinematics(clip.poses, clip.rest_joints)[1] + clip.trans[:, None, :]


def expected_at(clip: MotionClip, skeleton: np.ndarray) -> np.ndarray:
    return forward_kinematics(clip.poses, skeleton)[1] + clip.trans[:, None, :]


def short(name: str, seconds: float = 1.5) -> MotionClip:
    clip = builtin_clip(name)
    n = int(seconds * clip.mocap_framerate) + 1
    return MotionClip(clip.poses[:n], clip.trans[:n], clip.mocap_framerate, clip.rest_joints, clip.source)


@pytest.mark.parametrize("name", ["walk", "jumping_jacks", "squat"])
def test_mixamo_round_trip_cm_zup_120hz_apose(tmp_path, name):
    clip = short(name)
    skeleton = variant_skeleton()
    path = tmp_path / f"{name}.bvh"
    write_bvh(path, clip, skeleton, names_from(MIXAMO_MAP, "mixamorig:"), unit=0.01, basis=SMPL_TO_ZUP,
              fps=120.0, order="ZXY")
    out = bvh_to_clip(path, fps=30)
    assert out.mocap_framerate == 30
    assert out.num_frames == clip.num_frames
    err = np.linalg.norm(clip_joints(out) - expected_at(clip, skeleton), axis=-1).mean()
    print(f"BVH round trip (Mixamo, cm, Z up, 120 Hz, A-pose) {name}: mean per-joint error {err * 1000:.4f} mm")
    assert err < 0.02
    # Rotations are relative to a T-pose (not to the file's A-pose): every joint's world
    # rotation matches the generating one up to the small rest-direction differences.
    w_out = forward_kinematics(out.poses, out.rest_joints)[0]
    w_true = forward_kinematics(clip.poses, skeleton)[0]
    angle = Rotation.from_matrix((w_out @ np.swapaxes(w_true, -1, -2)).reshape(-1, 3, 3)).magnitude()
    assert np.degrees(angle.max()) < 6.0
    arms = [J[f"{side}_{n}"] for side in ("left", "right") for n in ("shoulder", "elbow", "wrist", "hand")]
    assert np.ptp(out.rest_joints[arms, 1]) < 0.01  # arms level in the rest skeleton
    # The clip's rest skeleton is the source's, T-posed: its bone lengths match.
    bones = np.linalg.norm(out.rest_joints[1:] - out.rest_joints[PARENTS[1:]], axis=1)
    true = np.linalg.norm(skeleton[1:] - skeleton[PARENTS[1:]], axis=1)
    assert np.abs(bones - true).max() < 1e-4
    # Standing on the floor: the balls of the feet at 2 cm.
    assert abs(out.rest_joints[[J["left_foot"], J["right_foot"]], 1].min() - 0.02) < 1e-6


def test_cmu_round_trip_units_extra_joints_collars_at_spine(tmp_path):
    clip = short("walk")
    skeleton = variant_skeleton(collars_at_spine=True)
    path = tmp_path / "cmu.bvh"
    extra = {J["left_hip"]: ("LHipJoint", 0.0), J["right_hip"]: ("RHipJoint", 0.0), J["head"]: ("Neck1", 0.5)}
    write_bvh(path, clip, skeleton, names_from(CMU_MAP), unit=CMU_UNIT, fps=120.0, order="ZYX", extra=extra,
              arm_down_deg=10.0)
    data = read_bvh(path)
    assert "LHipJoint" in data.names and "Neck1" in data.names
    out = bvh_to_clip(path)  # file rate kept
    assert out.mocap_framerate == pytest.approx(120.0)
    expected = expected_at(resample(clip, 120.0), skeleton)
    err = np.linalg.norm(clip_joints(out) - expected, axis=-1).mean()
    print(f"BVH round trip (CMU names, 0.056444 m units, Y up, 120 Hz): mean per-joint error {err * 1000:.4f} mm")
    assert err < 0.02


def test_user_map_and_unknown_skeleton(tmp_path):
    clip = short("wave", 1.0)
    names = [f"bone_{i:02d}" for i in range(NUM_JOINTS)]
    path = tmp_path / "custom.bvh"
    write_bvh(path, clip, np.array(GENERIC_REST_JOINTS), names, unit=1.0, fps=60.0, order="YXZ", arm_down_deg=0.0)
    with pytest.raises(MotionFileError) as info:
        bvh_to_clip(path)
    message = str(info.value)
    assert str(path) in message and "unmapped" in message and "\n" not in message
    out = bvh_to_clip(path, fps=30, joint_map={f"bone_{i:02d}": n for i, n in enumerate(JOINT_NAMES)})
    err = np.linalg.norm(clip_joints(out) - expected_at(clip, GENERIC_REST_JOINTS), axis=-1).mean()
    assert err < 0.005


def _yawed(clip: MotionClip, degrees: float) -> MotionClip:
    """The clip turned about the vertical through the origin (facing rotates with it)."""
    turn = Rotation.from_rotvec([0.0, np.radians(degrees), 0.0])
    poses = clip.poses.copy()
    poses[:, :3] = (turn * Rotation.from_rotvec(poses[:, :3])).as_rotvec()
    pelvis = clip.trans + clip.rest_joints[0]
    trans = turn.apply(pelvis) - clip.rest_joints[0]
    return MotionClip(poses, trans, clip.mocap_framerate, clip.rest_joints, clip.source)


@pytest.mark.parametrize("up", ["y", "z"])
def test_upright_and_facing_preserved(tmp_path, up):
    clip = _yawed(short("walk", 1.0), 90.0)  # now faces and walks towards +X
    path = tmp_path / f"facing_{up}.bvh"
    basis = np.eye(3) if up == "y" else SMPL_TO_ZUP
    write_bvh(path, clip, np.array(GENERIC_REST_JOINTS), names_from(MIXAMO_MAP), unit=0.01, basis=basis, fps=30)
    out = bvh_to_clip(path)
    joints = clip_joints(out)
    assert np.all(joints[:, J["head"], 1] > joints[:, J["pelvis"], 1] + 0.4)
    left = joints[:, J["left_hip"]] - joints[:, J["right_hip"]]
    facing = np.cross(left, [0.0, 1.0, 0.0])  # left x up = forward
    facing /= np.linalg.norm(facing, axis=1, keepdims=True)
    assert np.all(facing @ np.array([1.0, 0.0, 0.0]) > 0.9)
    travel = joints[-1, J["pelvis"]] - joints[0, J["pelvis"]]
    assert travel[0] > 0.5 and abs(travel[2]) < 0.1


def _good_file(tmp_path: Path) -> Path:
    path = tmp_path / "good.bvh"
    write_bvh(path, short("idle", 0.5), np.array(GENERIC_REST_JOINTS), names_from(MIXAMO_MAP), fps=30)
    return path


@pytest.mark.parametrize("damage, words", [
    ("truncate", "truncated"),
    ("drop_value", "values"),
    ("nan", "NaN"),
    ("channel_count", "channels"),
    ("hierarchy_cut", "truncated"),
    ("not_bvh", "HIERARCHY"),
])
def test_broken_files_give_one_line_errors(tmp_path, damage, words):
    path = _good_file(tmp_path)
    lines = path.read_text().splitlines()
    motion = lines.index("MOTION")
    if damage == "truncate":
        lines = lines[:-3]
    elif damage == "drop_value":
        lines[motion + 5] = " ".join(lines[motion + 5].split()[:-1])
    elif damage == "nan":
        values = lines[motion + 4].split()
        values[7] = "nan"
        lines[motion + 4] = " ".join(values)
    elif damage == "channel_count":
        at = next(i for i, line in enumerate(lines) if "CHANNELS 3" in line)
        lines[at] = lines[at].replace("CHANNELS 3", "CHANNELS 4")
    elif damage == "hierarchy_cut":
        lines = lines[:20]
    elif damage == "not_bvh":
        lines = ["hello"] + lines[1:]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(MotionFileError) as info:
        bvh_to_clip(path)
    message = str(info.value)
    assert str(path) in message and words in message and "\n" not in message
