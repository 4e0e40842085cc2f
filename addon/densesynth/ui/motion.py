"""A motion file on the panel's body: converted by the project's own converter, posed by the
pipeline's own posing, played by Blender's timeline.

Load Motion converts a BVH, C3D or clip .npz with `motion.convert.convert` (name maps, units,
axes, calibration pose, ground: the farm's `python -m farm.motion convert`) and saves the
canonical clip into the cache (`<cache>/panel_clips/<name>-<hash>.npz`). From then on person
0's spec names that clip at a frame (`{"source": "folder", "folder", "clip", "frame",
"mirror"}`, the entry a farm run draws from a clip folder), so Preview and Export show and
write the current frame's sample through the unchanged pipeline.

The timeline: every frame of the range is posed with `scene/person.py::pose_person` (and
dressed as `SpecScene.build` dresses) and stored as one shape key of the person's mesh, keyed
to weight 1 on its frame and 0 on its neighbours. So each frame shows exactly the pipeline's
body of that frame (no rig approximating it), the animation lives in the .blend (no handler,
no add-on needed to play it back), and Blender renders it like any shape-key animation.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Callable

import numpy as np

FRAME_KEY = "densesynth frame {}"  # shape key of clip frame N
PERSON = 0  # the person the motion drives (the camera frames it)
MAX_FRAMES = 600  # shape keys (20 s at 30 fps, ~100 MB for the default body): longer ranges are the farm's


def clip_folder() -> Path:
    from ..bodies.cache import cache_dir

    return cache_dir() / "panel_clips"


def import_motion(path: str | Path, fps: float | None = None) -> tuple[Path, Any, list[str]]:
    """Convert `path` (.bvh / .c3d / .npz) into the panel's clip folder: (clip file, clip,
    the converter's report lines). UserError (one line, naming the file) when it cannot."""
    from ..errors import UserError
    from ..motion.clip import save_clip
    from ..motion.convert import SUFFIXES, convert

    source = Path(path).expanduser()
    if not source.is_file():
        raise UserError(f"motion file '{source}' does not exist")
    if source.suffix.lower() not in SUFFIXES:
        raise UserError(f"motion file {source}: unknown type {source.suffix!r}; expected one of {', '.join(SUFFIXES)}")
    report: dict = {}
    clip = convert(source, fps=fps, report=report)
    digest = hashlib.sha256(source.read_bytes() + repr(fps).encode()).hexdigest()[:12]
    target = clip_folder() / f"{source.stem}-{digest}.npz"
    target.parent.mkdir(parents=True, exist_ok=True)
    save_clip(target, clip)
    return target, clip, list(report.get("lines", []))


def motion_entry(clip_path: str | Path, frame: int, mirror: bool) -> dict[str, Any]:
    """Person 0's spec motion: the converted clip at `frame`, as a farm run records it."""
    clip_path = Path(clip_path)
    return {"clip": clip_path.name, "source": "folder", "folder": str(clip_path.parent), "frame": int(frame),
            "mirror": bool(mirror), "stream": "motion"}


def frame_range(num_frames: int, start: int, end: int) -> tuple[int, int]:
    """The panel's (start, end) in clip frames, end < 0 meaning the last; UserError outside the clip."""
    from ..errors import UserError

    last = num_frames - 1
    end = last if end < 0 else end
    if not 0 <= start <= end <= last:
        raise UserError(f"motion frame range {start}-{end} lies outside the clip's frames 0-{last}")
    if end - start + 1 > MAX_FRAMES:
        raise UserError(f"motion frame range {start}-{end} has {end - start + 1} frames; the panel keys at most "
                        f"{MAX_FRAMES} (render longer ranges with the farm)")
    return start, end


def motion_edit(clip_path: str, frame: int, mirror: bool) -> Callable[[dict[str, Any]], None]:
    """The spec edit that puts person 0 on the loaded clip at `frame` (before the camera fit)."""
    def edit(spec: dict[str, Any]) -> None:
        spec["persons"][PERSON]["motion"] = motion_entry(clip_path, frame, mirror)

    return edit


def frame_person(spec: dict[str, Any], frame: int) -> dict[str, Any]:
    """Person 0 of `spec` at clip frame `frame` (everything else as drawn)."""
    person = spec["persons"][PERSON]
    return {**person, "motion": {**person["motion"], "frame": int(frame)}}


def frame_vertices(spec_scene, spec: dict[str, Any], frame: int) -> np.ndarray:
    """The surface the preview mesh shows at `frame`: `pose_person`, dressed as `build` dresses."""
    from ..appearance.garment_geometry import rendered_surface

    return rendered_surface(frame_person(spec, frame), spec["appearance"][PERSON], spec_scene.bodies)


def animate(scene, spec_scene, spec: dict[str, Any], start: int, end: int, fps: float) -> None:
    """Key person 0's mesh to the clip's frames start..end (scene frame N = clip frame N)."""
    slot = next(s for s in spec_scene.blender.slots if s.object.pass_index == PERSON + 1)
    obj = slot.object
    if obj.data.shape_keys is None:
        obj.shape_key_add(name="Basis", from_mix=False)
    for frame in range(start, end + 1):
        key = obj.shape_key_add(name=FRAME_KEY.format(frame), from_mix=False)
        key.data.foreach_set("co", np.ascontiguousarray(frame_vertices(spec_scene, spec, frame),
                                                        dtype=np.float32).ravel())
        for at, value in ((frame - 1, 0.0), (frame, 1.0), (frame + 1, 0.0)):
            key.value = value
            key.keyframe_insert("value", frame=at)
        key.value = 0.0
    scene.frame_start, scene.frame_end = start, end
    scene.render.fps = max(1, round(fps))
    scene.render.fps_base = scene.render.fps / fps
    scene.frame_current = int(spec["persons"][PERSON]["motion"]["frame"])
