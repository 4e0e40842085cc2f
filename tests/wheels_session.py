"""The extension's wheels through background jobs (run by test_addon_wheels.py; issue 12, acceptance 1).

Runs under plain Python with the `bpy` module, in a process whose BLENDER_USER_RESOURCES is a
throw-away folder. Installs the zip (which bundles one small real wheel), then records the wheel
site's files (relative path -> size) after each step and prints them as one `WHEELS_REPORT <json>`
line; the test asserts on the numbers:

- installed:   what Blender extracted from the wheel into the extensions' shared site-packages;
- bare_child:  after a child Python that shares these user resources (the pre-fix set-up) and
               calls `read_factory_settings` with the add-on not enabled;
- old_job:     after Render Dataset with the job's environment as it was before the fix (the
               child inherits these user resources);
- new_job:     after Render Dataset as shipped (the child gets a private user folder);
- child_probe: what a child with the shipped job's environment imports after its own reset.
Between steps the parent's `extensions_refresh` (what Blender runs when an extension changes)
puts the deleted wheel back, recorded as restored_*.

argv: zip, config, work folder.
"""
from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import bpy  # first: it puts Blender's own modules (addon_utils) on the path

import addon_utils  # noqa: E402

ZIP, CONFIG, WORK = sys.argv[1], sys.argv[2], Path(sys.argv[3])
MODULE = "bl_ext.user_default.densesynth"
report: dict = {"binary_path": bpy.app.binary_path}


def wheel_site() -> Path:
    """Where Blender 5.0 extracts extension wheels (addon_utils._extension_sync_wheels)."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return Path(bpy.utils.user_resource("EXTENSIONS")) / ".local" / "lib" / version / "site-packages"


def files(folder: Path) -> dict[str, int]:
    return {p.relative_to(folder).as_posix(): p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file()}


def raise_error(exc: BaseException) -> None:
    raise exc


def restore(step: str) -> None:
    addon_utils.extensions_refresh(handle_error=raise_error)
    report[f"restored_{step}"] = files(wheel_site())


def render_dataset(out: Path) -> str:
    settings = bpy.context.scene.densesynth
    settings.config_path, settings.output_dir = CONFIG, str(out)
    settings.num_samples, settings.seed = 1, 3
    result = bpy.ops.densesynth.render_dataset()
    assert result == {"FINISHED"}, (result, settings.message)
    return settings.job_status


bpy.ops.wm.read_factory_settings(use_empty=True)
assert bpy.ops.extensions.package_install_files(filepath=ZIP, repo="user_default",
                                                enable_on_install=True) == {"FINISHED"}
assert MODULE in bpy.context.preferences.addons
report["site"] = str(wheel_site())
report["site_on_path"] = str(wheel_site()) in sys.path
report["installed"] = files(wheel_site())
probe = importlib.import_module("densesynth_probe")
report["probe_file"], report["probe_value"] = probe.__file__, probe.VALUE

# The pre-fix set-up, bare: a child sharing these user resources resets to factory settings.
child = subprocess.run([sys.executable, "-c", "import bpy; bpy.ops.wm.read_factory_settings(use_empty=True)"],
                       capture_output=True, text=True, timeout=120, env=dict(os.environ))
assert child.returncode == 0, child.stderr[-2000:]
report["bare_child"] = files(wheel_site())
restore("bare_child")

# The pre-fix Render Dataset: the job's child inherits this process's user resources.
from bl_ext.user_default.densesynth.ui import render_job  # noqa: E402  (the installed copy)

fixed_env = render_job.job_env


def shared_env(user_resources: Path, import_path: list[str]) -> dict[str, str]:
    env = fixed_env(user_resources, import_path)
    env["BLENDER_USER_RESOURCES"] = os.environ["BLENDER_USER_RESOURCES"]
    return env


render_job.job_env = shared_env
report["old_job_status"] = render_dataset(WORK / "old_run")
report["old_job"] = files(wheel_site())
render_job.job_env = fixed_env
restore("old_job")

# Render Dataset as shipped (its job_env only watched: what the child got).
seen: dict = {}


def watched_env(user_resources: Path, import_path: list[str]) -> dict[str, str]:
    seen["import_path"] = list(import_path)
    env = fixed_env(user_resources, import_path)
    seen["user_resources"] = env["BLENDER_USER_RESOURCES"]
    return env


render_job.job_env = watched_env
report["new_job_status"] = render_dataset(WORK / "new_run")
report["new_job"] = files(wheel_site())
render_job.job_env = fixed_env
report["job_user_resources"] = seen["user_resources"]
# A child with that environment (a fresh private folder) finds the wheel after its factory reset.
PROBE = ("import json, bpy; bpy.ops.wm.read_factory_settings(use_empty=True); import densesynth_probe as p; "
         "print('PROBE', json.dumps([p.__file__, p.VALUE]))")
with tempfile.TemporaryDirectory() as private:
    probe = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120,
                           env=fixed_env(Path(private), seen["import_path"]))
report["child_probe"] = next((json.loads(line[6:]) for line in probe.stdout.splitlines()
                              if line.startswith("PROBE ")), probe.stderr[-1000:])
report["after_probe"] = files(wheel_site())
report["job_script"] = str(render_job.JOB_SCRIPT)
print("WHEELS_REPORT", json.dumps(report))
