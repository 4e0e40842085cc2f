"""Motion: forward kinematics, the clip format, built-in clips, retargeting onto anny."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation, Slerp

from densesynth.motion.builtin_clips import BUILTIN_CLIPS, builtin_clip
from densesynth.motion.clip import MotionClip, load_clip, resample, sample_frame, save_clip
from densesynth.motion.kinematics import forward_kinematics
from densesynth.motion.retarget import (
    ANNY_JOINT_MAP,
    SMPL_TO_ANNY,
    Retargeter,
    retarget_clip,
)
from densesynth.motion.smpl_skeleton import (
    GENERIC_REST_JOINTS,
    JOINT_INDEX as J,
    JOINT_NAMES,
    PARENTS,
)

ADDON = Path(__file__).resolve().parents[1] / "addon"


def _angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return np.degrees(np.arccos(np.clip(np.sum(a * b, axis=-1), -1.0, 1.0)))


def _world_joints(clip: MotionClip) -> np.ndarray:
    _, joints = forward_kinematics(clip.poses, clip.rest_joints)
    return joints + clip.trans[:, None, :]


# --- skeleton and forward kinematics -------------------------------------------------------


def test_skeleton_tables_are_consistent():
    assert len(JOINT_NAMES) == 24 and PARENTS.shape == (24,)
    assert PARENTS[0] == -1 and all(PARENTS[j] < j for j in range(1, 24))
    rest = GENERIC_REST_JOINTS
    assert rest.shape == (24, 3)
    # Stands on the floor y = 0, about 1.7 m tall (head joint ~16 cm below the crown),
    # T-pose (wrists level with the shoulders), left side at +X.
    assert 0.0 < rest[[J["left_foot"], J["right_foot"]], 1].min() < 0.05
    assert 1.45 < rest[J["head"], 1] < 1.65
    assert abs(rest[J["left_wrist"], 1] - rest[J["left_shoulder"], 1]) < 0.02
    assert rest[J["left_wrist"], 0] > 0.5 and rest[J["right_wrist"], 0] < -0.5
    # Arm span (hand joints + fingers) about the stature.
    assert 1.4 < rest[J["left_hand"], 0] - rest[J["right_hand"], 0] < 1.7


def test_fk_of_identity_pose_is_rest():
    rng = np.random.default_rng(0)
    rest = rng.normal(size=(24, 3))
    world, joints = forward_kinematics(np.zeros(72), rest)
    np.testing.assert_allclose(joints, rest, atol=1e-12)
    np.testing.assert_allclose(world, np.broadcast_to(np.eye(3), (24, 3, 3)), atol=1e-12)


def test_fk_matches_hand_computed_two_joint_chain():
    rest = np.zeros((24, 3))
    rest[J["left_hip"]] = (1.0, 0.0, 0.0)
    rest[J["left_knee"]] = (2.0, 0.0, 0.0)
    pose = np.zeros((24, 3))
    pose[J["pelvis"]] = (np.pi / 2, 0.0, 0.0)  # 90 degrees about X
    pose[J["left_hip"]] = (0.0, 0.0, np.pi / 2)  # 90 degrees about Z, in the pelvis frame
    world, joints = forward_kinematics(pose.ravel(), rest)
    # By hand: the hip stays at (1, 0, 0) (on the X axis); the knee offset (1, 0, 0) turns
    # first by Rz(90) -> (0, 1, 0), then by Rx(90) -> (0, 0, 1).
    np.testing.assert_allclose(joints[J["left_hip"]], (1.0, 0.0, 0.0), atol=1e-12)
    np.testing.assert_allclose(joints[J["left_knee"]], (1.0, 0.0, 1.0), atol=1e-12)
    rx = np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]], dtype=float)
    rz = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]], dtype=float)
    np.testing.assert_allclose(world[J["left_hip"]], rx @ rz, atol=1e-12)
    # Frames can be batched.
    world_b, joints_b = forward_kinematics(np.stack([np.zeros(72), pose.ravel()]), rest)
    np.testing.assert_allclose(joints_b[1], joints, atol=1e-12)
    np.testing.assert_allclose(joints_b[0], rest, atol=1e-12)


# --- built-in clips ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clips() -> dict[str, MotionClip]:
    return {name: factory() for name, factory in BUILTIN_CLIPS.items()}


def test_builtin_clip_set():
    assert {"walk", "run", "wave", "squat", "idle"} <= set(BUILTIN_CLIPS)
    assert {"reach", "jumping_jacks"} & set(BUILTIN_CLIPS)
    with pytest.raises(ValueError, match="walk"):
        builtin_clip("moonwalk")


@pytest.mark.parametrize("name", sorted(BUILTIN_CLIPS))
def test_builtin_clip_is_plausible(name, clips):
    clip = clips[name]
    t = clip.num_frames
    assert clip.poses.shape == (t, 72) and clip.trans.shape == (t, 3)
    assert clip.rest_joints.shape == (24, 3)
    assert clip.mocap_framerate == 30.0
    assert 1.0 <= clip.duration <= 3.0
    assert np.all(np.isfinite(clip.poses)) and np.all(np.isfinite(clip.trans))
    assert clip.source
    # Deterministic.
    again = builtin_clip(name)
    np.testing.assert_array_equal(again.poses, clip.poses)
    np.testing.assert_array_equal(again.trans, clip.trans)

    joints = _world_joints(clip)
    # Upright every frame.
    assert np.all(joints[:, J["head"], 1] - joints[:, J["pelvis"], 1] > 0.4)
    # Feet: never below the floor, and on it for most of the clip.
    lowest = joints[:, [J["left_ankle"], J["right_ankle"], J["left_foot"], J["right_foot"]], 1].min(axis=1)
    assert lowest.min() > -0.01
    assert np.mean(lowest < 0.05) > 0.5
    # The arms are not held in the T-pose: in most frames at least one arm hangs or is
    # raised well away from horizontal.
    arm_tilt = []
    for side in ("left", "right"):
        upper = joints[:, J[f"{side}_elbow"]] - joints[:, J[f"{side}_shoulder"]]
        arm_tilt.append(np.degrees(np.arcsin(np.abs(upper[:, 1]) / np.linalg.norm(upper, axis=1))))
    away_from_t_pose = np.max(arm_tilt, axis=0) > 30.0
    assert np.mean(away_from_t_pose) > 0.6, f"{name}: arms near the T-pose too often"


def test_walk_cycle(clips):
    clip = clips["walk"]
    joints = _world_joints(clip)
    # Feet alternate: the left ankle is ahead of the right, then behind it, by a step.
    ahead = joints[:, J["left_ankle"], 2] - joints[:, J["right_ankle"], 2]
    assert ahead.max() > 0.3 and ahead.min() < -0.3
    assert np.sum(np.diff(np.sign(ahead)) != 0) >= 3  # crosses over repeatedly
    # Walks forward (+Z) at a walking speed, without drifting sideways.
    pelvis = joints[:, J["pelvis"]]
    speed = (pelvis[-1, 2] - pelvis[0, 2]) / clip.duration
    assert 0.8 <= speed <= 1.8
    assert np.all(np.diff(pelvis[:, 2]) > 0)
    assert np.abs(pelvis[:, 0]).max() < 0.05
    # Arms down: wrists well below the shoulders, and they swing forwards and backwards.
    for side in ("left", "right"):
        assert np.all(joints[:, J[f"{side}_wrist"], 1] < joints[:, J[f"{side}_shoulder"], 1] - 0.3)
        wrist_ahead = joints[:, J[f"{side}_wrist"], 2] - pelvis[:, 2]
        assert np.ptp(wrist_ahead) > 0.15
    # The swing is counter to the legs: the left wrist is furthest forward when the
    # right ankle is ahead.
    left_wrist_ahead = joints[:, J["left_wrist"], 2] - pelvis[:, 2]
    right_wrist_ahead = joints[:, J["right_wrist"], 2] - pelvis[:, 2]
    assert ahead[np.argmax(left_wrist_ahead)] < -0.3
    assert ahead[np.argmax(right_wrist_ahead)] > 0.3
    # The stride matches the travel: each foot stays put on the ground for a while
    # (8 frames with less than 3 cm of movement) instead of sliding.
    for side in ("left", "right"):
        z = joints[:, J[f"{side}_ankle"], 2]
        windows = np.lib.stride_tricks.sliding_window_view(z, 8)
        assert np.ptp(windows, axis=1).min() < 0.03
    # The pelvis bobs a little.
    assert 0.01 < np.ptp(pelvis[:, 1]) < 0.08


def test_wave_raises_one_hand(clips):
    joints = _world_joints(clips["wave"])
    head = joints[:, J["head"], 1]
    assert np.all(joints[:, J["right_wrist"], 1] > head)
    assert np.all(joints[:, J["left_wrist"], 1] < joints[:, J["left_shoulder"], 1] - 0.3)
    # The hand moves side to side.
    assert np.ptp(joints[:, J["right_wrist"], 0]) > 0.1


def test_squat_goes_down_and_up(clips):
    joints = _world_joints(clips["squat"])
    pelvis_y = joints[:, J["pelvis"], 1]
    assert pelvis_y[0] - pelvis_y.min() > 0.3
    assert abs(pelvis_y[-1] - pelvis_y[0]) < 0.01
    # Heels stay on the ground in place.
    ankles = joints[:, [J["left_ankle"], J["right_ankle"]]]
    assert np.ptp(ankles[..., 1], axis=0).max() < 0.01
    assert np.ptp(ankles[..., 2], axis=0).max() < 0.01


# --- sampling ------------------------------------------------------------------------------


def test_sample_frame_at_and_between_frames(clips):
    clip = clips["walk"]
    fps = clip.mocap_framerate
    pose, trans = sample_frame(clip, 12 / fps)
    np.testing.assert_allclose(pose, clip.poses[12], atol=1e-9)
    np.testing.assert_allclose(trans, clip.trans[12], atol=1e-12)

    pose, trans = sample_frame(clip, 12.5 / fps)
    lo = clip.poses[12].reshape(24, 3)
    hi = clip.poses[13].reshape(24, 3)
    for joint in range(24):
        expected = Slerp([0.0, 1.0], Rotation.from_rotvec([lo[joint], hi[joint]]))(0.5)
        got = Rotation.from_rotvec(pose.reshape(24, 3)[joint])
        assert (got * expected.inv()).magnitude() < 1e-9, JOINT_NAMES[joint]
    np.testing.assert_allclose(trans, 0.5 * (clip.trans[12] + clip.trans[13]), atol=1e-12)
    assert not np.allclose(pose, clip.poses[12]) and not np.allclose(pose, clip.poses[13])
    # Clamped outside the clip.
    np.testing.assert_allclose(sample_frame(clip, -1.0)[0], clip.poses[0], atol=1e-9)
    np.testing.assert_allclose(sample_frame(clip, 99.0)[1], clip.trans[-1], atol=1e-12)


def test_resample_keeps_timing(clips):
    clip = clips["wave"]
    fast = resample(clip, 60.0)
    assert fast.mocap_framerate == 60.0
    assert fast.num_frames == 2 * clip.num_frames - 1
    assert fast.duration == pytest.approx(clip.duration)
    np.testing.assert_allclose(fast.poses[::2], clip.poses, atol=1e-9)
    slow = resample(clip, 24.0)
    assert slow.duration == pytest.approx(clip.duration, abs=1 / 24)
    np.testing.assert_allclose(slow.poses[5], sample_frame(clip, 5 / 24)[0], atol=1e-9)


# --- files ---------------------------------------------------------------------------------


def test_save_and_load_round_trip(tmp_path, clips):
    clip = clips["squat"]
    path = tmp_path / "squat.npz"
    save_clip(path, clip)
    assert [p.name for p in tmp_path.iterdir()] == ["squat.npz"]  # no temporary left over
    loaded = load_clip(path)
    np.testing.assert_array_equal(loaded.poses, clip.poses)
    np.testing.assert_array_equal(loaded.trans, clip.trans)
    np.testing.assert_array_equal(loaded.rest_joints, clip.rest_joints)
    assert loaded.mocap_framerate == clip.mocap_framerate and loaded.source == clip.source


def test_load_amass_style_file(tmp_path):
    frames = 5
    rng = np.random.default_rng(1)
    poses = rng.normal(scale=0.2, size=(frames, 156))
    # AMASS worlds are Z up: the root turns SMPL's Y-up body upright in Z (90 deg about X).
    poses[:, :3] = (np.pi / 2, 0.0, 0.0)
    trans = np.zeros((frames, 3))
    trans[:, 1] = np.linspace(0.0, 0.4, frames)  # walking along the world's +Y
    trans[:, 2] = 0.93
    path = tmp_path / "amass.npz"
    np.savez(path, poses=poses, trans=trans, mocap_frame_rate=np.array(120.0), betas=np.zeros(16),
             gender=np.array("female"))
    clip = load_clip(path)
    assert clip.poses.shape == (frames, 72) and clip.mocap_framerate == 120.0
    # Body joints kept, SMPL+H finger values not taken for SMPL's hand joints.
    np.testing.assert_allclose(clip.poses[:, 3:66], poses[:, 3:66])
    np.testing.assert_array_equal(clip.poses[:, 66:72], 0.0)
    # Brought into the Y-up frame: the root rotation undone, upright, moving along -Z
    # (Z-up +Y is Y-up -Z), standing near the floor.
    np.testing.assert_allclose(clip.poses[:, :3], 0.0, atol=1e-9)
    np.testing.assert_allclose(np.diff(clip.trans[:, 2]), -0.1, atol=1e-9)
    zeroed = MotionClip(np.zeros((frames, 72)), clip.trans, 120.0, clip.rest_joints)
    joints = _world_joints(zeroed)
    assert np.all(joints[:, J["head"], 1] > joints[:, J["pelvis"], 1] + 0.4)
    assert abs(joints[0, J["pelvis"], 1] - (0.93 + 0.03)) < 0.02  # SMPL pelvis ~3 cm above trans
    # Also with the other frame-rate key.
    np.savez(path, poses=poses[:, :72], trans=trans, mocap_framerate=np.array(60.0))
    assert load_clip(path).mocap_framerate == 60.0


def test_load_errors_name_the_file(tmp_path):
    missing = tmp_path / "no_poses.npz"
    np.savez(missing, trans=np.zeros((3, 3)), mocap_framerate=30.0)
    with pytest.raises(ValueError, match=r"no_poses\.npz.*poses"):
        load_clip(missing)
    narrow = tmp_path / "narrow.npz"
    np.savez(narrow, poses=np.zeros((3, 60)), trans=np.zeros((3, 3)), mocap_framerate=30.0)
    with pytest.raises(ValueError, match=r"narrow\.npz.*72"):
        load_clip(narrow)
    no_rate = tmp_path / "no_rate.npz"
    np.savez(no_rate, poses=np.zeros((3, 72)), trans=np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"no_rate\.npz.*frame_?rate"):
        load_clip(no_rate)
    bad_trans = tmp_path / "bad_trans.npz"
    np.savez(bad_trans, poses=np.zeros((3, 72)), trans=np.zeros((4, 3)), mocap_framerate=30.0)
    with pytest.raises(ValueError, match=r"bad_trans\.npz.*trans"):
        load_clip(bad_trans)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not an archive")
    with pytest.raises(ValueError, match=r"garbage\.npz"):
        load_clip(garbage)
    with pytest.raises(ValueError, match=r"absent\.npz"):
        load_clip(tmp_path / "absent.npz")


# --- retargeting onto synthetic skeletons --------------------------------------------------


def _pose_heads(heads: np.ndarray, parents: np.ndarray, world: np.ndarray) -> np.ndarray:
    """Each bone turned by its world delta about its head, heads carried down the chain."""
    posed = heads.copy()
    for bone in range(1, len(heads)):
        p = parents[bone]
        posed[bone] = posed[p] + world[p] @ (heads[bone] - heads[p])
    return posed


def test_retarget_onto_the_source_skeleton_reproduces_fk(clips):
    clip = clips["walk"]
    heads = clip.rest_joints @ SMPL_TO_ANNY.T  # the same skeleton in anny's axes
    identity_map = {j: name for j, name in enumerate(JOINT_NAMES)}
    retargeter = Retargeter(heads, PARENTS, JOINT_NAMES, identity_map, clip.rest_joints)
    np.testing.assert_allclose(retargeter.rest_alignment, np.broadcast_to(np.eye(3), (24, 3, 3)), atol=1e-9)
    assert retargeter.leg_ratio == pytest.approx(1.0)
    result = retargeter(clip.poses, clip.trans)
    _, smpl = forward_kinematics(clip.poses, clip.rest_joints)
    for t in range(0, clip.num_frames, 5):
        posed = _pose_heads(heads, PARENTS, result.world_rotations[t]) + result.root_translation[t]
        np.testing.assert_allclose(posed, (smpl[t] + clip.trans[t]) @ SMPL_TO_ANNY.T, atol=1e-9)


def test_retarget_aligns_the_spine_exactly_when_frames_disagree():
    # A target whose spine leans sideways from the pelvis: spine and hip line are not
    # perpendicular as in the source, so only one of them can match exactly: the spine.
    source = np.array(GENERIC_REST_JOINTS)
    heads = source @ SMPL_TO_ANNY.T
    heads[J["spine1"]] += (0.03, 0.0, 0.0)  # about 15 degrees
    identity_map = {j: name for j, name in enumerate(JOINT_NAMES)}
    retargeter = Retargeter(heads, PARENTS, JOINT_NAMES, identity_map, source)
    pose = Rotation.from_euler("xyz", [20, 30, 10], degrees=True).as_rotvec()
    full = np.zeros(72)
    full[:3] = pose
    result = retargeter(full)
    posed = _pose_heads(heads, PARENTS, result.world_rotations)
    _, smpl = forward_kinematics(full, source)
    spine_t = posed[J["spine1"]] - posed[J["pelvis"]]
    spine_s = SMPL_TO_ANNY @ (smpl[J["spine1"]] - smpl[J["pelvis"]])
    assert _angle_deg(spine_t, spine_s) < 0.01
    hips_t = posed[J["left_hip"]] - posed[J["right_hip"]]
    hips_s = SMPL_TO_ANNY @ (smpl[J["left_hip"]] - smpl[J["right_hip"]])
    assert 1.0 < _angle_deg(hips_t, hips_s) < 30.0


# --- retargeting onto anny -----------------------------------------------------------------


@pytest.fixture(scope="module")
def anny(anny_archive):
    from densesynth.bodies.body_model import AnnyBody

    body = AnnyBody.load(anny_archive)
    return body, body.rest({})


def _retargeter(anny, rest_joints=GENERIC_REST_JOINTS) -> Retargeter:
    body, rest = anny
    return Retargeter(rest.bone_heads, body.bone_parents, body.bone_labels, ANNY_JOINT_MAP, rest_joints)


def _primary(bones):
    return bones if isinstance(bones, str) else bones[0]


def test_anny_joint_map_matches_the_rig(anny):
    body, rest = anny
    labels = body.bone_labels
    heads = rest.bone_heads
    head_of = lambda joint: heads[labels.index(_primary(ANNY_JOINT_MAP[joint]))]  # noqa: E731
    # Sanity of the chosen bones: hips beside the pelvis, knees half-way to the ankles,
    # shoulders outside the collars, elbows, wrists and hands further out, all on the
    # right side of the body (anny's left is +X).
    for side, sign in (("left", 1.0), ("right", -1.0)):
        hip, knee, ankle = (head_of(J[f"{side}_{n}"]) for n in ("hip", "knee", "ankle"))
        assert sign * hip[0] > 0.05 and hip[2] > knee[2] > ankle[2]
        chain = [head_of(J[f"{side}_{n}"]) for n in ("collar", "shoulder", "elbow", "wrist", "hand")]
        assert np.all(np.diff([sign * p[0] for p in chain]) > 0)
    assert head_of(J["head"])[2] > head_of(J["neck"])[2] > head_of(J["spine3"])[2] > head_of(J["pelvis"])[2]


def test_identity_pose_gives_t_pose_on_anny(anny):
    body, rest = anny
    retargeter = _retargeter(anny)
    result = retargeter(np.zeros(72))
    _, heads = body.pose(rest, result.world_rotations)
    h = lambda label: heads[body.bone_labels.index(label)]  # noqa: E731
    for s, x in (("L", 1.0), ("R", -1.0)):
        for a, b in (("upperarm01", "lowerarm01"), ("lowerarm01", "wrist")):
            d = h(f"{b}.{s}") - h(f"{a}.{s}")
            assert _angle_deg(d, np.array([x, 0.0, 0.0])) < 5.0, (a, s)  # horizontal, sideways
        for a, b in (("upperleg01", "lowerleg01"), ("lowerleg01", "foot")):
            d = h(f"{b}.{s}") - h(f"{a}.{s}")
            assert _angle_deg(d, np.array([0.0, 0.0, -1.0])) < 8.0, (a, s)  # straight down
    # In anny's own rest pose the arms hang at about 45 degrees: the retargeting moved them.
    d_rest = rest.bone_heads[body.bone_labels.index("lowerarm01.L")] - rest.bone_heads[
        body.bone_labels.index("upperarm01.L")
    ]
    assert _angle_deg(d_rest, np.array([1.0, 0.0, 0.0])) > 30.0
    np.testing.assert_allclose(result.root_translation, 0.0)


def test_retargeted_bones_follow_smpl_directions(anny, clips):
    body, rest = anny
    rng = np.random.default_rng(7)
    multi_child = {J["pelvis"]: (J["spine1"], J["left_hip"], J["right_hip"]),
                   J["spine3"]: (J["neck"], J["left_collar"], J["right_collar"])}
    checked = 0
    for name, clip in clips.items():
        retargeter = _retargeter(anny, clip.rest_joints)
        frames = rng.choice(clip.num_frames, size=2, replace=False)
        result = retargeter(clip.poses[frames], clip.trans[frames])
        _, smpl = forward_kinematics(clip.poses[frames], clip.rest_joints)
        for k in range(len(frames)):
            _, heads = body.pose(rest, result.world_rotations[k], result.root_translation[k])
            bone = lambda joint: heads[body.bone_labels.index(_primary(ANNY_JOINT_MAP[joint]))]  # noqa: E731
            for joint in ANNY_JOINT_MAP:
                kids = [c for c in range(24) if PARENTS[c] == joint and c in ANNY_JOINT_MAP]
                if joint in multi_child:
                    primary, left, right = multi_child[joint]
                    kids = [primary]
                    # The left-right line, orthogonal to the primary direction, agrees too.
                    p_t = bone(primary) - bone(joint)
                    p_s = SMPL_TO_ANNY @ (smpl[k, primary] - smpl[k, joint])
                    l_t = bone(left) - bone(right)
                    l_s = SMPL_TO_ANNY @ (smpl[k, left] - smpl[k, right])
                    l_t = l_t - p_t * (l_t @ p_t) / (p_t @ p_t)
                    l_s = l_s - p_s * (l_s @ p_s) / (p_s @ p_s)
                    assert _angle_deg(l_t, l_s) < 1.0, (name, JOINT_NAMES[joint])
                for child in kids:
                    target = bone(child) - bone(joint)
                    source = SMPL_TO_ANNY @ (smpl[k, child] - smpl[k, joint])
                    assert _angle_deg(target, source) < 1.0, (name, JOINT_NAMES[joint], JOINT_NAMES[child])
                    checked += 1
    assert checked > 200


def test_retargeted_walk_on_anny(anny, clips):
    body, rest = anny
    clip = clips["walk"]
    result = retarget_clip(clip, rest.bone_heads, body.bone_parents, body.bone_labels)
    assert result.world_rotations.shape == (clip.num_frames, len(body.bone_labels), 3, 3)
    assert np.all(np.isfinite(result.world_rotations))
    # Rotations, not reflections or scalings.
    np.testing.assert_allclose(
        np.einsum("tbij,tbkj->tbik", result.world_rotations, result.world_rotations),
        np.broadcast_to(np.eye(3), result.world_rotations.shape), atol=1e-9,
    )
    labels = body.bone_labels
    idx = {name: labels.index(name) for name in ("root", "head", "eye.L", "eye.R", "upperleg01.L", "upperleg01.R")}
    floor = rest.vertices[:, 2].min()
    for t in range(0, clip.num_frames, 4):
        verts, heads = body.pose(rest, result.world_rotations[t], result.root_translation[t])
        assert heads[idx["head"], 2] - heads[idx["root"], 2] > 0.4
        # Facing -Y: the eyes are in front of the head joint, the hips' left-right line
        # crossed with up points forward (-Y), and the person is not lying down.
        eyes = 0.5 * (heads[idx["eye.L"]] + heads[idx["eye.R"]])
        assert eyes[1] < heads[idx["head"], 1]
        forward = np.cross(heads[idx["upperleg01.L"]] - heads[idx["upperleg01.R"]], [0.0, 0.0, 1.0])
        assert _angle_deg(forward, np.array([0.0, -1.0, 0.0])) < 25.0
        # Feet on the floor of anny's rest pose, give or take.
        assert abs(verts[:, 2].min() - floor) < 0.04
    # Walks towards -Y at the scaled speed.
    travel = result.root_translation[-1] - result.root_translation[0]
    assert travel[1] < -0.8 * clip.duration and abs(travel[0]) < 0.1
    leg = lambda p: np.linalg.norm(p[1] - p[0]) + np.linalg.norm(p[2] - p[1])  # noqa: E731
    anny_leg = leg(rest.bone_heads[[labels.index(n) for n in ("upperleg01.L", "lowerleg01.L", "foot.L")]])
    smpl_leg = leg(clip.rest_joints[[J["left_hip"], J["left_knee"], J["left_ankle"]]])
    ratio = anny_leg / smpl_leg
    assert travel[1] == pytest.approx(-(clip.trans[-1, 2] - clip.trans[0, 2]) * ratio, rel=0.02)


def test_retargeter_rejects_unknown_bones(anny):
    body, rest = anny
    with pytest.raises(ValueError, match="no_such_bone"):
        Retargeter(rest.bone_heads, body.bone_parents, body.bone_labels, {0: "no_such_bone"})
