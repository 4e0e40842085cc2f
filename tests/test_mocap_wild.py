"""Motion capture from the wild (issue 11): fixtures that imitate real files' mess.

The BVH hierarchy below is written by hand after the CMU conversions (zero offsets for
LowerBack, Neck, the collars, the hip helpers and the finger bases; both collars at one
point; legs splayed in the zero pose); other families are the same skeleton renamed, a
Maya-style rig lies along +X at zero rotation. The expectation is always the source's own
forward kinematics, computed here with plain rotation matrices (not the converter's code),
or the Plug-in Gait formulas written here after pyCGM's rotation form of the chord function.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from densesynth.motion.bvh import ConversionReport, bvh_to_clip
from densesynth.motion.clip import MotionClip, MotionFileError, load_clip, save_clip
from densesynth.motion.convert import convert, motion_quality
from densesynth.motion.kinematics import forward_kinematics
from densesynth.motion.retarget import Retargeter
from densesynth.motion.smpl_skeleton import GENERIC_REST_JOINTS, JOINT_INDEX, JOINT_NAMES, PARENTS

J = JOINT_INDEX
CMU_UNIT = 0.056444

CMU_HIERARCHY = """HIERARCHY
ROOT Hips
{
  OFFSET 0.00000 0.00000 0.00000
  CHANNELS 6 Xposition Yposition Zposition Zrotation Yrotation Xrotation
  JOINT LHipJoint
  {
    OFFSET 0 0 0
    CHANNELS 3 Zrotation Yrotation Xrotation
    JOINT LeftUpLeg
    {
      OFFSET 1.36306 -1.79463 0.83929
      CHANNELS 3 Zrotation Yrotation Xrotation
      JOINT LeftLeg
      {
        OFFSET 2.44811 -6.72613 0.00000
        CHANNELS 3 Zrotation Yrotation Xrotation
        JOINT LeftFoot
        {
          OFFSET 2.56220 -7.03959 0.00000
          CHANNELS 3 Zrotation Yrotation Xrotation
          JOINT LeftToeBase
          {
            OFFSET 0.15764 -0.43311 2.32255
            CHANNELS 3 Zrotation Yrotation Xrotation
            End Site
            {
              OFFSET 0.00000 -0.00000 1.18966
            }
          }
        }
      }
    }
  }
  JOINT RHipJoint
  {
    OFFSET 0 0 0
    CHANNELS 3 Zrotation Yrotation Xrotation
    JOINT RightUpLeg
    {
      OFFSET -1.30524 -1.79463 0.83929
      CHANNELS 3 Zrotation Yrotation Xrotation
      JOINT RightLeg
      {
        OFFSET -2.54253 -6.98555 0.00000
        CHANNELS 3 Zrotation Yrotation Xrotation
        JOINT RightFoot
        {
          OFFSET -2.56826 -7.05623 0.00000
          CHANNELS 3 Zrotation Yrotation Xrotation
          JOINT RightToeBase
          {
            OFFSET -0.16473 -0.45259 2.36315
            CHANNELS 3 Zrotation Yrotation Xrotation
            End Site
            {
              OFFSET -0.00000 -0.00000 1.21082
            }
          }
        }
      }
    }
  }
  JOINT LowerBack
  {
    OFFSET 0 0 0
    CHANNELS 3 Zrotation Yrotation Xrotation
    JOINT Spine
    {
      OFFSET 0.02827 2.03559 -0.19338
      CHANNELS 3 Zrotation Yrotation Xrotation
      JOINT Spine1
      {
        OFFSET 0.05672 2.04885 -0.04275
        CHANNELS 3 Zrotation Yrotation Xrotation
        JOINT Neck
        {
          OFFSET 0 0 0
          CHANNELS 3 Zrotation Yrotation Xrotation
          JOINT Neck1
          {
            OFFSET -0.05417 1.74624 0.17202
            CHANNELS 3 Zrotation Yrotation Xrotation
            JOINT Head
            {
              OFFSET 0.10407 1.76136 -0.12397
              CHANNELS 3 Zrotation Yrotation Xrotation
              End Site
              {
                OFFSET 0.00000 1.80000 0.00000
              }
            }
          }
        }
        JOINT LeftShoulder
        {
          OFFSET 0 0 0
          CHANNELS 3 Zrotation Yrotation Xrotation
          JOINT LeftArm
          {
            OFFSET 3.36241 1.20089 -0.31121
            CHANNELS 3 Zrotation Yrotation Xrotation
            JOINT LeftForeArm
            {
              OFFSET 4.98300 0.00000 0.00000
              CHANNELS 3 Zrotation Yrotation Xrotation
              JOINT LeftHand
              {
                OFFSET 4.36100 0.00000 0.00000
                CHANNELS 3 Zrotation Yrotation Xrotation
                JOINT LeftFingerBase
                {
                  OFFSET 0 0 0
                  CHANNELS 3 Zrotation Yrotation Xrotation
                  JOINT LeftHandIndex1
                  {
                    OFFSET 0.70290 0.00000 0.00000
                    CHANNELS 3 Zrotation Yrotation Xrotation
                    End Site
                    {
                      OFFSET 0.56700 0.00000 0.00000
                    }
                  }
                }
                JOINT LThumb
                {
                  OFFSET 0 0 0
                  CHANNELS 3 Zrotation Yrotation Xrotation
                  End Site
                  {
                    OFFSET 0.50000 0.00000 0.50000
                  }
                }
              }
            }
          }
        }
        JOINT RightShoulder
        {
          OFFSET 0 0 0
          CHANNELS 3 Zrotation Yrotation Xrotation
          JOINT RightArm
          {
            OFFSET -3.13660 1.37405 -0.40465
            CHANNELS 3 Zrotation Yrotation Xrotation
            JOINT RightForeArm
            {
              OFFSET -5.24190 0.00000 0.00000
              CHANNELS 3 Zrotation Yrotation Xrotation
              JOINT RightHand
              {
                OFFSET -4.40000 0.00000 0.00000
                CHANNELS 3 Zrotation Yrotation Xrotation
                JOINT RightFingerBase
                {
                  OFFSET 0 0 0
                  CHANNELS 3 Zrotation Yrotation Xrotation
                  JOINT RightHandIndex1
                  {
                    OFFSET -0.70000 0.00000 0.00000
                    CHANNELS 3 Zrotation Yrotation Xrotation
                    End Site
                    {
                      OFFSET -0.56700 0.00000 0.00000
                    }
                  }
                }
                JOINT RThumb
                {
                  OFFSET 0 0 0
                  CHANNELS 3 Zrotation Yrotation Xrotation
                  End Site
                  {
                    OFFSET -0.50000 0.00000 0.50000
                  }
                }
              }
            }
          }
        }
      }
    }
  }
}
"""

# Renamings of the CMU skeleton into other families' names (joints not listed keep theirs).
CMU_MAX = {"LeftUpLeg": "LeftHip", "LeftLeg": "LeftKnee", "LeftFoot": "LeftAnkle", "LeftToeBase": "LeftToe",
           "LeftShoulder": "LeftCollar", "LeftArm": "LeftShoulder", "LeftForeArm": "LeftElbow", "LeftHand": "LeftWrist"}
MIXAMO = {"LowerBack": "Spine", "Spine": "Spine1", "Spine1": "Spine2", "LHipJoint": "LeftHipHelper",
          "LeftFingerBase": "LeftHandMiddle1"}
BIPED = {"Hips": "Bip01 Pelvis", "LowerBack": "Bip01 Spine", "Spine": "Bip01 Spine1", "Spine1": "Bip01 Spine2",
         "Neck": "Bip01 Neck", "Head": "Bip01 Head", "LeftUpLeg": "Bip01 L Thigh", "LeftLeg": "Bip01 L Calf",
         "LeftFoot": "Bip01 L Foot", "LeftToeBase": "Bip01 L Toe0", "LeftShoulder": "Bip01 L Clavicle",
         "LeftArm": "Bip01 L UpperArm", "LeftForeArm": "Bip01 L Forearm", "LeftHand": "Bip01 L Hand",
         "LeftFingerBase": "Bip01 L Finger2"}
UNREAL = {"Hips": "pelvis", "LowerBack": "spine_01", "Spine": "spine_02", "Spine1": "spine_03", "Neck": "neck_01",
          "Head": "head", "LeftUpLeg": "thigh_l", "LeftLeg": "calf_l", "LeftFoot": "foot_l", "LeftToeBase": "ball_l",
          "LeftShoulder": "clavicle_l", "LeftArm": "upperarm_l", "LeftForeArm": "lowerarm_l", "LeftHand": "hand_l"}
MAKEHUMAN = {"Hips": "root", "LowerBack": "spine05", "Spine": "spine03", "Spine1": "spine01", "Neck": "neck01",
             "Head": "head", "LeftUpLeg": "upperleg01.L", "LeftLeg": "lowerleg01.L", "LeftFoot": "foot.L",
             "LeftToeBase": "toe3-1.L", "LeftShoulder": "clavicle.L", "LeftArm": "upperarm01.L",
             "LeftForeArm": "lowerarm01.L", "LeftHand": "wrist.L"}
NEURON = {"LowerBack": "Spine", "Spine": "Spine1", "Spine1": "Spine3", "LeftFingerBase": "LeftInHandMiddle"}


def _sided(table: dict[str, str]) -> dict[str, str]:
    """Add the right side of a left-side renaming."""
    out = dict(table)
    for src, dst in table.items():
        if src.startswith("Left"):
            right = "Right" + src[4:]
            out[right] = (dst.replace("Left", "Right").replace(" L ", " R ").replace("_l", "_r").replace(".L", ".R"))
    return out


def renamed(text: str, table: dict[str, str], prefix: str = "") -> str:
    table = _sided(table)

    def sub(m):
        name = m.group(2)
        return f"{m.group(1)} {prefix}{table.get(name, name)}"
    return re.sub(r"^(\s*(?:ROOT|JOINT)) (.+)$", sub, text, flags=re.M)


def parse_hierarchy(text: str):
    """(names, parents, offsets, channel lists): a small reader for the text above."""
    names, parents, offsets, chans, stack = [], [], [], [], []
    pending_end = False
    for line in text.splitlines():
        t = line.split()
        if not t:
            continue
        if t[0] in ("ROOT", "JOINT"):
            names.append(" ".join(t[1:]))
            parents.append(stack[-1] if stack else -1)
            stack.append(len(names) - 1)
        elif t[0] == "End":
            pending_end = True
        elif t[0] == "OFFSET" and not pending_end:
            offsets.append([float(v) for v in t[1:4]])
        elif t[0] == "CHANNELS":
            chans.append(t[2:])
        elif t[0] == "}":
            if pending_end:
                pending_end = False
            else:
                stack.pop()
    return names, np.array(parents), np.array(offsets), chans


def axis_rot(axis: str, deg: np.ndarray) -> np.ndarray:
    a = np.radians(deg)
    c, s = np.cos(a), np.sin(a)
    m = np.zeros(a.shape + (3, 3))
    i = "XYZ".index(axis)
    j, k = (i + 1) % 3, (i + 2) % 3
    m[..., i, i] = 1
    m[..., j, j], m[..., j, k], m[..., k, j], m[..., k, k] = c, -s, s, c
    return m


def fk(parents, offsets, chans, motion):
    """World positions (F, S, 3) by chaining R = R_first R_second R_third per joint."""
    frames = len(motion)
    world = np.zeros((frames, len(parents), 3, 3))
    pos = np.zeros((frames, len(parents), 3))
    col = 0
    for j, p in enumerate(parents):
        local = np.tile(np.eye(3), (frames, 1, 1))
        offset = np.tile(offsets[j], (frames, 1))
        for c in chans[j]:
            v = motion[:, col]
            col += 1
            if c.endswith("position"):
                offset[:, "XYZ".index(c[0])] = v
            else:
                local = local @ axis_rot(c[0], v)
        if p < 0:
            world[:, j], pos[:, j] = local, offset
        else:
            world[:, j] = world[:, p] @ local
            pos[:, j] = pos[:, p] + np.einsum("fab,fb->fa", world[:, p], offset)
    return pos


def make_motion(names, chans, frames=90, fps=30.0, seed=0, arms_down=70.0, tpose_frame0=False, hip_height=17.0):
    """Smooth, lively motion: every rotation a sum of sines; the root walks along +Z."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / fps
    cols = []
    for name, ch in zip(names, chans):
        quiet = "HipJoint" in name or "HipHelper" in name or "Thumb" in name
        for c in ch:
            if c == "Xposition":
                cols.append(0.1 * np.sin(2 * t))
            elif c == "Yposition":
                cols.append(hip_height + 0.2 * np.sin(6 * t))
            elif c == "Zposition":
                cols.append(18.0 * t)
            else:
                amp = 0.0 if quiet else (8.0 if any(k in name for k in ("Spine", "Back", "Neck", "Hips")) else 25.0)
                base = 0.0
                if c == "Zrotation" and re.search(r"(Left|Right)Arm$|L UpperArm|upperarm", name):
                    base = -arms_down if "Left" in name or " L " in name else arms_down
                f1, f2 = rng.uniform(0.5, 2.0, 2)
                p1, p2 = rng.uniform(0, 2 * np.pi, 2)
                cols.append(base + amp * (0.7 * np.sin(2 * np.pi * f1 * t + p1) + 0.3 * np.sin(2 * np.pi * f2 * t + p2)))
    motion = np.stack(cols, axis=1)
    if tpose_frame0:
        motion[0, 3:] = 0.0
    return motion


