"""C3D -> canonical clip: Plug-in Gait markers rigidly attached to a moving SMPL skeleton,
written with ezc3d (mm, Z up, 100 Hz, some invalid samples), read back by joint centres and
per-frame IK. The expectation is the generating motion's forward kinematics."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

ezc3d = pytest.importorskip("ezc3d")

from densesynth.motion.builtin_clips import builtin_clip  # noqa: E402
from densesynth.motion.c3d import FitReport, c3d_to_clip, fill_gaps  # noqa: E402
from densesynth.motion.clip import MotionClip, MotionFileError, resample  # noqa: E402
from densesynth.motion.kinematics import forward_kinematics  # noqa: E402
from densesynth.motion.smpl_skeleton import GENERIC_REST_JOINTS, JOINT_INDEX  # noqa: E402

J = JOINT_INDEX
SMPL_TO_ZUP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
PW, PD = 0.24, 0.16

# marker: (joint whose position it surrounds, joint whose rotation carries it, local offset)
def _marker_model() -> dict[str, tuple[str, str, tuple[float, float, float]]]:
    model: dict[str, tuple[str, str, tuple[float, float, float]]] = {
        "T10": ("spine2", "spine2", (0.0, 0.0, -0.10)), "STRN": ("spine2", "spine2", (0.0, 0.0, 0.10)),
        "C7": ("neck", "spine3", (0.0, 0.02, -0.07)), "CLAV": ("neck", "spine3", (0.0, -0.02, 0.07)),
        "LFHD": ("head", "head", (0.07, 0.08, 0.08)), "RFHD": ("head", "head", (-0.07, 0.08, 0.08)),
        "LBHD": ("head", "head", (0.07, 0.08, -0.06)), "RBHD": ("head", "head", (-0.07, 0.08, -0.06)),
    }
    for side, sign in (("left", 1.0), ("right", -1.0)):
        s = side[0].upper()
        model.update({
            f"{s}KNE": (f"{side}_knee", f"{side}_hip", (sign * 0.05, 0.0, 0.0)),
            f"{s}KNM": (f"{side}_knee", f"{side}_hip", (-sign * 0.05, 0.0, 0.0)),
            f"{s}ANK": (f"{side}_ankle", f"{side}_knee", (sign * 0.04, 0.0, 0.0)),
            f"{s}MMA": (f"{side}_ankle", f"{side}_knee", (-sign * 0.04, 0.0, 0.0)),
            f"{s}HEE": (f"{side}_ankle", f"{side}_ankle", (0.0, -0.05, -0.06)),
            f"{s}TOE": (f"{side}_foot", f"{side}_ankle", (0.0, 0.025, 0.0)),
            f"{s}SHO": (f"{side}_shoulder", "spine3", (0.0, 0.04, 0.0)),
            f"{s}ELB": (f"{side}_elbow", f"{side}_shoulder", (0.0, 0.0, -0.03)),
            f"{s}MEP": (f"{side}_elbow", f"{side}_shoulder", (0.0, 0.0, 0.03)),
            f"{s}WRA": (f"{side}_wrist", f"{side}_elbow", (0.0, 0.0, 0.03)),
            f"{s}WRB": (f"{side}_wrist", f"{side}_elbow", (0.0, 0.0, -0.03)),
            f"{s}FIN": (f"{side}_hand", f"{side}_wrist", (0.0, 0.01, 0.0)),
        })
    return model


def markers_from(clip: MotionClip, skeleton: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Marker trajectories (metres, SMPL frame) and the true joint positions."""
    world, joints = forward_kinematics(clip.poses, skeleton)
    joints = joints + clip.trans[:, None, :]
    out = {}
    for name, (at, carrier, offset) in _marker_model().items():
        out[name] = joints[:, J[at]] + world[:, J[carrier]] @ np.array(offset)
    # Pelvis: the inverse of the Harrington rule, rigid on the pelvis.
    rot = world[:, J["pelvis"]]
    mid_hips = joints[:, [J["left_hip"], J["right_hip"]]].mean(axis=1)
    asis = mid_hips + rot @ np.array([0.0, 0.30 * PW + 0.0109, 0.24 * PD + 0.0099])
    for name, offset in (("LASI", (PW / 2, 0, 0)), ("RASI", (-PW / 2, 0, 0)), ("LPSI", (0.05, 0, -PD)),
                         ("RPSI", (-0.05, 0, -PD))):
        out[name] = asis + rot @ np.array(offset, dtype=float)
    return out, joints


