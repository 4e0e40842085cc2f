"""The add-on preferences: the asset folders (SMPL, textures, backdrops, occluders, clips).

Checked by the package's own asset checks (`asset_checks.py`, which `python -m farm.assets
check` uses too), so a wrong folder reads the same here as on the farm.
"""
from __future__ import annotations

import bpy

# The preference name of each folder, as `state.FOLDER_KEYS` names them.
FOLDERS = ("smpl", "textures", "backdrops", "occluders", "clips")
ADDON_PACKAGE = __package__.rpartition(".")[0]  # "densesynth", or "bl_ext.<repo>.densesynth" installed


class DenseSynthPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_PACKAGE

    smpl: bpy.props.StringProperty(name="SMPL Folder", subtype="DIR_PATH",
                                   description="Folder with your SMPL model files (SMPL_FEMALE / SMPL_MALE)")
    textures: bpy.props.StringProperty(name="Textures", subtype="DIR_PATH",
                                       description="Clothing texture folder (appearance.texture_kind: folder)")
    backdrops: bpy.props.StringProperty(name="Backdrops", subtype="DIR_PATH",
                                        description="Folder of backdrop photographs (backdrop.kind: folder)")
    occluders: bpy.props.StringProperty(name="Occluders", subtype="DIR_PATH",
                                        description="Folder of RGBA occluder cut-outs")
    clips: bpy.props.StringProperty(name="Clips", subtype="DIR_PATH",
                                    description="Folder of motion clips converted with python -m farm.motion convert")

    def draw(self, context):
        layout = self.layout
        for name in FOLDERS:
            layout.prop(self, name)
        for line in folder_problems(folders_of(self)):
            layout.label(text=line, icon="ERROR")


def preferences(context=None):
    """The add-on's preferences, or None when the package was registered without Blender's add-on
    system (a script calling `register()`: there are no preferences then)."""
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_PACKAGE)
    return addon.preferences if addon is not None else None


def folders_of(prefs) -> dict[str, str]:
    if prefs is None:
        return {}
    return {name: bpy.path.abspath(getattr(prefs, name)) for name in FOLDERS if getattr(prefs, name)}


def folder_problems(folders: dict[str, str]) -> list[str]:
    """One line per unusable folder, in the words of the functions that read them."""
    from ..asset_checks import folder_problem, smpl_problems

    lines = [f"SMPL folder: {line.strip()}" for line in smpl_problems(folders.get("smpl", ""))]
    for name in FOLDERS[1:]:
        problem = folder_problem(name, folders.get(name, ""))
        if problem:
            lines.append(problem)
    return lines