def write(path: Path, text: str, motion: np.ndarray, fps: float = 30.0) -> None:
    rows = "\n".join(" ".join(f"{v:.5f}" for v in row) for row in motion)
    path.write_text(text + f"MOTION\nFrames: {len(motion)}\nFrame Time: {1 / fps:.7f}\n{rows}\n")


def clip_joints(clip: MotionClip) -> np.ndarray:
    return forward_kinematics(clip.poses, clip.rest_joints)[1] + clip.trans[:, None, :]


def compare(clip: MotionClip, report: ConversionReport, names, expected_m: np.ndarray, label: str):
    """Per-joint mean error (m) of the clip's mapped joints against the source FK."""
    got = clip_joints(clip)
    index = {n: i for i, n in enumerate(names)}
    per = {smpl: float(np.linalg.norm(got[:, J[smpl]] - expected_m[:, index[src]], axis=1).mean())
           for smpl, src in report.mapping.items()}
    mean = float(np.mean(list(per.values())))
    worst = max(per, key=per.get)
    print(f"{label}: {len(per)} joints, mean {mean * 1000:.2f} mm, worst {worst} {per[worst] * 1000:.2f} mm")
    return mean, per


def _cmu_file(tmp_path, text=CMU_HIERARCHY, name="cmu.bvh", **kw):
    names, parents, offsets, chans = parse_hierarchy(text)
    motion = make_motion(names, chans, **kw)
    path = tmp_path / name
    write(path, text, motion)
    return path, names, fk(parents, offsets, chans, motion)