def write_c3d(path: Path, markers: dict[str, np.ndarray], rate: float, *, unit: str = "mm",
              basis: np.ndarray = SMPL_TO_ZUP, invalid: dict[str, slice] | None = None, prefix: str = "") -> None:
    scale = {"mm": 1000.0, "m": 1.0}[unit]
    names = list(markers)
    frames = len(markers[names[0]])
    points = np.ones((4, len(names), frames))
    residuals = np.zeros((1, len(names), frames))
    for k, name in enumerate(names):
        points[:3, k, :] = (markers[name] @ basis.T * scale).T
        if invalid and name in invalid:
            residuals[0, k, invalid[name]] = -1.0
            points[:3, k, invalid[name]] = 0.0  # what a system writes for a lost marker
    c3d = ezc3d.c3d()
    c3d["parameters"]["POINT"]["RATE"]["value"] = [rate]
    c3d["parameters"]["POINT"]["LABELS"]["value"] = tuple(prefix + n for n in names)
    c3d.add_parameter("POINT", "UNITS", unit)
    c3d["data"]["points"] = points
    c3d["data"]["meta_points"] = {"residuals": residuals,
                                  "camera_masks": np.zeros((7, len(names), frames), dtype=bool)}
    c3d.write(str(path))


def short(name: str, seconds: float) -> MotionClip:
    clip = builtin_clip(name)
    n = int(seconds * clip.mocap_framerate) + 1
    return MotionClip(clip.poses[:n], clip.trans[:n], clip.mocap_framerate, clip.rest_joints, clip.source)


def clip_joints(clip: MotionClip) -> np.ndarray:
    return forward_kinematics(clip.poses, clip.rest_joints)[1] + clip.trans[:, None, :]


@pytest.mark.parametrize("name, unit, up", [("walk", "mm", "z"), ("jumping_jacks", "m", "y")])
def test_c3d_round_trip(tmp_path, name, unit, up):
    clip = short(name, 1.0)
    skeleton = np.array(GENERIC_REST_JOINTS)
    _, expected = markers_from(clip, skeleton)
    markers, _ = markers_from(resample(clip, 100.0), skeleton)
    path = tmp_path / f"{name}.c3d"
    invalid = {"LKNE": slice(20, 24), "RWRA": slice(50, 53), "C7": slice(0, 2)}
    basis = SMPL_TO_ZUP if up == "z" else np.eye(3)
    write_c3d(path, markers, 100.0, unit=unit, basis=basis, invalid=invalid, prefix="Subject01:")
    report = FitReport()
    out = c3d_to_clip(path, fps=30, report=report)
    assert out.mocap_framerate == 30 and out.num_frames == clip.num_frames
    per_joint = np.linalg.norm(clip_joints(out) - expected, axis=-1)
    err = per_joint.mean()
    print(f"C3D round trip {name} ({unit}, {up.upper()} up, 100 Hz, gaps): mean per-joint error {err * 100:.2f} cm, "
          f"worst joint {per_joint.mean(axis=0).max() * 100:.2f} cm, IK residual {report.mean_residual * 1000:.1f} mm")
    assert err < 0.02
    assert not report.failed_frames
    # Head and forearm twists come from the head markers and the wrist bar.
    w_out = forward_kinematics(out.poses, out.rest_joints)[0]
    w_true = forward_kinematics(clip.poses, skeleton)[0]
    for joint in ("head", "left_elbow", "right_elbow", "pelvis"):
        rel = w_out[:, J[joint]] @ np.swapaxes(w_true[:, J[joint]], -1, -2)
        worst = np.degrees(Rotation.from_matrix(rel).magnitude().max())
        assert worst < 5.0, (joint, worst)
    bones = np.linalg.norm(out.rest_joints[[J["left_knee"], J["left_ankle"]]]
                           - out.rest_joints[[J["left_hip"], J["left_knee"]]], axis=1)
    true = np.linalg.norm(skeleton[[J["left_knee"], J["left_ankle"]]] - skeleton[[J["left_hip"], J["left_knee"]]], axis=1)
    assert np.abs(bones - true).max() < 0.01


def test_fill_gaps_short_only():
    xyz = np.arange(20, dtype=float)[:, None].repeat(3, axis=1)
    xyz[3:5] = np.nan
    xyz[8:15] = np.nan
    out = fill_gaps(xyz, 3)
    assert np.allclose(out[3:5, 0], [3, 4])
    assert np.isnan(out[8:15]).all()


def _good(tmp_path: Path) -> Path:
    markers, _ = markers_from(short("idle", 0.3), np.array(GENERIC_REST_JOINTS))
    path = tmp_path / "good.c3d"
    write_c3d(path, markers, 30.0)
    return path


