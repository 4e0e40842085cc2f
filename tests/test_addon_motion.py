"""The panel's motion and ground-truth view (issue 12), under the `bpy` module.

Motion: a BVH with the mess of real files (CMU names, zero-length bones, a zero-length end
joint) loaded onto the body; the timeline must show, frame by frame, the body that the
pipeline's own posing (`scene/person.py::pose_person`) gives for that frame's spec.
Ground truth: each view of the preview image must read back to the files the export wrote
(the label EXR read here with OpenEXR directly, the part PNGs with OpenCV).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from conftest import TEST_CONFIG
from test_addon_panel import addon  # noqa: F401  (fixture: the enabled add-on)
from test_mocap_wild import CMU_HIERARCHY, make_motion, parse_hierarchy, write

bpy = pytest.importorskip("bpy")
pytestmark = pytest.mark.blender

TRUTH_CONFIG = TEST_CONFIG + "passes: [beauty, iuv, person_index, depth, normals]\n"


def wild_bvh(path: Path, frames: int = 24) -> Path:
    """CMU's skeleton (zero-offset LowerBack, Neck, collars, finger bases) with the head's end
    site at zero length too, as some exporters write it."""
    text = re.sub(r"(JOINT Head\s*\{.*?End Site\s*\{\s*)OFFSET [^\n]+", r"\1OFFSET 0.00000 0.00000 0.00000",
                  CMU_HIERARCHY, count=1, flags=re.S)
    assert text != CMU_HIERARCHY
    names, _, _, chans = parse_hierarchy(text)
    write(path, text, make_motion(names, chans, frames=frames, seed=3))
    return path


def evaluated_vertices(scene, frame: int) -> np.ndarray:
    """The person's mesh as Blender shows it at `frame` (shape keys and animation applied)."""
    scene.frame_set(frame)
    obj = scene.objects["densesynth_person_0"].evaluated_get(bpy.context.evaluated_depsgraph_get())
    mesh = obj.to_mesh()
    try:
        coords = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
        mesh.vertices.foreach_get("co", coords)
    finally:
        obj.to_mesh_clear()
    return coords.reshape(-1, 3)


def spec() -> dict:
    return json.loads(bpy.data.texts["DenseSynth Spec"].as_string())


@pytest.fixture
def clips(tmp_path, monkeypatch) -> Path:
    """Converted clips go to a folder of the test, not the user's cache."""
    from densesynth.ui import motion

    folder = tmp_path / "panel_clips"
    monkeypatch.setattr(motion, "clip_folder", lambda: folder)
    return folder


def check_timeline(bvh: Path, start: int, end: int, frames: tuple[int, int], folders: dict | None = None) -> None:
    """The preview scene plays the converted clip over start..end and each frame shows
    pose_person of that frame's spec (bodies loaded here, apart from the panel's)."""
    from densesynth.bodies.kinds import load_bodies
    from densesynth.motion.clip import load_clip
    from densesynth.motion.convert import convert
    from densesynth.scene.person import pose_person
    from densesynth.ui.state import effective_config

    settings = bpy.context.scene.densesynth
    scene = bpy.context.scene
    assert (scene.frame_start, scene.frame_end) == (start, end)
    clip = load_clip(settings.motion_clip)
    expected_clip = convert(bvh)
    assert np.array_equal(clip.poses, expected_clip.poses) and np.array_equal(clip.trans, expected_clip.trans)
    assert scene.render.fps / scene.render.fps_base == pytest.approx(clip.mocap_framerate)
    shown = spec()
    person = shown["persons"][0]
    assert person["motion"]["source"] == "folder" and person["motion"]["clip"] == Path(settings.motion_clip).name
    config, _ = effective_config(settings.config_path, settings.body, folders or {})
    bodies = load_bodies(config["body"])
    seen = []
    for frame in frames:
        at_frame = {**person, "motion": {**person["motion"], "frame": frame}}
        want = pose_person(at_frame, bodies).vertices
        got = evaluated_vertices(scene, frame)
        assert np.abs(got - want).max() < 1e-4, (frame, float(np.abs(got - want).max()))
        seen.append(got)
    assert np.abs(seen[0] - seen[1]).max() > 0.01  # the body moves between the two frames


def test_bvh_plays_on_the_default_body_frame_by_frame(addon, clips, tmp_path):
    config = tmp_path / "small.yaml"
    config.write_text(TEST_CONFIG)
    bvh = wild_bvh(tmp_path / "cmu_wild.bvh")
    settings = bpy.context.scene.densesynth
    settings.config_path, settings.seed, settings.render_preview = str(config), 2, False
    assert bpy.ops.densesynth.load_motion(filepath=str(bvh), start=4, end=19, mirror=True) == {"FINISHED"}
    settings = bpy.context.scene.densesynth
    assert (settings.motion_start, settings.motion_end, settings.motion_mirror) == (4, 19, True)
    motion = spec()["persons"][0]["motion"]
    assert motion["frame"] == 4 and motion["mirror"] is True  # the sample is the range's first frame
    check_timeline(bvh, 4, 19, (6, 15))
    assert clips.is_dir() and [p.suffix for p in clips.iterdir()] == [".npz"]

    # Preview at another frame: that frame's sample, the same timeline.
    bpy.context.scene.frame_set(11)
    assert bpy.ops.densesynth.preview_sample() == {"FINISHED"}
    assert spec()["persons"][0]["motion"]["frame"] == 11
    check_timeline(bvh, 4, 19, (5, 18))

    # A range outside the clip: one line, the panel unchanged.
    with pytest.raises(RuntimeError) as failure:
        bpy.ops.densesynth.load_motion(filepath=str(bvh), start=10, end=500)
    assert "outside the clip's frames 0-" in str(failure.value) and "Traceback" not in str(failure.value)
    assert bpy.context.scene.densesynth.motion_end == 19

    assert bpy.ops.densesynth.clear_motion() == {"FINISHED"}
    assert spec()["persons"][0]["motion"]["source"] == "builtin"
    assert bpy.context.scene.objects["densesynth_person_0"].data.shape_keys is None