# 1. Zero offsets and coincident collars ---------------------------------------------------
def test_cmu_zero_offsets_and_coincident_collars_convert_and_retarget(tmp_path):
    path, names, src = _cmu_file(tmp_path)
    details: dict = {}
    clip = convert(path, report=details)
    text = "\n".join(details["lines"])
    for joint in ("spine1 (LowerBack)", "neck (Neck)", "left_collar (LeftShoulder)", "right_collar (RightShoulder)",
                  "left_hand (LeftFingerBase)"):
        assert joint in text, text
    bones = np.linalg.norm(clip.rest_joints[1:] - clip.rest_joints[PARENTS[1:]], axis=1)
    assert bones.min() > 0.005, dict(zip(JOINT_NAMES[1:], bones.round(4)))
    # The render-time retargeter (here onto the generic skeleton) accepts the clip.
    target = Retargeter(GENERIC_REST_JOINTS, PARENTS, JOINT_NAMES, {i: n for i, n in enumerate(JOINT_NAMES)},
                        source_rest_joints=clip.rest_joints, change_of_basis=np.eye(3))
    posed = target(clip.poses[:5], clip.trans[:5])
    assert np.isfinite(posed.world_rotations).all()
    report = ConversionReport()
    clip = bvh_to_clip(path, report=report)
    mean, per = compare(clip, report, names, src * CMU_UNIT, "CMU (MotionBuilder names, zero offsets)")
    assert mean < 0.020 and max(per.values()) < 0.040