@pytest.mark.parametrize("case, words", [
    ("zero_bytes", "empty"),
    ("no_frames", "cannot be read"),
    ("truncated", "truncated"),
    ("garbage", "cannot be read"),
    ("all_invalid", "no valid marker"),
    ("unknown_markers", "Plug-in Gait"),
])
def test_bad_c3d_files(tmp_path, case, words):
    path = _good(tmp_path)
    data = path.read_bytes()
    if case == "zero_bytes":
        path.write_bytes(b"")
    elif case == "no_frames":
        path.write_bytes(data[:512 * (int.from_bytes(data[16:18], "little") - 1)])
    elif case == "truncated":
        keep = 512 * (int.from_bytes(data[16:18], "little") - 1) + 512
        path.write_bytes(data[:keep])
    elif case == "garbage":
        path.write_bytes(b"not a c3d file at all" * 40)
    elif case == "all_invalid":
        markers, _ = markers_from(short("idle", 0.3), np.array(GENERIC_REST_JOINTS))
        write_c3d(path, markers, 30.0, invalid={k: slice(None) for k in markers})
    elif case == "unknown_markers":
        markers, _ = markers_from(short("idle", 0.3), np.array(GENERIC_REST_JOINTS))
        write_c3d(path, {f"M{i}": v for i, v in enumerate(markers.values())}, 30.0)
    with pytest.raises(MotionFileError) as info:
        c3d_to_clip(path)
    message = str(info.value)
    assert str(path) in message and words in message and "\n" not in message, message


def test_long_gap_frames_are_reported_not_invented(tmp_path):
    clip = short("walk", 1.0)
    markers, _ = markers_from(resample(clip, 100.0), np.array(GENERIC_REST_JOINTS))
    path = tmp_path / "gap.c3d"
    write_c3d(path, markers, 100.0, invalid={"LASI": slice(40, 70)})  # 0.3 s: longer than max_gap
    report = FitReport()
    out = c3d_to_clip(path, fps=30, report=report)
    lost = [f for f in range(out.num_frames) if 0.40 <= f / 30 < 0.70]
    assert report.failed_frames == lost
    assert np.allclose(out.poses[lost], out.poses[lost[0] - 1])  # held, not extrapolated


@pytest.mark.parametrize("scale", [1e-5, 0.5, 3.0])  # the series branch, everyday angles, near pi
def test_ik_jacobian_matches_finite_differences(scale):
    """The IK's analytic Jacobian against central differences of the independent forward
    kinematics (`kinematics.forward_kinematics`, scipy rotations): joint positions and
    vectors carried by joint rotations (the head and forearm directions)."""
    from densesynth.motion.c3d import pose_jacobian, pose_kinematics

    rng = np.random.default_rng(int(scale * 1000))
    axes = rng.normal(size=(24, 3))
    angles = np.clip(rng.normal(scale, 0.1 * scale, size=24), 0.0, 3.1)
    pose = (axes / np.linalg.norm(axes, axis=1, keepdims=True) * angles[:, None]).ravel()
    skeleton = np.array(GENERIC_REST_JOINTS) * 1.1
    world, pos, omega = pose_kinematics(pose, skeleton)
    w_ref, p_ref = forward_kinematics(pose, skeleton)
    np.testing.assert_allclose(world, w_ref, atol=1e-12)
    np.testing.assert_allclose(pos, p_ref, atol=1e-12)
    joints = np.arange(24)
    carriers = np.array([J["head"], J["head"], J["left_elbow"], J["right_elbow"], J["pelvis"]])
    local = np.eye(3)[[2, 0, 2, 2, 1]]
    vectors = np.einsum("kab,kb->ka", world[carriers], local)
    jac_pos, jac_vec = pose_jacobian(pos, omega, joints, vectors, carriers)
    h = 1e-6
    fd_pos, fd_vec = np.zeros_like(jac_pos), np.zeros_like(jac_vec)
    for i in range(72):
        step = np.zeros(72)
        step[i] = h
        (w_a, p_a), (w_b, p_b) = forward_kinematics(pose + step, skeleton), forward_kinematics(pose - step, skeleton)
        fd_pos[:, i] = ((p_a - p_b) / (2 * h)).ravel()
        v_a, v_b = (np.einsum("kab,kb->ka", w[carriers], local) for w in (w_a, w_b))
        fd_vec[:, i] = ((v_a - v_b) / (2 * h)).ravel()
    assert np.abs(fd_pos).max() > 0.1 and np.abs(fd_vec).max() > 0.1
    np.testing.assert_allclose(jac_pos, fd_pos, atol=1e-7)
    np.testing.assert_allclose(jac_vec, fd_vec, atol=1e-7)
