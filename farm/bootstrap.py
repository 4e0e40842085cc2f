"""Make the project importable from a plain Python or from inside a real Blender.

Blender 5.0 runs its own Python 3.11 and ignores PYTHONPATH unless started with
`--python-use-system-env`; this module puts the repository's package folder on sys.path,
adds the site-packages of the virtual environment named by DENSESYNTH_VENV (or the active
VIRTUAL_ENV), and names every missing dependency in one line when something is still absent.
"""
from __future__ import annotations

import glob
import importlib.util
import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
REQUIRED = {"numpy": "numpy", "cv2": "opencv-python-headless", "OpenEXR": "OpenEXR",
            "pycocotools": "pycocotools", "yaml": "PyYAML", "scipy": "scipy"}


def running_inside_blender() -> bool:
    """True under a real Blender binary (not the `bpy` module imported by plain Python)."""
    bpy = sys.modules.get("bpy")
    return bpy is not None and bool(getattr(bpy.app, "binary_path", "")) and "python" not in Path(sys.argv[0]).name


def add_paths() -> None:
    package_root = str(REPO_ROOT / "addon")
    for path in (str(REPO_ROOT), package_root):
        if path not in sys.path:
            sys.path.insert(0, path)
    venv = os.environ.get("DENSESYNTH_VENV") or os.environ.get("VIRTUAL_ENV")
    if venv:
        for site in glob.glob(os.path.join(venv, "lib", "python3*", "site-packages")):
            if site not in sys.path:
                sys.path.append(site)


def missing_dependencies() -> list[str]:
    return [package for module, package in REQUIRED.items() if importlib.util.find_spec(module) is None]


def script_arguments(argv: list[str]) -> list[str]:
    """Arguments meant for the script: under Blender (`blender -b -P script -- ARGS`), those
    after `--`; under plain Python (`python script ARGS`), all of them: a `--` there is an
    argument like any other (e.g. a missing option value), never a reason to drop the rest."""
    before = argv[1:argv.index("--")] if "--" in argv else []
    blender_command = any(arg in ("-b", "--background", "-P", "--python") for arg in before)
    if running_inside_blender() or blender_command:
        return argv[argv.index("--") + 1 :] if "--" in argv else []
    return argv[1:]