def test_old_clips_with_zero_length_bones_still_retarget():
    rest = np.array(GENERIC_REST_JOINTS)
    rest[J["spine1"]] = rest[J["pelvis"]]
    rest[[J["left_collar"], J["right_collar"]]] = rest[J["spine3"]]
    rest[J["left_hand"]] = rest[J["left_wrist"]]
    target = Retargeter(GENERIC_REST_JOINTS, PARENTS, JOINT_NAMES, {i: n for i, n in enumerate(JOINT_NAMES)},
                        source_rest_joints=rest, change_of_basis=np.eye(3))
    assert np.isfinite(target(np.zeros(72)).world_rotations).all()


def test_render_errors_name_the_clip_file_and_frame(tmp_path):
    from densesynth.scene.person import pose_person

    folder = tmp_path / "clips"
    folder.mkdir()
    clip = MotionClip(np.zeros((4, 72)), np.zeros((4, 3)), 30.0, GENERIC_REST_JOINTS)
    save_clip(folder / "walk.npz", clip)
    person = {"body": {"kind": "anny", "phenotype": {}},
              "motion": {"source": "folder", "clip": "walk.npz", "folder": str(folder), "frame": 3, "mirror": False}}
    with pytest.raises(MotionFileError) as info:
        pose_person(person, {"anny": object()})  # a body that cannot pose: any error inside
    message = str(info.value)
    assert str(folder / "walk.npz") in message and "frame 3" in message and "\n" not in message


# 2. Both CMU releases and the other families ----------------------------------------------
@pytest.mark.parametrize("family, table, prefix", [
    ("cmu_max", CMU_MAX, ""), ("mixamo", MIXAMO, "mixamorig:"), ("mixamo_plain", MIXAMO, ""),
    ("biped", BIPED, ""), ("unreal", UNREAL, ""), ("makehuman", MAKEHUMAN, ""), ("neuron", NEURON, ""),
])
def test_name_families_are_detected(tmp_path, family, table, prefix):
    text = renamed(CMU_HIERARCHY, table, prefix)
    path, names, src = _cmu_file(tmp_path, text, f"{family}.bvh", seed=3)
    report = ConversionReport()
    clip = bvh_to_clip(path, report=report)
    assert report.mapping["left_knee"] == prefix + _sided(table).get("LeftLeg", "LeftLeg")
    mean, per = compare(clip, report, names, src * CMU_UNIT, f"family {family} ({report.family})")
    assert mean < 0.020 and max(per.values()) < 0.040


def test_unknown_names_suggest_a_map(tmp_path):
    table = {"LeftUpLeg": "Oberschenkel_L", "LeftLeg": "Unterschenkel_L", "RightUpLeg": "Oberschenkel_R",
             "RightLeg": "Unterschenkel_R"}
    text = re.sub(r"^(\s*(?:ROOT|JOINT)) (.+)$", lambda m: f"{m.group(1)} {table.get(m.group(2), m.group(2))}",
                  CMU_HIERARCHY, flags=re.M)
    path, names, src = _cmu_file(tmp_path, text, "custom.bvh")
    with pytest.raises(MotionFileError) as info:
        bvh_to_clip(path)
    message = str(info.value)
    assert "--map" in message and "left_hip" in message and "\n" not in message
    import yaml

    mapping = {"Oberschenkel_L": "left_hip", "Unterschenkel_L": "left_knee", "Oberschenkel_R": "right_hip",
               "Unterschenkel_R": "right_knee", "Hips": "pelvis", "LeftFoot": "left_ankle", "RightFoot": "right_ankle",
               "Head": "head", "LeftArm": "left_shoulder", "RightArm": "right_shoulder", "LeftForeArm": "left_elbow",
               "RightForeArm": "right_elbow", "LeftHand": "left_wrist", "RightHand": "right_wrist"}
    map_file = tmp_path / "map.yaml"
    map_file.write_text(yaml.safe_dump(mapping))
    from densesynth.motion.convert import read_joint_map

    report = ConversionReport()
    clip = bvh_to_clip(path, joint_map=read_joint_map(map_file), report=report)
    mean, per = compare(clip, report, names, src * CMU_UNIT, "user --map")
    assert mean < 0.020 and max(per.values()) < 0.040