def test_views_decode_back_to_the_exported_files(addon, tmp_path):
    import cv2
    import OpenEXR

    from densesynth.ui.truth import IUV_PART_STEP, OCCLUDED_COLOUR, PART_PALETTE, VISIBLE_COLOUR

    config = tmp_path / "truth.yaml"
    config.write_text(TRUTH_CONFIG)
    settings = bpy.context.scene.densesynth
    settings.config_path, settings.seed, settings.output_dir = str(config), 3, str(tmp_path / "out")
    assert bpy.ops.densesynth.export_sample() == {"FINISHED"}
    out = tmp_path / "out"

    def image() -> np.ndarray:
        picture = bpy.data.images["DenseSynth Preview"]
        width, height = picture.size
        pixels = np.empty(width * height * 4, dtype=np.float32)
        picture.pixels.foreach_get(pixels)
        return np.round(pixels.reshape(height, width, 4)[::-1, :, :3] * 255).astype(np.int64)

    beauty = cv2.imread(str(out / "images" / "00000000.png"))[:, :, ::-1]
    assert np.array_equal(image(), beauty)  # Export shows the beauty it wrote

    exr = OpenEXR.File(str(out / "iuv" / "00000000.exr"), separate_channels=True).channels()
    labels = np.rint(exr["R"].pixels).astype(np.int64) * (exr["A"].pixels > 0.5)
    assert labels.max() > 10  # many parts in view
    scenes = len(bpy.data.scenes)
    assert bpy.ops.densesynth.show_view(view="IUV") == {"FINISHED"}
    iuv = image()
    assert np.array_equal(iuv[..., 2] // IUV_PART_STEP, labels) and np.all(iuv[..., 2] % IUV_PART_STEP == 0)
    body = labels > 0
    assert np.abs(iuv[..., 0][body] / 255.0 - exr["G"].pixels[body]).max() <= 0.5 / 255 + 1e-6  # U
    assert np.abs(iuv[..., 1][body] / 255.0 - exr["B"].pixels[body]).max() <= 0.5 / 255 + 1e-6  # V

    for view, folder in (("PARTS24", "labels24"), ("PARTS14", "labels14")):
        assert bpy.ops.densesynth.show_view(view=view) == {"FINISHED"}
        png = cv2.imread(str(out / folder / "00000000.png"), cv2.IMREAD_UNCHANGED).astype(np.int64)
        lookup = {tuple(c): k for k, c in enumerate(PART_PALETTE[:25].astype(np.int64))}
        assert len(lookup) == 25  # the palette tells the parts apart
        shown = np.vectorize(lambda r, g, b: lookup[(r, g, b)])(*np.moveaxis(image(), -1, 0))
        assert np.array_equal(shown, png), view
    assert bpy.ops.densesynth.show_view(view="PERSON_INDEX") == {"FINISHED"}
    assert np.array_equal(np.all(image() == PART_PALETTE[1], axis=-1), body)

    depth = OpenEXR.File(str(out / "depth" / "00000000.exr"), separate_channels=True).channels()["Z"].pixels
    assert bpy.ops.densesynth.show_view(view="DEPTH") == {"FINISHED"}
    shown = image()[..., 0]
    assert np.array_equal(shown > 0, depth > 0)
    near, far = np.unravel_index(np.argmin(np.where(depth > 0, depth, np.inf)), depth.shape), np.unravel_index(
        np.argmax(depth), depth.shape)
    assert shown[near] == 255 and shown[far] == 55  # near bright, far dark
    assert bpy.ops.densesynth.show_view(view="NORMALS") == {"FINISHED"}
    assert np.array_equal(np.any(image() != 0, axis=-1), body)
    assert len(bpy.data.scenes) == scenes  # switching views rendered nothing

    # Keypoints over the view: a green disc on each visible point, a ring around each hidden one.
    record = json.loads((out / "records" / "00000000.json").read_text())
    points = np.asarray(record["annotations"][0]["keypoints"], dtype=np.float64).reshape(-1, 3)
    assert (points[:, 2] == 2).any()
    bpy.context.scene.densesynth.show_keypoints = True
    drawn = image()
    height, width = drawn.shape[:2]
    for x, y, v in points:
        x, y = int(round(x)), int(round(y))
        if v == 2 and 0 <= x < width and 0 <= y < height:
            assert tuple(drawn[y, x]) == VISIBLE_COLOUR
        elif v == 1 and 3 <= x < width - 3 and 0 <= y < height:
            ring = [tuple(drawn[y + dy, x + dx]) for dx, dy in ((3, 0), (-3, 0), (0, 3), (0, -3))
                    if 0 <= y + dy < height]
            assert OCCLUDED_COLOUR in ring

    # A pass the config does not list: one line naming the passes it does.
    with pytest.raises(RuntimeError) as failure:
        bpy.ops.densesynth.show_view(view="JOINT_PARTS")
    assert "no joint_parts pass" in str(failure.value) and "depth, normals" in str(failure.value)
