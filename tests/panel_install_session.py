"""An artist's session with the extension installed from its zip (run by test_addon_panel_install.py).

Runs under plain Python with the `bpy` module, in a process whose BLENDER_USER_RESOURCES is a
throw-away folder: install the zip, enable / disable / enable / disable / enable it (nothing
may stay behind), then run every panel operator on the default body, on a synthetic SMPL file
and with a test clip, checking the scene each one leaves. Prints PANEL_OK at the end.

argv: zip, config, smpl folder, BVH file, clip .npz, work folder.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import bpy  # first: it puts Blender's own modules (addon_utils) on the path
import numpy as np

import addon_utils  # noqa: E402

ZIP, CONFIG, SMPL, BVH, CLIP, WORK = sys.argv[1:7]
WORK = Path(WORK)
MODULE = "bl_ext.user_default.densesynth"
called: set[str] = set()


def raise_error(exc: BaseException) -> None:
    raise exc


def registered() -> dict[str, set]:
    """What an add-on can leave in Blender: RNA types, scene properties, handlers, timers."""
    return {"types": {n for n in dir(bpy.types) if "DENSESYNTH" in n.upper()},
            "scene": {p.identifier for p in bpy.types.Scene.bl_rna.properties},
            "handlers": {name: len(getattr(bpy.app.handlers, name)) for name in dir(bpy.app.handlers)
                         if isinstance(getattr(bpy.app.handlers, name), list)},
            "addons": set(bpy.context.preferences.addons.keys())}


def run(name: str, **kwargs) -> set:
    called.add(name)
    result = getattr(bpy.ops.densesynth, name)(**kwargs)
    assert result == {"FINISHED"}, (name, result)
    return result


def settings():
    return bpy.context.scene.densesynth


def spec() -> dict:
    return json.loads(bpy.data.texts["DenseSynth Spec"].as_string())


def person(scene=None):
    return (scene or bpy.context.scene).objects["densesynth_person_0"]


def vertices(frame: int | None = None) -> np.ndarray:
    scene = bpy.context.scene
    if frame is not None:
        scene.frame_set(frame)
    obj = person().evaluated_get(bpy.context.evaluated_depsgraph_get())
    mesh = obj.to_mesh()
    coords = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
    mesh.vertices.foreach_get("co", coords)
    obj.to_mesh_clear()
    return coords.reshape(-1, 3)


def preview_pixels() -> np.ndarray:
    image = bpy.data.images["DenseSynth Preview"]
    pixels = np.empty(image.size[0] * image.size[1] * 4, dtype=np.float32)
    image.pixels.foreach_get(pixels)
    return pixels


# 1. Install, then register and unregister cleanly twice ------------------------------------
bpy.ops.wm.read_factory_settings(use_empty=True)
before = registered()
assert bpy.ops.extensions.package_install_files(filepath=ZIP, repo="user_default",
                                                enable_on_install=True) == {"FINISHED"}
installed = registered()
assert MODULE in installed["addons"] and installed["types"], installed["types"]
assert "densesynth" in installed["scene"]
from bl_ext.user_default import densesynth as package  # noqa: E402  (the installed copy)

assert Path(package.__file__).resolve().is_relative_to(Path(bpy.utils.user_resource("EXTENSIONS")).resolve())
for cycle in range(2):
    addon_utils.disable(MODULE, default_set=True, handle_error=raise_error)
    gone = registered()
    assert gone == {**before, "addons": gone["addons"]} and MODULE not in gone["addons"], (cycle, gone["types"])
    addon_utils.enable(MODULE, default_set=True, handle_error=raise_error)
    assert registered() == installed, cycle
assert "farm" not in sys.modules  # the extension stands alone
from bl_ext.user_default.densesynth.ui import operators, render_operators  # noqa: E402

OPERATORS = {cls.bl_idname.split(".")[1] for cls in (*operators.CLASSES, *render_operators.CLASSES)}
prefs = bpy.context.preferences.addons[MODULE].preferences

# 2. Default body: every operator --------------------------------------------------------------
artist = bpy.context.scene
settings().config_path = CONFIG
run("check_assets")
assert settings().message == ""
run("preview_sample")
assert bpy.context.scene is not artist and len(artist.objects) == 0
resolution = (bpy.context.scene.render.resolution_x, bpy.context.scene.render.resolution_y)
assert len(person().data.vertices) > 10000 and tuple(bpy.data.images["DenseSynth Preview"].size) == resolution
shown = {}
for view in ("BEAUTY", "IUV", "PARTS24", "PARTS14", "PERSON_INDEX"):
    run("show_view", view=view)
    shown[view] = preview_pixels()
assert len({array.tobytes() for array in shown.values()}) == len(shown)  # five different pictures
base = vertices()
old_seed = settings().seed
run("new_seed")
assert settings().seed != old_seed and spec()["run_seed"] == settings().seed
run("random_shape")
assert spec()["persons"][0]["body"]["stream"] == "body/shape1" and len(vertices()) == len(base)
saved = WORK / "saved.yaml"
run("save_config", filepath=str(saved))
seed = settings().seed
settings().seed, settings().shape_draw = 1, 0
run("load_config", filepath=str(saved))
assert (settings().seed, settings().shape_draw, settings().config_path) == (seed, 1, str(saved))
settings().output_dir = str(WORK / "export_default")
run("export_sample")
assert (WORK / "export_default" / "images" / "00000000.png").is_file()
assert json.loads((WORK / "export_default" / "records" / "00000000.json").read_text())["annotations"]
settings().shape_draw = 0
run("load_motion", filepath=BVH, start=2, end=12)
scene = bpy.context.scene
assert (scene.frame_start, scene.frame_end) == (2, 12)
assert len(person().data.shape_keys.key_blocks) == 1 + 11  # basis + one key per frame
assert np.abs(vertices(4) - vertices(10)).max() > 0.01
run("clear_motion")
assert person().data.shape_keys is None and spec()["persons"][0]["motion"]["source"] == "builtin"
settings().output_dir, settings().num_samples = str(WORK / "dataset"), 1
run("render_dataset")
assert settings().job_status == "done"
assert len(json.loads((WORK / "dataset" / "annotations.json").read_text())["images"]) == 1
run("cancel_render")  # headless: only asks a running job to stop
assert settings().cancel_requested
settings().cancel_requested = False

# 3. A synthetic SMPL file (from the preferences' SMPL folder) --------------------------------
prefs.smpl = SMPL
settings().config_path, settings().body = CONFIG, "SMPL_FEMALE"
run("check_assets")
run("preview_sample")
assert len(person().data.vertices) == 6890 and spec()["persons"][0]["body"]["gender"] == "female"
run("show_view", view="IUV")
betas = spec()["persons"][0]["body"]["betas"]
run("random_shape")
assert spec()["persons"][0]["body"]["betas"] != betas
run("load_motion", filepath=BVH, start=0, end=5, mirror=True)
assert len(person().data.shape_keys.key_blocks) == 7 and spec()["persons"][0]["motion"]["mirror"] is True
assert np.abs(vertices(1) - vertices(5)).max() > 0.01
settings().output_dir = str(WORK / "export_smpl")
run("export_sample")
assert (WORK / "export_smpl" / "iuv" / "00000000.exr").is_file()
assert not (WORK / "export_smpl" / "done" / "00000000.json").exists()  # an edited sample: not the farm's
run("clear_motion")
settings().body, settings().shape_draw = "CONFIG", 0

# 4. A test clip (.npz) on the default body, then the sample at one of its frames -------------
run("load_motion", filepath=CLIP)
scene = bpy.context.scene
clip_frames = settings().motion_frames
assert (scene.frame_start, scene.frame_end) == (0, clip_frames - 1)
scene.frame_set(3)
run("preview_sample")
assert spec()["persons"][0]["motion"]["frame"] == 3 and bpy.context.scene.frame_current == 3
run("show_view", view="PARTS14")
settings().output_dir = str(WORK / "export_clip")
run("export_sample")
record = json.loads((WORK / "export_clip" / "records" / "00000000.json").read_text())
assert record["annotations"] and json.loads((WORK / "export_clip" / "specs" / "00000000.json").read_text()
                                            )["persons"][0]["motion"]["frame"] == 3
run("clear_motion")
settings().output_dir, settings().range_count, settings().sample_index = str(WORK / "export_range"), 2, 0
run("export_range")  # without motion: samples 0 and 1, as the farm writes them
assert sorted(p.name for p in (WORK / "export_range" / "done").glob("*.json")) == ["00000000.json", "00000001.json"]

missing = OPERATORS - called
assert not missing, f"operators never run: {sorted(missing)}"
addon_utils.disable(MODULE, default_set=True, handle_error=raise_error)
assert registered()["types"] == set() and not hasattr(bpy.types.Scene, "densesynth")
print("PANEL_OK", sorted(called))