# 3. A zero pose that is not standing ------------------------------------------------------
def write_lying_rig(path: Path, motion: np.ndarray):
    """Write `motion` (of the Mixamo-named CMU skeleton) as a Maya-style rig whose zero pose
    lies along +X, in cm: the same world posture per frame. Returns (names, source joint
    positions (F, S, 3) in metres, the standing skeleton's positions in metres)."""
    names, parents, offsets, chans = parse_hierarchy(renamed(CMU_HIERARCHY, MIXAMO))
    lie = axis_rot("Z", np.array(-90.0))  # standing +Y -> lying along +X
    lie_inv = lie.T
    # Same world posture: root R_m R_lie^-1, others R_lie L R_lie^-1 (Euler ZYX re-expressed).
    lying = motion.copy()
    col = 0
    for j, ch in enumerate(chans):
        rot_cols = [k for k, c in enumerate(ch) if c.endswith("rotation")]
        angles = motion[:, col + rot_cols[0]: col + rot_cols[0] + 3]
        local = axis_rot("Z", angles[:, 0]) @ axis_rot("Y", angles[:, 1]) @ axis_rot("X", angles[:, 2])
        new = local @ lie_inv if parents[j] < 0 else lie @ local @ lie_inv
        lying[:, col + rot_cols[0]: col + rot_cols[0] + 3] = Rotation.from_matrix(new).as_euler("ZYX", degrees=True)
        col += len(ch)
    def lie_offset(m):  # every OFFSET (end sites too) turned into the lying zero pose
        v = np.array([float(x) for x in m.group(1).split()]) @ lie.T * 100.0 * CMU_UNIT  # and in cm
        return "OFFSET " + " ".join(f"{x:.5f}" for x in v)

    text = re.sub(r"OFFSET ([^\n]+)", lie_offset, renamed(CMU_HIERARCHY, MIXAMO))
    lying[:, :3] *= 100.0 * CMU_UNIT
    write(path, text, lying)
    names2, parents2, offsets2, chans2 = parse_hierarchy(text)
    src = fk(parents2, offsets2, chans2, lying)
    standing = fk(parents, offsets, chans, motion)
    return names2, src / 100.0, standing * CMU_UNIT


def test_maya_rig_lying_along_x_at_zero_rotation(tmp_path):
    names, parents, offsets, chans = parse_hierarchy(renamed(CMU_HIERARCHY, MIXAMO))
    motion = make_motion(names, chans, seed=5)
    path = tmp_path / "maya.bvh"
    names2, src, standing = write_lying_rig(path, motion)
    assert np.abs(src - standing).max() < 1e-5  # the fixture: same motion, lying zero pose
    report = ConversionReport()
    clip = bvh_to_clip(path, report=report)  # units detected: cm
    joints = clip_joints(clip)
    assert np.all(joints[:, J["head"], 1] > joints[:, J["pelvis"], 1] + 0.3)  # upright
    mean, per = compare(clip, report, names2, src, "Maya rig lying along +X at zero rotation")
    assert mean < 0.020 and max(per.values()) < 0.040
    assert "zero pose" in report.frame
    # Overrides: the same result when up and forward are given.
    again = bvh_to_clip(path, up="y", forward="z")
    assert np.abs(clip_joints(again) - joints).max() < 1e-6
    # And with a rest pose taken from a frame.
    posed_rest = bvh_to_clip(path, rest_frame=10, report=(r := ConversionReport()))
    mean, per = compare(posed_rest, r, names2, src, "Maya rig, --rest-frame 10")
    assert mean < 0.020 and max(per.values()) < 0.040


def turn_bvh_motion(motion: np.ndarray, chans, deg: float) -> np.ndarray:
    """The motion turned about +Y (up) by `deg` (+Z towards +X): root position and rotation
    (channels X/Y/Z position, Z Y X rotation, as in CMU_HIERARCHY)."""
    assert chans[0] == ["Xposition", "Yposition", "Zposition", "Zrotation", "Yrotation", "Xrotation"]
    turn = axis_rot("Y", np.array(deg))
    out = motion.copy()
    out[:, :3] = motion[:, :3] @ turn.T
    local = axis_rot("Z", motion[:, 3]) @ axis_rot("Y", motion[:, 4]) @ axis_rot("X", motion[:, 5])
    out[:, 3:6] = Rotation.from_matrix(turn @ local).as_euler("ZYX", degrees=True)
    return out


def heading(left: np.ndarray) -> np.ndarray:
    """Degrees about +Y from +Z towards +X of the facing (left hip minus right hip) x up."""
    forward = np.cross(left, [0.0, 1.0, 0.0])
    return np.degrees(np.arctan2(forward[..., 0], forward[..., 2]))


def on_its_feet(motion: np.ndarray, text: str = CMU_HIERARCHY, floor_units: float = 0.02 / CMU_UNIT) -> np.ndarray:
    """The motion with the root height changed per frame so the lowest foot joint (ankles,
    toe bases) stays at `floor_units` (the balls of the feet on the floor): make_motion holds
    the hips at one height, so with bent knees both feet leave the floor (a jump)."""
    names, parents, offsets, chans = parse_hierarchy(text)
    base = parse_hierarchy(CMU_HIERARCHY)[0]  # renamings keep the joint order
    feet = [base.index(n) for n in ("LeftFoot", "RightFoot", "LeftToeBase", "RightToeBase")]
    out = motion.copy()
    out[:, 1] += floor_units - fk(parents, offsets, chans, motion)[:, feet, 1].min(axis=1)
    return out


