"""Render Dataset leaves the installed extension's wheels intact (issue 12, acceptance 1).

The issue: a background child that shares the user's Blender folder and resets to factory
settings with the add-on not enabled makes Blender's extension code (addon_utils.reset_all ->
extensions_refresh -> _extension_sync_wheels, with an empty wheel list) delete every wheel the
extension installed into `extensions/.local/lib/python3.11/site-packages`; the job then misses
OpenEXR. Here a real wheel (built by pip from a one-module project, offline) is bundled with
`farm/build_extension.py --wheel`, installed by Blender from the zip into an isolated user folder,
and wheels_session.py records the wheel site after each step: a bare child as the old set-up, the
Render Dataset operator with the job's environment as before the fix, and the operator as shipped.
The expected files are the wheel's own members, not anything the session computed.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import REPO, TEST_CONFIG

pytest.importorskip("bpy")
pytestmark = pytest.mark.blender

PROBE_VALUE = "probe-1.0"


def build_probe_wheel(folder: Path) -> Path:
    """A throw-away one-module project (plus a 64 KiB data file) built into a wheel by pip, offline."""
    project = folder / "probe_project"
    package = project / "densesynth_probe"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(f'VALUE = "{PROBE_VALUE}"\n')
    (package / "payload.bin").write_bytes(bytes(range(256)) * 256)
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "densesynth-probe"\nversion = "1.0"\n'
        '[tool.setuptools]\npackages = ["densesynth_probe"]\n'
        '[tool.setuptools.package-data]\ndensesynth_probe = ["payload.bin"]\n')
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                             "--no-index", "--wheel-dir", str(folder / "wheels"), str(project)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return next((folder / "wheels").glob("densesynth_probe-1.0-*.whl"))


def wheel_members(wheel: Path) -> dict[str, int]:
    with zipfile.ZipFile(wheel) as archive:
        return {info.filename: info.file_size for info in archive.infolist() if not info.is_dir()}


def site_files(site: Path) -> dict[str, int]:
    return {p.relative_to(site).as_posix(): p.stat().st_size for p in sorted(site.rglob("*")) if p.is_file()}


def test_render_dataset_keeps_the_installed_wheels(anny_archive, tmp_path: Path) -> None:
    wheel = build_probe_wheel(tmp_path)
    members = wheel_members(wheel)
    assert members["densesynth_probe/payload.bin"] == 65536 and "densesynth_probe/__init__.py" in members
    build = subprocess.run([sys.executable, str(REPO / "farm" / "build_extension.py"), "--out", str(tmp_path),
                            "--wheel", str(wheel)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    archive = tmp_path / "densesynth-0.1.0.zip"
    with zipfile.ZipFile(archive) as built:
        assert f"wheels/{wheel.name}" in built.namelist()
        assert f'"./wheels/{wheel.name}"' in built.read("blender_manifest.toml").decode()
    config = tmp_path / "tiny.yaml"
    config.write_text(TEST_CONFIG.replace("[192, 160]", "[64, 64]").replace("beauty_samples: 2",
                                                                             "beauty_samples: 1"))
    work = tmp_path / "work"
    work.mkdir()
    user = tmp_path / "blender_user"
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
           "BLENDER_USER_RESOURCES": str(user),          # never the real user folder
           "DENSESYNTH_CACHE": str(tmp_path / "cache")}
    result = subprocess.run([sys.executable, str(Path(__file__).with_name("wheels_session.py")), str(archive),
                             str(config), str(work)], capture_output=True, text=True, timeout=300, env=env,
                            cwd=tmp_path)
    line = next((text for text in result.stdout.splitlines() if text.startswith("WHEELS_REPORT ")), None)
    assert line is not None, (result.stdout[-3000:], result.stderr[-3000:])
    report = json.loads(line.split(" ", 1)[1])
    site = user / "extensions" / ".local" / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" \
        / "site-packages"

    # Installed: Blender extracted exactly the wheel's files into the extensions' shared site, and
    # the add-on's process imports the module from there.
    assert report["binary_path"] == ""  # the bpy module: no Blender binary to start
    assert Path(report["site"]) == site and report["site_on_path"]
    assert report["installed"] == members
    assert Path(report["probe_file"]) == site / "densesynth_probe" / "__init__.py"
    assert report["probe_value"] == PROBE_VALUE

    # Before the fix: a child sharing the user folder deletes every wheel file on its factory reset.
    assert report["bare_child"] == {}, report["bare_child"]
    assert report["restored_bare_child"] == members  # Blender's own refresh puts them back
    assert report["old_job_status"] == "done"
    assert report["old_job"] == {}, "the pre-fix job's environment no longer deletes the wheels"
    assert report["restored_old_job"] == members

    # As shipped: the job ran from the installed extension, and the wheels are all still there.
    assert Path(report["job_script"]).is_relative_to(user / "extensions" / "user_default" / "densesynth")
    assert report["new_job_status"] == "done"
    assert report["new_job"] == members
    assert Path(report["job_user_resources"]).resolve() != user.resolve()
    assert report["after_probe"] == members
    assert site_files(site) == members  # checked here too, after the session ended
    # The child's environment imports the wheel after its own factory reset.
    assert report["child_probe"] == [str(site / "densesynth_probe" / "__init__.py"), PROBE_VALUE]
    probe = subprocess.run([sys.executable, "-c", "import densesynth_probe as p; print(p.__file__, p.VALUE)"],
                           capture_output=True, text=True, timeout=60, env={**env, "PYTHONPATH": str(site)},
                           cwd=tmp_path)
    assert probe.stdout.split() == [str(site / "densesynth_probe" / "__init__.py"), PROBE_VALUE], probe.stderr
    for run in ("old_run", "new_run"):
        assert (work / run / "done" / "00000000.json").is_file(), sorted(p.name for p in (work / run).iterdir())
        assert len(json.loads((work / run / "annotations.json").read_text())["images"]) == 1
