"""`python -m farm.motion convert`: conversions, one-line errors, atomic output, quality."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, assert_one_line_error
from densesynth.motion.builtin_clips import builtin_clip
from densesynth.motion.bvh import CMU_MAP
from densesynth.motion.clip import MotionClip, MotionFileError, load_clip, save_clip
from densesynth.motion.convert import convert, motion_quality
from densesynth.motion.kinematics import forward_kinematics
from densesynth.motion.smpl_skeleton import GENERIC_REST_JOINTS, JOINT_NAMES, NUM_JOINTS
from test_mocap_bvh import CMU_UNIT, expected_at, names_from, short, variant_skeleton, write_bvh


def motion_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "farm.motion", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120)


def test_cli_converts_cmu_bvh_to_30fps(tmp_path):
    clip = short("walk", 1.0)
    skeleton = variant_skeleton(collars_at_spine=True)
    src = tmp_path / "cmu_walk.bvh"
    write_bvh(src, clip, skeleton, names_from(CMU_MAP), unit=CMU_UNIT, fps=120.0, order="ZYX")
    out = tmp_path / "walk.npz"
    result = motion_cli("convert", str(src), "--out", str(out), "--fps", "30")
    assert result.returncode == 0, result.stderr
    assert "0 frames flagged" in result.stdout
    loaded = load_clip(out)
    assert loaded.mocap_framerate == 30 and loaded.num_frames == clip.num_frames
    joints = forward_kinematics(loaded.poses, loaded.rest_joints)[1] + loaded.trans[:, None]
    assert np.linalg.norm(joints - expected_at(clip, skeleton), axis=-1).mean() < 0.02
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cmu_walk.bvh", "walk.npz"]


def test_cli_map_file(tmp_path):
    clip = short("reach", 0.5)
    src = tmp_path / "custom.bvh"
    write_bvh(src, clip, np.array(GENERIC_REST_JOINTS), [f"b{i}" for i in range(NUM_JOINTS)], fps=30.0)
    map_file = tmp_path / "map.yaml"
    map_file.write_text("".join(f"b{i}: {name}\n" for i, name in enumerate(JOINT_NAMES)))
    out = tmp_path / "clip.npz"
    result = motion_cli("convert", str(src), "--out", str(out), "--map", str(map_file))
    assert result.returncode == 0, result.stderr
    loaded = load_clip(out)
    joints = forward_kinematics(loaded.poses, loaded.rest_joints)[1] + loaded.trans[:, None]
    assert np.linalg.norm(joints - expected_at(clip, GENERIC_REST_JOINTS), axis=-1).mean() < 0.005

    map_file.write_text("b0: tail\n")
    result = motion_cli("convert", str(src), "--out", str(out), "--map", str(map_file))
    assert_one_line_error(result, str(map_file), "tail")


def test_cli_errors_leave_old_output_untouched(tmp_path):
    src = tmp_path / "custom.bvh"
    write_bvh(src, short("idle", 0.3), np.array(GENERIC_REST_JOINTS), [f"b{i}" for i in range(NUM_JOINTS)], fps=30.0)
    out = tmp_path / "clip.npz"
    out.write_bytes(b"previous content")
    assert_one_line_error(motion_cli("convert", str(src), "--out", str(out)), str(src), "joint map")
    lines = src.read_text().splitlines()
    (tmp_path / "cut.bvh").write_text("\n".join(lines[:-2]))
    assert_one_line_error(motion_cli("convert", str(tmp_path / "cut.bvh"), "--out", str(out)), "cut.bvh", "truncated")
    (tmp_path / "empty.c3d").write_bytes(b"")
    assert_one_line_error(motion_cli("convert", str(tmp_path / "empty.c3d"), "--out", str(out)), "empty.c3d", "empty")
    (tmp_path / "x.fbx").write_text("?")
    assert_one_line_error(motion_cli("convert", str(tmp_path / "x.fbx"), "--out", str(out)), "x.fbx", "unknown type")
    assert_one_line_error(motion_cli("convert", str(src), "--out", str(out), "--fps", "-5"), "--fps")
    assert_one_line_error(motion_cli("convert", str(src)), "--out")
    assert out.read_bytes() == b"previous content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.npz", "custom.bvh", "cut.bvh", "empty.c3d", "x.fbx"]


def test_convert_npz_resamples(tmp_path):
    clip = builtin_clip("wave")
    path = tmp_path / "wave.npz"
    save_clip(path, clip)
    out = convert(path, fps=60)
    assert out.mocap_framerate == 60
    assert out.num_frames == 2 * (clip.num_frames - 1) + 1
    with pytest.raises(MotionFileError):
        convert(tmp_path / "missing.bvh")


def test_motion_quality_flags_bad_frames():
    clip = builtin_clip("walk")
    clean = motion_quality(clip)
    assert clean["bad"] == 0 and clean["ok"].all() and clean["frames"] == clip.num_frames
    trans = clip.trans.copy()
    trans[10:, 0] += 1.0  # a 1 m jump between two frames at 30 fps: 30 m/s
    trans[20, 1] -= 0.3  # sunk 30 cm into the floor
    bad = motion_quality(MotionClip(clip.poses, trans, clip.mocap_framerate, clip.rest_joints))
    assert bad["too_fast"] == 1  # frame 10 only: sinking 0.3 m in a frame is 9 m/s
    assert bad["below_floor"] == 1
    assert not bad["ok"][10] and not bad["ok"][20] and bad["ok"][15]
    listed = motion_quality(clip, known_bad=[3, 4])
    assert listed["bad"] == 2 and listed["known_bad"] == 2 and not listed["ok"][3]