@pytest.mark.parametrize("deg", [180.0, 90.0, -30.0])
def test_lying_rig_keeps_the_heading_of_its_frames(tmp_path, deg):
    """Found on the contact sheet: a lying zero pose took its forward from the first frame, so
    a capture that starts facing -Z came out turned by 180 degrees."""
    names, parents, offsets, chans = parse_hierarchy(renamed(CMU_HIERARCHY, MIXAMO))
    motion = turn_bvh_motion(make_motion(names, chans, seed=5), chans, deg)
    names2, src, _ = write_lying_rig(tmp_path / "maya.bvh", motion)
    report = ConversionReport()
    clip = bvh_to_clip(tmp_path / "maya.bvh", report=report)
    joints = clip_joints(clip)
    want = heading(src[:, names2.index("LeftUpLeg")] - src[:, names2.index("RightUpLeg")])
    got = heading(joints[:, J["left_hip"]] - joints[:, J["right_hip"]])
    error = (got - want + 180.0) % 360.0 - 180.0
    print(f"lying rig turned {deg:+.0f} deg: heading error max {np.abs(error).max():.1f} deg ({report.frame})")
    assert np.abs(error).max() < 10.0
    mean, per = compare(clip, report, names2, src, f"Maya rig lying, turned {deg:+.0f} deg")
    assert mean < 0.020 and max(per.values()) < 0.040


# 6. Calibration pose at the start ---------------------------------------------------------
def test_cgspeed_frame0_tpose_is_skipped(tmp_path):
    path, names, src = _cmu_file(tmp_path, tpose_frame0=True)
    details: dict = {}
    clip = convert(path, report=details)
    assert clip.num_frames == len(src) - 1
    assert any("calibration" in line for line in details["lines"])
    # Without the skip, the quality filter still never draws frame 0.
    kept = convert(path, skip_calibration=False)
    quality = motion_quality(kept)
    assert not quality["ok"][0] and quality["calibration"] == 1
    assert quality["ok"][2:].any()  # only frame 0 is a calibration pose (frame 1 jumps out of it)


# 5. Stairs ----------------------------------------------------------------------------------
def _leg_ik(hip, ankle, l1, l2):
    """Thigh and shank world directions (sagittal plane y-z) with the knee forward."""
    d = ankle - hip
    dist = np.linalg.norm(d[1:])
    phi = np.arctan2(d[2], -d[1])  # angle from straight down towards +z
    alpha = np.arccos(np.clip((l1 ** 2 + dist ** 2 - l2 ** 2) / (2 * l1 * dist), -1, 1))
    thigh = phi + alpha
    knee = hip + l1 * np.array([0.0, -np.cos(thigh), np.sin(thigh)])
    d2 = ankle - knee
    shank = np.arctan2(d2[2], -d2[1])
    return thigh, shank


def stairs_clip(steps=4, rise=0.17, tread=0.28, fps=30.0, seconds_per_step=0.6):
    rest = np.array(GENERIC_REST_JOINTS)
    frames = int(steps * seconds_per_step * fps) + 1
    u = np.arange(frames) / (seconds_per_step * fps)
    poses = np.zeros((frames, 72))
    trans = np.zeros((frames, 3))
    top = steps * rise  # the stairs start 0.68 m above the file's floor and go down to it
    stance_height = np.zeros(frames)
    for f, uu in enumerate(u):
        n = min(int(np.floor(uu)), steps - 1)
        s = uu - n
        pelvis = np.array([0.0, top + 0.86 - rise * uu, tread * uu])
        trans[f] = pelvis - rest[0]
        stance_height[f] = top - rise * n
        feet = {}
        stance_side = "left" if n % 2 == 0 else "right"
        swing_side = "right" if stance_side == "left" else "left"
        feet[stance_side] = np.array([0.0, top - rise * n + rest[J["left_ankle"], 1], tread * n])
        start = np.array([0.0, top - rise * (n - 1) + rest[J["left_ankle"], 1], tread * (n - 1)])
        end = np.array([0.0, top - rise * (n + 1) + rest[J["left_ankle"], 1], tread * (n + 1)])
        if n == 0:
            start = feet[stance_side] + np.array([0.0, 0.0, -tread])
            start[1] = top + rest[J["left_ankle"], 1]
        feet[swing_side] = start + (end - start) * s + np.array([0.0, 0.06 * np.sin(np.pi * s), 0.0])
        for side in ("left", "right"):
            hip = pelvis + (rest[J[f"{side}_hip"]] - rest[0])
            l1 = np.linalg.norm(rest[J[f"{side}_knee"]] - rest[J[f"{side}_hip"]])
            l2 = np.linalg.norm(rest[J[f"{side}_ankle"]] - rest[J[f"{side}_knee"]])
            thigh, shank = _leg_ik(hip, feet[side], l1, l2)
            # rotation about x by -angle turns "down" towards +z (forward)
            poses[f, 3 * J[f"{side}_hip"]] = -thigh
            poses[f, 3 * J[f"{side}_knee"]] = -(shank - thigh)
            poses[f, 3 * J[f"{side}_ankle"]] = shank  # foot stays level
    return MotionClip(poses, trans, fps, rest, "stairs"), stance_height


def test_stairs_keep_vertical_motion_and_ground_per_step(tmp_path):
    from densesynth.motion.clip import sample_frame, sample_grounded
    from densesynth.scene.person import _airborne_height

    clip, stance = stairs_clip()
    path = tmp_path / "stairs.npz"
    save_clip(path, clip)
    # Before: the body floats 0.5-0.7 m above the floor at the top of the stairs.
    pose, trans = sample_frame(clip, 0.0)
    assert _airborne_height(pose, trans, clip.rest_joints) > 0.5
    details: dict = {}
    out = convert(path, report=details)
    assert out.ground is not None and any("ground not flat" in line for line in details["lines"])
    np.testing.assert_allclose(out.trans, clip.trans)  # vertical motion kept
    # Ground per frame = the height of the step the supporting foot stands on.
    ok = np.abs(out.ground - stance) < 0.03
    assert ok.mean() > 0.8, np.c_[out.ground, stance][~ok]
    quality = motion_quality(out)
    heights = [_airborne_height(*sample_grounded(out, f / out.mocap_framerate), out.rest_joints)
               for f in np.flatnonzero(quality["ok"])]
    assert quality["ok"].sum() > 0.5 * out.num_frames and max(heights) < 0.03
    saved = tmp_path / "stairs_converted.npz"
    save_clip(saved, out)
    np.testing.assert_allclose(load_clip(saved).ground, out.ground)


# 4. C3D: Plug-in Gait with the subject measurements, model outputs, other marker sets --------
ezc3d = pytest.importorskip("ezc3d")
MEAS = {"LeftLegLength": 905.0, "RightLegLength": 910.0, "InterAsisDistance": 240.0, "LeftKneeWidth": 105.0,
        "RightKneeWidth": 104.0, "LeftAnkleWidth": 72.0, "RightAnkleWidth": 71.0, "MarkerDiameter": 14.0,
        "LeftShoulderOffset": 45.0, "RightShoulderOffset": 46.0, "LeftElbowWidth": 74.0, "RightElbowWidth": 75.0,
        "LeftWristWidth": 55.0, "RightWristWidth": 56.0}


def find_joint_c(a, b, c, delta):
    """pyCGM's findJointC (Rodrigues rotation of b - c about the plane normal by 2 theta)."""
    out = np.empty_like(a)
    for f in range(len(a)):
        v1, v2 = a[f] - c[f], b[f] - c[f]
        v3 = np.cross(v1, v2)
        v3 /= np.linalg.norm(v3)
        m = (b[f] + c[f]) / 2
        length = np.linalg.norm(b[f] - m)
        theta = np.arccos(delta / np.linalg.norm(v2))
        rot = Rotation.from_rotvec(v3 * 2 * theta).as_matrix()
        r = rot @ v2
        out[f] = m + r * length / np.linalg.norm(r)
    return out


def pig_expected(mk):
    """Plug-in Gait joint centres (mm in, m out) written after pyCGM."""
    mm = {k: v * 1000.0 for k, v in mk.items()}
    r = MEAS["MarkerDiameter"] / 2
    origin = (mm["LASI"] + mm["RASI"]) / 2
    sacr = (mm["LPSI"] + mm["RPSI"]) / 2
    y = (mm["LASI"] - mm["RASI"]) / np.linalg.norm(mm["LASI"] - mm["RASI"], axis=1, keepdims=True)
    x0 = origin - sacr
    x = x0 - y * np.sum(x0 * y, axis=1, keepdims=True)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    z = np.cross(x, y)
    mean_leg = (MEAS["LeftLegLength"] + MEAS["RightLegLength"]) / 2
    c = mean_leg * 0.115 - 15.3
    theta, beta, aa = 0.500000178813934, 0.314000427722931, MEAS["InterAsisDistance"] / 2
    out = {}
    for side, s, sign in (("left", "L", -1), ("right", "R", 1)):
        at = 0.1288 * MEAS[f"{side.capitalize()}LegLength"] - 48.56
        xh = (-at - r) * np.cos(beta) + c * np.cos(theta) * np.sin(beta)
        yh = sign * (c * np.sin(theta) - aa)
        zh = (-at - r) * np.sin(beta) - c * np.cos(theta) * np.cos(beta)
        hjc = origin + xh * x + yh * y + zh * z
        kjc = find_joint_c(mm[f"{s}THI"], hjc, mm[f"{s}KNE"], MEAS[f"{side.capitalize()}KneeWidth"] / 2 + r)
        ajc = find_joint_c(mm[f"{s}TIB"], kjc, mm[f"{s}ANK"], MEAS[f"{side.capitalize()}AnkleWidth"] / 2 + r)
        out.update({f"{side}_hip": hjc / 1000, f"{side}_knee": kjc / 1000, f"{side}_ankle": ajc / 1000})
    return out


def add_thigh_tibia_wands(markers: dict[str, np.ndarray], joints: np.ndarray, world: np.ndarray) -> None:
    """Plug-in Gait's lateral thigh and tibia wands (LTHI/RTHI, LTIB/RTIB, metres) from the joint
    centres `joints` and the world rotations `world` (frames x joints x 3 x 3) of the same clip."""
    for side, sign in (("left", 1.0), ("right", -1.0)):
        s = side[0].upper()
        thigh = 0.5 * (joints[:, J[f"{side}_hip"]] + joints[:, J[f"{side}_knee"]])
        shank = 0.5 * (joints[:, J[f"{side}_knee"]] + joints[:, J[f"{side}_ankle"]])
        markers[f"{s}THI"] = thigh + world[:, J[f"{side}_hip"]] @ np.array([sign * 0.07, 0.0, 0.02])
        markers[f"{s}TIB"] = shank + world[:, J[f"{side}_knee"]] @ np.array([sign * 0.05, 0.0, 0.02])


def write_pig_c3d(path: Path, markers: dict[str, np.ndarray], rate: float) -> None:
    """A Plug-in Gait trial: `markers` written as C3D with the subject measurements MEAS
    (PROCESSING parameters)."""
    from test_mocap_c3d import write_c3d

    write_c3d(path, markers, rate)
    c3d = ezc3d.c3d(str(path))
    for key, value in MEAS.items():
        c3d.add_parameter("PROCESSING", key, [value])
    c3d.write(str(path))


def test_c3d_plug_in_gait_centres_from_subject_measurements(tmp_path):
    from test_mocap_c3d import markers_from, short as c3d_short, write_c3d

    from densesynth.motion.c3d import FitReport, c3d_to_clip
    from densesynth.motion.clip import resample

    clip = resample(c3d_short("walk", 0.6), 100.0)
    markers, joints = markers_from(clip, np.array(GENERIC_REST_JOINTS))
    add_thigh_tibia_wands(markers, joints, forward_kinematics(clip.poses, GENERIC_REST_JOINTS)[0])
    markers = {k: v for k, v in markers.items() if k not in ("LKNM", "RKNM", "LMMA", "RMMA")}
    path = tmp_path / "pig.c3d"
    write_pig_c3d(path, markers, 100.0)
    report, info = FitReport(), ConversionReport()
    out = c3d_to_clip(path, report=report, info=info)
    expected = pig_expected(markers)
    errors = {k: float(np.linalg.norm(report.centres[:, J[k]] - v, axis=1).max()) for k, v in expected.items()}
    print("C3D PiG centres vs the PiG formulas (max mm):", {k: round(v * 1000, 2) for k, v in errors.items()})
    assert max(errors.values()) < 0.015
    assert any("Plug-in Gait knee" in n for n in info.notes)
    fitted = clip_joints(out)
    fit_err = np.linalg.norm(fitted[:, [J[k] for k in expected]] - np.stack(list(expected.values()), 1), axis=2)
    print(f"IK on the PiG centres: mean {fit_err.mean() * 1000:.1f} mm")
    # Model outputs in the file win over the formulas.
    outputs = dict(markers, LKJC=joints[:, J["left_knee"]], RKJC=joints[:, J["right_knee"]])
    path2 = tmp_path / "pig_outputs.c3d"
    write_c3d(path2, outputs, 100.0)
    report2 = FitReport()
    c3d_to_clip(path2, report=report2)
    assert np.linalg.norm(report2.centres[:, J["left_knee"]] - joints[:, J["left_knee"]], axis=1).max() < 1e-3


def test_c3d_other_marker_sets(tmp_path):
    from test_mocap_c3d import markers_from, short as c3d_short, write_c3d

    from densesynth.motion.c3d import FitReport, c3d_to_clip

    clip = c3d_short("walk", 0.5)
    markers, joints = markers_from(clip, np.array(GENERIC_REST_JOINTS))
    rename = {"LASI": "L_IAS", "RASI": "R_IAS", "LPSI": "L_IPS", "RPSI": "R_IPS", "LKNE": "L_FLE", "LKNM": "L_FME",
              "RKNE": "R_FLE", "RKNM": "R_FME", "LANK": "L_FAL", "LMMA": "L_TAM", "RANK": "R_FAL", "RMMA": "R_TAM"}
    isb = {rename.get(k, k): v for k, v in markers.items() if k in rename}
    path = tmp_path / "qualisys.c3d"
    write_c3d(path, isb, float(clip.mocap_framerate))
    report, info = FitReport(), ConversionReport()
    c3d_to_clip(path, report=report, info=info)
    assert "marker set: isb" in info.notes
    err = np.linalg.norm(report.centres[:, J["left_knee"]] - joints[:, J["left_knee"]], axis=1).max()
    assert err < 0.005
    # A lab's own labels with a user map; and a clear error when a joint cannot be given.
    own = {f"M{i}": v for i, v in enumerate(isb.values())}
    path2 = tmp_path / "lab.c3d"
    write_c3d(path2, own, float(clip.mocap_framerate))
    labels = dict(zip(isb, own))
    user = {"markers": {"LASI": labels["L_IAS"], "RASI": labels["R_IAS"], "LPSI": labels["L_IPS"],
                        "RPSI": labels["R_IPS"]},
            "joints": {f"{side}_{j}": [labels[f"{s}_{a}"], labels[f"{s}_{b}"]] for side, s in (("left", "L"), ("right", "R"))
                       for j, (a, b) in (("knee", ("FLE", "FME")), ("ankle", ("FAL", "TAM")))}}
    c3d_to_clip(path2, markers=user, report=(r2 := FitReport()))
    assert np.linalg.norm(r2.centres[:, J["right_ankle"]] - joints[:, J["right_ankle"]], axis=1).max() < 0.005
    del user["joints"]["left_knee"]
    with pytest.raises(MotionFileError) as info2:
        c3d_to_clip(path2, markers=user)
    message = str(info2.value)
    assert "left_knee" in message and "--markers" in message and "\n" not in message
